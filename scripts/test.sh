#!/usr/bin/env bash
# Run the whole test suite on Python 3.11 (installs first when the compiled core is missing or
# stale), then the smoke suite on 3.12 and 3.13 (noxfile.py: each version's core is built once,
# in place, and rebuilt only when its sources change), beside the 3.11 run. Arguments go to the
# 3.11 pytest run; with arguments, the other versions are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import splayc.hub, greenlet" 2>/dev/null || [ -n "$(find splayc -name '*.pyx' -newer splayc/hub.c 2>/dev/null | head -1)" ] || [ ! -f splayc/hub.c ]; then
    bash scripts/setup.sh
fi
if [ $# -eq 0 ]; then
    # The smoke suites run beside the 3.11 suite: both mostly wait on their nodes, daemons and
    # timers (the smoke suite uses ~15 s of CPU in ~90 s), so CI takes the longer of the two.
    echo "test: the smoke suite on Python 3.12 and 3.13 runs beside it (nox; output in build/nox.log)" >&2
    mkdir -p build
    "$PY" -m nox -s smoke-3.12 smoke-3.13 > build/nox.log 2>&1 &
    smoke=$!
    trap 'kill "$smoke" 2>/dev/null || true' EXIT        # a failed suite stops the smoke run too
fi
"$PY" -m pytest -q -p no:cacheprovider "$@"
if [ $# -eq 0 ]; then
    if ! wait "$smoke"; then
        echo "test: the smoke suite failed on 3.12 or 3.13; build/nox.log ends with:" >&2
        tail -n 30 build/nox.log >&2
        exit 1
    fi
    grep -E "^nox > Session|passed|failed" build/nox.log >&2
fi
