#!/usr/bin/env bash
# Run the whole test suite on Python 3.11 (installs first when the compiled core is missing or
# stale), then the smoke suite on 3.12 and 3.13 (noxfile.py: each version's core is built once,
# in place, and rebuilt only when its sources change). Arguments go to the 3.11 pytest run; with
# arguments, the other versions are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import splayc.hub, greenlet" 2>/dev/null || [ -n "$(find splayc -name '*.pyx' -newer splayc/hub.c 2>/dev/null | head -1)" ] || [ ! -f splayc/hub.c ]; then
    bash scripts/setup.sh
fi
"$PY" -m pytest -q -p no:cacheprovider "$@"
if [ $# -eq 0 ]; then
    echo "test: the smoke suite on Python 3.12 and 3.13 (nox; output in build/nox.log)" >&2
    mkdir -p build
    if ! "$PY" -m nox -s smoke-3.12 smoke-3.13 > build/nox.log 2>&1; then
        echo "test: the smoke suite failed on 3.12 or 3.13; build/nox.log ends with:" >&2
        tail -n 30 build/nox.log >&2
        exit 1
    fi
    grep -E "^nox > Session|passed|failed" build/nox.log >&2
fi
