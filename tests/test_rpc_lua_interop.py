"""pysplay's rpc, rpcq and urpc against a node running the original Lua SPLAY libraries, both ways.

These run when $SPLAY_LUA names a directory of the Lua SPLAY libraries built for Lua 5.1 (the
Lua peer of bench/test_rpc.py; BENCHMARKS.md, "The Lua original", says how to build one) and are
skipped otherwise, in CI too: the Lua libraries are not ours to ship, and there the bytes recorded
from them (tests/test_rpc_wire.py) stand in for them. The Lua node is bench/lua_rpc_peer.lua: a
server of concat(a, b), or a client that makes CALLERS x CALLS calls of concat("one", "two"),
checks every result and exits with status 0 only when all were right.
"""
import subprocess
from contextlib import contextmanager

import pytest

from bench.lua_splay import FAMILY, PEER, lua_env, lua_modules
from splay import benc, events, rpcq
from support_rpc import MODULES, port_for, running_rpc_app

pytestmark = pytest.mark.skipif(lua_modules() is None,
                                reason="no Lua SPLAY here: set SPLAY_LUA to run")

FUNCTIONS = '''
def concat(a, b):
    return a + b

def echo(*args):
    print("got", repr(args), flush=True)
    return args[0] if args else None

def fail(*args):
    raise ValueError("no")
'''

#: bench/lua_rpc_peer.lua's VALUES (Lua) as a Python node decodes them; Lua's encoder rounds
#: floats to integers (WIRE.md: 3.14 -> i3e, -2.5 -> i-2e), a table with keys 1..n is a list,
#: one with other integer keys a dict, an empty table an empty list.
FROM_LUA = ["h\u00e9llo", 42, -7, 2 ** 40, 3, -2, True, False, [1, 2, 3],
            {"a": 1, "b": [1, "x"]}, {1: 1, 3: 3}, [], [[1, [2, [3]]]]]

#: (Python value, what comes back from a Lua node's echo(value)): Lua numbers are doubles, its
#: encoder rounds floats, a dict with keys 1..n comes back a list, an empty dict an empty list,
#: and None, Lua's nil, is no argument at all (so no result).
THROUGH_LUA = [("h\u00e9llo", ["h\u00e9llo"]), (b"\x00\xff", [b"\x00\xff"]), (42, [42]),
               (-7, [-7]), (2 ** 40, [2 ** 40]), (2 ** 53 + 1, [2 ** 53]), (3.75, [4]),
               (-0.5, [0]), (1e20, [10 ** 20]), (True, [True]), (False, [False]),
               ([1, 2, 3], [[1, 2, 3]]), ([], [[]]), ({}, [[]]),
               ({"a": 1, "b": [1, "x"]}, [{"a": 1, "b": [1, "x"]}]),
               ({1: "a", 3: "c"}, [{1: "a", 3: "c"}]), ({1: "a", 2: "b"}, [["a", "b"]]),
               ([[1, [2, [3]]]], [[[1, [2, [3]]]]]), (None, [])]


@contextmanager
def lua_server(mode):
    """A Lua SPLAY node serving ``mode`` (bench/lua_rpc_peer.lua): yields its address."""
    port = port_for(MODULES[mode])
    server = subprocess.Popen(["lua5.1", PEER, "server", FAMILY[mode], str(port)],
                              env=lua_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    try:
        assert server.stdout.readline().strip() == str(port), "the Lua server did not start"
        yield ("127.0.0.1", port)
    finally:
        server.kill()
        server.wait()


#: What Lua's acall returns (bench/lua_rpc_peer.lua prints "<name> <ok> <reply or error>") when
#: a pysplay server's function raises, or does not exist, and then for a good call (docs/rpc.md,
#: "Wire formats and error replies"): rpcq's reply without "reply" is nil to Lua, rpc's error
#: dict unpacks to nothing (nil to ``call``), urpc's error is Lua's own failure.
LUA_SEES = {
    "rpcq": ["fail true nil", "no_such_function true nil", "concat true l2:abe"],
    "rpc": ["fail true d5:error14:ValueError: noe",
            "no_such_function true d5:error34:calling a variable with parameterse",
            "concat true l2:abe"],
    "urpc": ["fail false ValueError: no",
             "no_such_function false calling a variable with parameters", "concat true l2:abe"],
}


@pytest.fixture(scope="module")
def pysplay_app(tmp_path_factory):
    with running_rpc_app(tmp_path_factory.mktemp("app"), FUNCTIONS) as app:
        yield app


@pytest.mark.parametrize("mode", ["rpcq", "rpc", "urpc"])
def test_a_lua_client_calls_a_pysplay_server(pysplay_app, mode):
    # 10 Lua threads at once: rpcq's window and reply numbering, rpc's connections, urpc's ids
    done = subprocess.run(["lua5.1", PEER, "client", FAMILY[mode], str(pysplay_app.ports[mode]),
                           "10", "30"], env=lua_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"seconds"' in done.stdout


@pytest.mark.parametrize("mode", ["rpcq", "rpc", "urpc"])
def test_a_pysplay_client_calls_a_lua_server(mode):
    results = []
    with lua_server(mode) as node:
        def caller():
            for i in range(30):
                results.append(MODULES[mode].call(node, ["concat", f"n{i}-", "\u00e9t\u00e9"]))

        def main():
            threads = [events.thread(caller) for _ in range(10)]
            for t in threads:
                t.join()
        events.run(main)
    expected = [f"n{i}-\u00e9t\u00e9" for i in range(30) for _ in range(10)]
    assert sorted(results) == sorted(expected)


#: What a Python client gets from a Lua server when the function raises (Lua's rpc server closes
#: the connection; its rpcq and urpc handlers die without answering: the call times out) or does
#: not exist (Lua's rpcq answers without "reply"; its rpc and urpc answer an empty result list).
LUA_FAILURES = {"rpc": ((False, "closed"), (True, [])),
                "rpcq": ((False, "timeout"), (False, "the remote call failed")),
                "urpc": ((False, "timeout"), (True, []))}


@pytest.mark.parametrize("mode", ["rpcq", "rpc", "urpc"])
def test_failures_of_a_lua_server_and_it_keeps_serving(mode):
    out = {}
    with lua_server(mode) as node:
        def main():
            call = MODULES[mode].acall
            out["raises"] = call(node, ["fail"], timeout=2)
            out["missing"] = call(node, ["no_such_function", 1], timeout=10)
            out["after"] = call(node, ["concat", "a", "b"], timeout=10)
        events.run(main)
    assert (out["raises"], out["missing"]) == LUA_FAILURES[mode]
    assert out["after"] == (True, ["ab"])


@pytest.mark.parametrize("mode", ["rpcq", "rpc", "urpc"])
def test_nil_in_lists_between_python_and_lua(mode):
    out = {}
    with lua_server(mode) as node:
        def main():
            # Lua's decoder drops a nil inside a list: [1, None, 3] reaches echo as (1, 3)
            out["sent"] = MODULES[mode].acall(node, ["echo", 1, None, 3], timeout=10)
            # a Lua result with a hole is sent as a dict with integer keys: read as a list
            out["returned"] = MODULES[mode].acall(node, ["holes"], timeout=10)
        events.run(main)
    assert out == {"sent": (True, [1, 3]), "returned": (True, [1, None, 3])}


@pytest.mark.parametrize("mode", ["rpcq", "rpc", "urpc"])
def test_lua_values_reach_a_pysplay_server_and_come_back(pysplay_app, mode):
    seen = len(pysplay_app.output())
    done = subprocess.run(["lua5.1", PEER, "values", FAMILY[mode], str(pysplay_app.ports[mode])],
                          env=lua_env(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == len(FROM_LUA) + 3, lines
    for i, (line, expected) in enumerate(zip(lines, FROM_LUA), 1):
        index, encoded = line.split(b" ", 1)
        assert int(index) == i
        assert benc.decode(encoded) == expected, (i, encoded)   # what Lua decoded of our reply
    got = [line for line in pysplay_app.output()[seen:] if line.startswith("got ")]
    assert got == [f"got {(v,)!r}" for v in FROM_LUA]          # what we decoded of Lua's call
    # our error replies leave the Lua client standing, and it goes on calling
    assert [line.decode() for line in lines[-3:]] == LUA_SEES[mode]


@pytest.mark.parametrize("mode", ["rpcq", "rpc", "urpc"])
def test_python_values_reach_a_lua_server_and_come_back(mode):
    replies = []
    with lua_server(mode) as node:
        def main():
            for value, _ in THROUGH_LUA:
                replies.append(MODULES[mode].acall(node, ["echo", value], timeout=10))
            replies.append(MODULES[mode].acall(node, ["echo", 1, "two", [3]], timeout=10))
            replies.append(MODULES[mode].ping(node, timeout=10))
        events.run(main)
    expected = [(True, back) for _, back in THROUGH_LUA] + [(True, [1, "two", [3]])]
    assert replies[:-1] == expected
    assert isinstance(replies[-1], float) and replies[-1] > 0      # Lua answers the ping
