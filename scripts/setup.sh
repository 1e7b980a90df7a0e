#!/usr/bin/env bash
# Install everything pysplay needs on a fresh Debian machine (run as root): libuv headers, then the
# package itself (editable, compiling the Cython core) with its test and benchmark extras.
set -euo pipefail
cd "$(dirname "$0")/.."
# System packages: libuv headers (the core links libuv), PostgreSQL (the controller's optional
# database, used by its tests), util-linux's setpriv (the daemon's spawner), valgrind (benchmarks),
# chromium + chromium-driver (the web page and report tests, headless).
need=""
[ -f /usr/include/uv.h ] || need="$need libuv1-dev"
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need="$need postgresql"
command -v setpriv >/dev/null || need="$need util-linux"
command -v chromium >/dev/null || need="$need chromium"
command -v chromedriver >/dev/null || need="$need chromium-driver"
if [ -n "$need" ] && [ "$(id -u)" = 0 ]; then
    echo "setup: installing$need (Debian)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
PY=${PYTHON:-python3}
echo "setup: installing pysplay and its dependencies (pip)" >&2
# The in-place build below runs outside pip's isolated build environment: it needs the build
# requirements of pyproject.toml in this environment too.
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    "setuptools>=64" wheel "Cython>=3.0" "greenlet>=3.0,<4"
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore -e ".[test,bench]"
# Build the compiled core in place as well, so that tests run against this checkout's sources.
"$PY" setup.py -q build_ext --inplace >/dev/null
echo "setup: done ($("$PY" -c 'import splayc.hub as h; print("libuv", h.uv_version_string())'))" >&2
