# pysplay: the two commands of README.md are `make demo` and `make test`.
PY ?= python3

.PHONY: setup demo test bench wheel clean

setup:                      ## install libuv headers, build the core, install pysplay (editable)
	bash scripts/setup.sh

demo: setup                 ## a local multi-node example
	splay run examples/chord.py -n 32 --time-limit 60

test:                       ## the whole test suite (what CI runs)
	bash scripts/test.sh

bench: setup                ## benchmarks against gevent, asyncio, uvloop and the codec libraries
	$(PY) -m pytest bench -q -p no:cacheprovider --benchmark-columns=median,ops --benchmark-sort=name

wheel:                      ## a manylinux wheel with libuv bundled (auditwheel), in wheelhouse/
	bash scripts/wheel.sh
	bash scripts/check_wheel.sh

clean:
	rm -rf build dist wheelhouse *.egg-info splayc/*.c splayc/*.so
