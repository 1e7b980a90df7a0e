#!/usr/bin/env bash
# Check that each repaired wheel works on a machine without libuv: install it in a fresh venv of
# its Python version, then run a small program in a mount namespace where the system's libuv and
# uv.h are hidden.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/interpreters.sh
CHECK=$(mktemp -d)
cat > "$CHECK/check.py" <<'PY'
import sys
from splay import events, socket
import splayc.hub
maps = open("/proc/self/maps").read()
libuv = sorted({l.split()[-1] for l in maps.splitlines() if "libuv" in l})
out = []
def main():
    srv = socket.bind("127.0.0.1", 0)
    port = srv.getsockname()[1]
    def echo():
        c = srv.accept(); c.send(c.receive() + b"\n"); c.close()
    events.thread(echo)
    s = socket.connect("127.0.0.1", port); s.send("ping\n"); out.append(s.receive()); s.close()
    srv.close()
events.run(main)
print(f"Python {sys.version.split()[0]}: libuv loaded from:", libuv)
print("echo:", out)
assert out == [b"ping"] and all("pysplay.libs" in p for p in libuv), "wheel check failed"
print("wheel OK")
PY
LIBS=$(ls /usr/lib/x86_64-linux-gnu/libuv.so* 2>/dev/null || true)
HIDE=""
for f in $LIBS /usr/include/uv.h; do [ -e "$f" ] && HIDE="$HIDE mount --bind /dev/null $f;"; done
for version in $VERSIONS; do
    tag=cp${version/./}
    WHEEL=$(ls wheelhouse/pysplay-*-$tag-$tag-*.whl 2>/dev/null | head -1)
    [ -n "$WHEEL" ] || { echo "check_wheel: no wheel for Python $version in wheelhouse/ (make wheel)" >&2; exit 1; }
    VENV=$CHECK/venv-$version
    "$(find_interpreter "$version")" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$WHEEL"
    (cd "$CHECK" && unshare --mount bash -c "$HIDE $VENV/bin/python $CHECK/check.py")
done
