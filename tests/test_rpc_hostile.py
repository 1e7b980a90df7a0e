"""Hostile peers: RPC servers (in another process) and clients survive bad bytes and keep serving.

After every attack the server must still answer a normal call, and its process must be alive.
"""
import os
import time
import socket

import pytest

from splay import benc, rpc, rpcq, urpc
import lua_peer as lua
from lua_peer import FakeLuaServer, free_port
from support_events import run
from support_rpc import running_rpc_app

pytestmark = pytest.mark.timeout(60)

SERVER_FUNCTIONS = '''
def concat(a, b):
    return a + b

def big(n):
    return "x" * n
'''


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_rpc_app(tmp_path_factory.mktemp("hostile"), SERVER_FUNCTIONS) as a:
        yield a


def still_serving(app):
    """A normal call of each mode still works, and the process is alive."""
    assert app.proc.poll() is None
    assert lua.tcp_exchange(app.rpc_port, lua.RPC_CALL_REQUEST) == lua.RPC_CALL_REPLY

    def main():
        return (rpcq.call(("127.0.0.1", app.rpcq_port), ["concat", "a", "b"], 10),
                urpc.call(("127.0.0.1", app.urpc_port), ["concat", "a", "b"], 10))
    assert run(main) == ("ab", "ab")


def raw(port, data, read=True):
    """Send ``data`` on a fresh connection; what comes back until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = []
        while read:
            b = s.recv(65536)
            if not b:
                break
            out.append(b)
        return b"".join(out)


MALFORMED_FRAMES = [
    b"abc\nhello",                       # non-numeric length line
    b"\nhello",                          # empty length line
    b"99999999999\n",                    # claims 100 GB: over the max length
    b"9" * 40 + b"\n",                   # absurd length line
    b"5\nhello",                         # not benc
    b"3\ni1e",                           # benc, but not a request
    b"2\nle",                            # a list, not a dict
    b"30\nd4:type4:exec4:code9:1+1+1+1+e",  # unknown request type
    b"100\nd4:type",                     # disconnects in the middle of a block
    b"",                                 # connects and leaves
    b"%d\n" % 200000 + b"l" * 200000,    # nesting far deeper than the decoder's limit
    os.urandom(3000),
]


@pytest.mark.parametrize("data", MALFORMED_FRAMES, ids=range(len(MALFORMED_FRAMES)))
def test_rpc_server_survives_malformed_frames(app, data):
    reply = raw(app.rpc_port, data)
    if reply:        # whatever it answers is one well-formed block holding an error
        length, body = reply.split(b"\n", 1)
        assert int(length) == len(body) and "error" in benc.decode(body)
    still_serving(app)


@pytest.mark.parametrize("data", MALFORMED_FRAMES, ids=range(len(MALFORMED_FRAMES)))
def test_rpcq_server_survives_malformed_frames(app, data):
    raw(app.rpcq_port, data)
    still_serving(app)


def test_rpcq_bad_blocks_are_skipped_and_the_connection_stays_usable(app):
    good = b"d4:calll6:concat1:a1:be4:type4:call1:ni5ee"
    no_n = b"d4:calll6:concat1:a1:be4:type4:calle"
    junk = b"5\nhello" + b"3\ni1e" + b"%d\n" % len(no_n) + no_n
    with socket.create_connection(("127.0.0.1", app.rpcq_port), timeout=10) as s:
        s.sendall(junk + b"%d\n" % len(good) + good)
        reply = benc.decode(lua.read_block(s.makefile("rb")))
    assert reply == {"reply": ["ab"], "n": 5}
    still_serving(app)


GARBAGE_DATAGRAMS = [
    b"", b"x", b"i1e", b"le", b"d4:type4:calle", b"d4:freet3:key1:ze", b"d4:type4:ping3:keyi1ee",
    b"d4:type4:call3:key1:k4:calli3eee", b"d4:type4:exec3:key1:ke", os.urandom(1000),
    b"l" * 5000, b"d4:call" + b"x" * 9000,
]


def test_urpc_server_survives_garbage_datagrams(app):
    for d in GARBAGE_DATAGRAMS:
        lua.udp_exchange(app.urpc_port, d, expect_reply=False)
    still_serving(app)


def test_urpc_oversized_call_is_refused_locally(app):
    node = ("127.0.0.1", app.urpc_port)
    ok, msg = run(urpc.acall, node, ["concat", "x" * 9000, "y"], 5)
    assert ok is False and msg.startswith("call length (") and int(msg[13:-1]) > 8192


def test_urpc_oversized_reply_gives_the_original_error(app):
    node = ("127.0.0.1", app.urpc_port)

    def main():
        return urpc.acall(node, ["big", 10000], 5), urpc.call(node, ["big", 100], 5)
    (ok, msg), small = run(main)
    assert ok is False and msg.startswith("reply length (") and int(msg[14:-1]) > 8192
    assert small == "x" * 100


def test_rpc_and_rpcq_carry_big_values(app):
    def main():
        return (rpc.call(("127.0.0.1", app.rpc_port), ["big", 3_000_000]),
                rpcq.call(("127.0.0.1", app.rpcq_port), ["big", 3_000_000]),
                rpc.call(("127.0.0.1", app.rpc_port), ["concat", "y" * 2_000_000, "z"]))
    a, b, c = run(main)
    assert a == b == "x" * 3_000_000 and c == "y" * 2_000_000 + "z"


# ------------------------------------------------------------------ hostile servers

@pytest.mark.parametrize("reply", [b"99999999999999\n", b"abc\n", b"5\nhello", b"3\ni1e",
                                   b"3\nabc", b""])
def test_rpc_client_survives_hostile_replies(reply):
    srv = FakeLuaServer("rpc", lambda raw: reply)
    try:
        ok, msg = run(rpc.acall, ("127.0.0.1", srv.port), "f", 5)
    finally:
        srv.close()
    assert ok is False and isinstance(msg, str) and msg


@pytest.mark.parametrize("reply", [b"99999999999999\n", b"abc\n", b"5\nhello", b"3\ni1e"])
def test_rpcq_client_survives_hostile_replies(reply):
    srv = FakeLuaServer("rpcq", lambda raw: reply)
    try:
        ok, msg = run(rpcq.acall, ("127.0.0.1", srv.port), "f", 1.5)
    finally:
        srv.close()
    assert ok is False and isinstance(msg, str) and msg


def test_urpc_client_ignores_foreign_datagrams():
    def answer(datagram):
        return b"garbage" if b"free" not in datagram else None
    srv = FakeLuaServer("urpc", answer)
    try:
        assert run(urpc.acall, ("127.0.0.1", srv.port), "f", 0.8) == (False, "timeout")
    finally:
        srv.close()


def test_rpc_server_drops_a_silent_client_after_server_timeout():
    saved = rpc.settings["server_timeout"]
    rpc.settings["server_timeout"] = 0.3
    port = free_port()

    def main():
        from splay import socket as ssocket
        rpc.server(port, namespace={"f": lambda: "ok"})
        silent = ssocket.connect("127.0.0.1", port)
        silent.settimeout(10)
        start = time.monotonic()
        got = silent.receive("*a")
        took = time.monotonic() - start
        after = rpc.call(("127.0.0.1", port), "f")
        rpc.stop_server(port)
        return got, silent.error, took, after
    try:
        got, error, took, after = run(main)
    finally:
        rpc.settings["server_timeout"] = saved
    assert (got, error) in ((None, "closed"), (b"", None))
    assert took < 5 and after == "ok"
