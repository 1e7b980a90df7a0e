#!/usr/bin/env bash
# Run the whole test suite (installs first when the compiled core is missing or stale).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import splayc.hub, greenlet" 2>/dev/null || [ -n "$(find splayc -name '*.pyx' -newer splayc/hub.c 2>/dev/null | head -1)" ] || [ ! -f splayc/hub.c ]; then
    bash scripts/setup.sh
fi
exec "$PY" -m pytest -q -p no:cacheprovider "$@"
