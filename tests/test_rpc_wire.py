"""Byte compatibility with Lua SPLAY nodes (WIRE.md), with a fake Lua peer on both sides.

No Lua SPLAY is installed on this machine: tests/lua_peer.py replays the bytes WIRE.md recorded
from the Lua libraries. As a *server*, the fake peer checks what the pysplay clients send and
answers Lua's bytes; as a *client*, it sends Lua's bytes to pysplay servers running in another
process and checks the bytes that come back.
"""
import time

import pytest

from splay import benc, rpc, rpcq, urpc
import lua_peer as lua
from lua_peer import FakeLuaServer
from support_events import run
from support_rpc import running_rpc_app

pytestmark = pytest.mark.timeout(60)


def wait_for(predicate, timeout=5.0):
    """Poll a condition set by the fake peer's stdlib thread (it cannot fire pysplay events)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def fake():
    servers = []

    def make(mode, answer):
        s = FakeLuaServer(mode, answer)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.close()
        assert not s.errors, s.errors


# ------------------------------------------------------------------ pysplay client -> Lua server

def test_rpc_client_sends_lua_bytes(fake):
    replies = {lua.RPC_CALL_REQUEST: lua.RPC_CALL_REPLY, lua.RPC_PING_REQUEST: lua.RPC_PING_REPLY}
    srv = fake("rpc", replies.get)
    node = {"ip": "127.0.0.1", "port": srv.port}

    def main():
        return rpc.call(node, ["concat", "one", "two"]), rpc.ping(node)
    result, rtt = run(main)
    assert result == "onetwo" and rtt is not None
    assert srv.received == [lua.RPC_CALL_REQUEST, lua.RPC_PING_REQUEST]


def test_rpc_client_reads_lua_failures(fake):
    replies = iter([lua.RPC_UNKNOWN_WITH_ARGS_REPLY, None, b"14\ndi1ei1ei3ei3ee"])
    srv = fake("rpc", lambda raw: next(replies))
    node = ("127.0.0.1", srv.port)

    def main():
        return (rpc.acall(node, ["nothing", 1]),       # Lua: error caught, empty result list
                rpc.acall(node, ["fails"]),              # Lua: closes without a reply
                rpc.acall(node, "holes"))                # Lua: return 1, nil, 3
    assert run(main) == ((True, []), (False, "closed"), (True, [1, None, 3]))


def test_rpcq_client_against_lua_server(fake):
    def answer(raw):
        req = benc.decode(raw.split(b"\n", 1)[1])
        if req["type"] == "ping":
            body = b"d5:replyt1:ni%dee" % req["n"]
            return b"%d\n" % len(body) + body
        if req["call"][0] == "fails":
            body = b"d1:ni%dee" % req["n"]                 # Lua: no "reply" key on failure
            return b"%d\n" % len(body) + body
        return lua.rpcq_reply(req["n"])                   # concat("a", "b") -> "ab"
    srv = fake("rpcq", answer)
    node = ("127.0.0.1", srv.port)

    def main():
        return (rpcq.call(node, ["concat", "a", "b"]), rpcq.ping(node) is not None,
                rpcq.acall(node, ["fails"]), rpcq.call(node, ["concat", "a", "b"]))
    assert run(main) == ("ab", True, (False, "the remote call failed"), "ab")
    first = srv.received[0]
    assert first == b"42\nd4:calll6:concat1:a1:be1:ni1e4:type4:calle"   # canonical key order
    assert [benc.decode(r.split(b"\n", 1)[1])["n"] for r in srv.received] == [1, 2, 3, 4]


def test_urpc_client_against_lua_server(fake):
    def answer(datagram):
        req = benc.decode(datagram)
        if "free" in req:
            return None
        if req["type"] == "ping":
            k = req["key"].encode()
            return b"d4:type4:ping3:key%d:%s5:replyte" % (len(k), k)
        return lua.urpc_reply(req["key"])
    srv = fake("urpc", answer)
    node = ("127.0.0.1", srv.port)

    def main():
        return urpc.call(node, ["concat", "one", "two"], 5), urpc.ping(node, 5) is not None
    assert run(main) == ("onetwo", True)
    assert wait_for(lambda: len(srv.received) >= 3)
    call, free = (benc.decode(d) for d in srv.received[:2])
    key = call["key"]
    assert len(key) > 40 and all(c in "0123456789abcdef" for c in key[:40])
    assert srv.received[0] == (b"d4:calll6:concat3:one3:twoe3:key%d:%s4:type4:calle"
                               % (len(key), key.encode()))
    assert free == {"free": True, "key": key}
    assert benc.decode(srv.received[2])["type"] == "ping"


def test_urpc_client_retries_then_gets_the_reply(fake):
    seen = []

    def answer(datagram):
        req = benc.decode(datagram)
        if "free" in req:
            return None
        seen.append(req["key"])
        return lua.urpc_reply(req["key"]) if len(seen) >= 3 else None   # lose two datagrams
    srv = fake("urpc", answer)
    assert run(urpc.acall, ("127.0.0.1", srv.port), ["concat", "one", "two"], 2) == \
        (True, ["onetwo"])
    assert len(seen) == 3 and len(set(seen)) == 1           # the same key every time


# ------------------------------------------------------------------ Lua client -> pysplay server

SERVER_FUNCTIONS = '''
def concat(a, b):
    return f"{a}{b}"        # Lua's .. also joins numbers

runs = {"count": 0}

def count():
    runs["count"] += 1
    return runs["count"]

def fail():
    raise RuntimeError("remote failure")
'''


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_rpc_app(tmp_path_factory.mktemp("wire"), SERVER_FUNCTIONS) as a:
        yield a


def test_lua_rpc_client(app):
    assert lua.tcp_exchange(app.rpc_port, lua.RPC_CALL_REQUEST) == lua.RPC_CALL_REPLY
    assert lua.tcp_exchange(app.rpc_port, lua.RPC_PING_REQUEST) == lua.RPC_PING_REPLY


def test_lua_rpc_client_gets_a_readable_error_reply(app):
    request = b"d4:calll4:faile4:type4:calle"
    raw = lua.tcp_exchange(app.rpc_port, b"%d\n" % len(request) + request)
    length, body = raw.split(b"\n", 1)
    assert int(length) == len(body)
    reply = benc.decode(body)
    # a dict without integer keys: Lua's unpack() of it gives no values (nil), nothing breaks
    assert reply == {"error": "RuntimeError: remote failure"}


def test_lua_rpcq_client_pipelined(app):
    import socket
    ping = b"d4:type4:ping1:ni2ee"
    with socket.create_connection(("127.0.0.1", app.rpcq_port), timeout=10) as s:
        s.sendall(lua.RPCQ_CALL_REQUEST + b"%d\n" % len(ping) + ping)
        f = s.makefile("rb")
        replies = [lua.read_block(f), lua.read_block(f)]
    by_n = {benc.decode(r)["n"]: r for r in replies}
    assert by_n[1] == b"d1:ni1e5:replyl4:one1ee"
    assert by_n[2] == b"d1:ni2e5:replyte"


def test_lua_rpcq_client_error_reply_has_no_reply_key(app):
    import socket
    req = b"d4:calll4:faile4:type4:call1:ni9ee"
    with socket.create_connection(("127.0.0.1", app.rpcq_port), timeout=10) as s:
        s.sendall(b"%d\n" % len(req) + req)
        reply = benc.decode(lua.read_block(s.makefile("rb")))
    assert reply == {"n": 9, "error": "RuntimeError: remote failure"}


def test_lua_urpc_client(app):
    key = lua.urpc_key(1)
    reply = lua.udp_exchange(app.urpc_port, lua.urpc_call(key))
    assert reply == b"d4:calll6:onetwoe3:key41:%s5:replyt4:type4:calle" % key.encode()
    assert benc.decode(reply) == benc.decode(lua.urpc_reply(key))      # same dict as Lua's
    assert benc.decode(lua.udp_exchange(app.urpc_port, lua.URPC_PING)) == \
        benc.decode(lua.URPC_PING_REPLY)


def test_lua_urpc_client_at_most_once_until_free(app):
    key = lua.urpc_key(77)
    k = key.encode()
    call = b"d4:calll5:counte4:type4:call3:key%d:%se" % (len(k), k)
    first = lua.udp_exchange(app.urpc_port, call)
    retry = lua.udp_exchange(app.urpc_port, call)
    assert first == retry                                # answered from the cache: ran once
    lua.udp_exchange(app.urpc_port, lua.urpc_free(key), expect_reply=False)
    # after the free the key is forgotten: the same key runs the function again
    again = lua.udp_exchange(app.urpc_port, call)
    n1 = benc.decode(first)["call"][0]
    assert benc.decode(again)["call"][0] == n1 + 1
