# pysplay: the two commands of README.md are `make demo` and `make test`.
PY ?= python3
# The set-up runs again only when one of these changed since it last succeeded (build/.setup-done).
SETUP_INPUTS := scripts/setup.sh setup.py pyproject.toml $(wildcard splayc/*.pyx splayc/*.pxd splayc/*.pxi csrc/*.c csrc/*.h)

.PHONY: setup demo test bench wheel clean

setup: build/.setup-done    ## install libuv headers, build the core, install pysplay (editable)

build/.setup-done: $(SETUP_INPUTS)
	@PYTHON=$(PY) bash scripts/setup.sh
	@touch $@

demo: setup                 ## a local multi-node example
	@echo "demo: 32 Chord nodes on this machine (node 0 reports the ring as it forms)" >&2
	$(PY) -m splay.cli run examples/chord.py -n 32 --time-limit 60

test:                       ## the whole test suite (what CI runs)
	bash scripts/test.sh

bench: setup                ## benchmarks against gevent, asyncio, uvloop and the codec libraries
	$(PY) -m pytest bench -q -p no:cacheprovider --benchmark-columns=median,ops --benchmark-sort=name

wheel:                      ## manylinux wheels for CPython 3.11-3.13 with libuv bundled (auditwheel), in wheelhouse/
	bash scripts/wheel.sh
	bash scripts/check_wheel.sh

clean:
	rm -rf build dist wheelhouse *.egg-info splayc/*.c splayc/*.so
