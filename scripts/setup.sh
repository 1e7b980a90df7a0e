#!/usr/bin/env bash
# Install everything pysplay needs on a fresh Debian machine (run as root): libuv headers, then the
# package itself (editable, compiling the Cython core) with its test and benchmark extras.
#
# One progress line per step; the output of apt, pip and the C compiler goes to build/setup.log,
# which an error points to (with its last lines). `make setup` runs this only when the sources of
# the compiled core or the package's metadata changed (see the Makefile's stamp).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p build
LOG=build/setup.log
: > "$LOG"
STEPS=4
n=0

step() {   # step "what it does" command...: one line, the command's output into the log
    n=$((n + 1))
    local what=$1; shift
    printf 'setup [%d/%d] %s ... ' "$n" "$STEPS" "$what" >&2
    local start=$SECONDS
    echo "=== $what: $*" >> "$LOG"
    if "$@" >> "$LOG" 2>&1; then
        echo "ok ($((SECONDS - start)) s)" >&2
    else
        echo "FAILED" >&2
        echo "setup: '$what' failed; the full output is in $LOG, its end:" >&2
        tail -n 20 "$LOG" >&2
        exit 1
    fi
}

# System packages: libuv headers (the core links libuv), PostgreSQL (the controller's optional
# database, used by its tests), util-linux's setpriv (the daemon's spawner), valgrind (benchmarks),
# chromium and its driver (the browser tests of pages and reports).
need=""
[ -f /usr/include/uv.h ] || need="$need libuv1-dev"
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need="$need postgresql"
command -v setpriv >/dev/null || need="$need util-linux"
command -v chromedriver >/dev/null || need="$need chromium chromium-driver"
apt_install() {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
}
if [ -z "$need" ]; then
    step "system packages (libuv headers, PostgreSQL, setpriv, chromium): already there" true
elif [ "$(id -u)" = 0 ]; then
    step "system packages:$need (apt-get)" apt_install
else
    step "system packages:$need missing (run as root to install them)" false
fi
# The in-place build below runs outside pip's isolated build environment: it needs the build
# requirements of pyproject.toml in this environment too.
PIP=("$PY" -m pip install --disable-pip-version-check --root-user-action=ignore)
step "build requirements (Cython, greenlet)" "${PIP[@]}" "setuptools>=64" wheel "Cython>=3.0" "greenlet>=3.0,<4"
step "pysplay and its test and benchmark extras (pip install -e)" "${PIP[@]}" -e ".[test,bench]"
# Build the compiled core in place as well, so that tests run against this checkout's sources.
step "the compiled core (Cython, C compiler)" "$PY" setup.py build_ext --inplace
echo "setup: done ($("$PY" -c 'import splayc.hub as h; print("libuv", h.uv_version_string())'); compiler output in $LOG)" >&2
