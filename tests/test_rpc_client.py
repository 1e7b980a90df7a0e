"""splayc/rpc_client.pyx: the compiled acall/call/ecall give what ClientAPI's methods give, for
every form of arguments (the common ones run compiled, the others go to ClientAPI itself).

Both sides are built over the same transport and run against a real rpcq server on loopback.
"""
import pytest

from splay import RPCError, RPCTimeout, events, log, rpcq
from splay.node import Node
from splay.rpc_core.client_api import ClientAPI
from splayc.rpc_client import client_functions
from lua_peer import free_port

pytestmark = pytest.mark.timeout(60)


def concat(a, b):
    return a + b


def pair():
    return 1, 2


def nothing():
    return None


def lua_hole():
    # What a Lua peer with a nil among its results sends: a dict with integer keys.
    return {1: "a", 3: "c"}


def fails():
    raise ValueError("bad input")


def slow():
    events.sleep(2)
    return "late"


NAMESPACE = {f.__name__: f for f in (concat, pair, nothing, lua_hole, fails, slow)}


def forms(port):
    """(args, kwargs) of calls, the common case first, then every other form."""
    ip = "127.0.0.1"
    tup, node, table = (ip, port), Node(ip, port), {"ip": ip, "port": port}
    return [
        ((tup, ["concat", "a", "b"]), {}),
        ((node, ["concat", "a", "b"]), {}),
        ((table, ["concat", "a", "b"]), {}),
        ((tup, ["concat", "a", "b"]), {"timeout": 5}),
        ((tup, ["concat", "a", "b"]), {"timeout": -1}),
        ((tup, ["pair"]), {}),
        ((tup, ["nothing"]), {}),
        ((tup, ["lua_hole"]), {}),
        ((tup, ["fails"]), {}),
        ((tup, ["missing_function"]), {}),
        ((tup, ["slow"]), {"timeout": 0.2}),
        ((ip, port, ["concat", "x", "y"]), {}),            # ip, port form
        ((tup, "pair"), {}),                               # the call as a bare name
        ((tup, ("concat", "t", "u")), {}),                 # as a tuple
        ((tup,), {"call": ["concat", "k", "w"]}),          # call= keyword
        ((tup, ["concat", "a", "b"], 5), {}),              # timeout by position
        ((("127.0.0.1", free_port()), ["concat", "a", "b"]), {}),   # nobody listens
        (({"ip": "*", "port": port}, ["concat", "a", "b"]), {}),    # the general parser
        ((tup, []), {}),                                   # an empty call
    ]


def outcome(fn, args, kwargs):
    try:
        return ("value", fn(*args, **kwargs))
    except (RPCError, TypeError) as e:
        return (type(e).__name__, str(e))


@pytest.mark.parametrize("name", ["acall", "call", "ecall"])
def test_compiled_functions_give_what_the_client_api_gives(name):
    port = free_port()
    api = ClientAPI("rpcq", rpcq.settings, rpcq._transport, log.module_logger("rpcq"))
    compiled = dict(zip(("acall", "call", "ecall"), client_functions(api)))[name]
    python = getattr(api, name)
    results = []

    def main():
        rpcq.server(port, namespace=NAMESPACE)
        for args, kwargs in forms(port):
            results.append((args, kwargs, outcome(compiled, args, kwargs),
                            outcome(python, args, kwargs)))
        events.exit()

    events.run(main)
    assert len(results) == len(forms(port))
    for args, kwargs, got, want in results:
        assert got == want, (args, kwargs)
    # and the common forms did what they should (not merely the same wrong thing twice)
    expected = ("value", (True, ["ab"]) if name == "acall" else "ab")
    assert [got for _, _, got, _ in results[:5]] == [expected] * 5


def test_ecall_raises_rpc_timeout_then_rpc_error():
    port = free_port()
    api = ClientAPI("rpcq", rpcq.settings, rpcq._transport, log.module_logger("rpcq"))
    _, _, ecall = client_functions(api)
    raised = []

    def main():
        rpcq.server(port, namespace=NAMESPACE)
        for call in (["slow"], ["fails"]):
            try:
                ecall(("127.0.0.1", port), call, timeout=0.2)
            except RPCError as e:
                raised.append((type(e), str(e)))
        events.exit()

    events.run(main)
    assert raised[0][0] is RPCTimeout and raised[0][1].endswith(": timeout")
    assert raised[1][0] is RPCError and "bad input" in raised[1][1]


def test_settings_max_goes_through_the_client_api_semaphore():
    port = free_port()
    old = rpcq.settings["max"]
    got = []

    def main():
        rpcq.server(port, namespace=NAMESPACE)
        got.append(rpcq.call(("127.0.0.1", port), ["concat", "m", "x"]))
        events.exit()

    rpcq.settings["max"] = 1
    try:
        events.run(main)
    finally:
        rpcq.settings["max"] = old
    assert got == ["mx"]
