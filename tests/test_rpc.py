"""splay.rpc, splay.rpcq, splay.urpc: the common API between two real processes.

A pysplay application (the manual's examples plus a few probes) runs as ``__main__`` of its own
process with the three servers; this process calls it under ``events.run``. Every test runs for
each mode unless the behaviour is mode-specific.
"""
import time

import pytest

from splay import RPCError, RPCTimeout, events, rpc, rpcq, urpc
from lua_peer import free_port
from support_events import run
from support_rpc import MODULES, port_for, running_rpc_app, start_rpc_app

pytestmark = pytest.mark.timeout(90)

SERVER_FUNCTIONS = '''
import os
from os import system
from shutil import rmtree

# the manual's examples
def call_me(a):
    return "You called me with " + a

var = 5
var2 = [1, 2]
var3 = {
    "key": "value",
    "func": lambda a=None: "func_call " + str(a),
}

def concat(a, b):
    return a + b

# probes
_private = 42
calls = {"count": 0}

def count():
    calls["count"] += 1
    return calls["count"]

def several():
    return 1, None, "x"

def nothing():
    return None

def fail(message):
    raise ValueError(message)

def slow(seconds):
    events.sleep(seconds)
    return seconds

def echo(x):
    return x
'''


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_rpc_app(tmp_path_factory.mktemp("rpcapp"), SERVER_FUNCTIONS) as a:
        yield a


@pytest.fixture(params=["rpc", "rpcq", "urpc"])
def peer(request, app):
    """(module, node of the app's server for that module)."""
    mod = MODULES[request.param]
    return mod, {"ip": "127.0.0.1", "port": app.ports[request.param]}


# ------------------------------------------------------------------ the manual's examples

def test_manual_call_me(peer):
    mod, node = peer
    assert run(mod.call, node, ["call_me", mod.mode]) == f"You called me with {mod.mode}"


def test_manual_remote_variables(peer):
    mod, me = peer

    def main():
        return [
            mod.call(me, "no_var"),
            mod.call(me, "var"),
            mod.call(me, "var2"),
            mod.call(me, "var2[1]"),        # Python indexing: the manual's var2[2] in Lua
            mod.call(me, "var3['key']"),
            mod.call(me, 'var3["key"]'),
            mod.call(me, "var3.key"),
            mod.call(me, ["var3.func"]),
            mod.call(me, "var3.func"),
            mod.call(me, ["var3.func", "hello"]),
        ]
    assert run(main) == [None, 5, [1, 2], 2, "value", "value", "value", "func_call None",
                         "func_call None", "func_call hello"]


def test_manual_acall(peer):
    mod, me = peer
    ok, r = run(mod.acall, me, ["concat", "one", "two"])
    assert ok is True and r == ["onetwo"] and r[0] == "onetwo"


def test_manual_proxy(peer):
    mod, me = peer

    def main():
        node = mod.proxy(me)
        r = node.concat("one", "two")
        with pytest.raises(RPCError, match="ValueError: bad"):
            node.fail("bad")
        return r
    assert run(main) == "onetwo"


def test_manual_ping(peer):
    mod, me = peer
    rtt = run(mod.ping, me)
    assert isinstance(rtt, float) and 0 < rtt < 10


def test_mode_and_settings():
    assert (rpc.mode, rpcq.mode, urpc.mode) == ("rpc", "rpcq", "urpc")
    assert rpc.settings["default_timeout"] == 60 and rpc.settings["max"] is None
    assert rpcq.settings["default_timeout"] == 60 and rpcq.settings["window_size"] == 2
    assert {"clean_timeout", "reconnect_interval"} <= set(rpcq.settings)
    assert urpc.settings["default_timeout"] == 40
    assert {"retry_number", "cleaning_after"} <= set(urpc.settings)


# ------------------------------------------------------------------ return values and errors

def test_several_results_and_none(peer):
    mod, me = peer

    def main():
        return (mod.call(me, "several"), mod.acall(me, "several"), mod.call(me, "nothing"),
                mod.acall(me, "nothing"), mod.call(me, ["echo", {"a": [1, 2.5, None]}]))
    assert run(main) == ((1, None, "x"), (True, [1, None, "x"]), None, (True, [None]),
                         {"a": [1, 2.5, None]})


def test_remote_exception_fails_the_call_and_server_keeps_serving(peer):
    mod, me = peer

    def main():
        return (mod.acall(me, ["fail", "boom"]), mod.call(me, ["fail", "boom"]),
                mod.acall(me, ["concat", "a"]), mod.call(me, ["concat", "still", " alive"]))
    failed, as_call, wrong_args, alive = run(main)
    assert failed == (False, "ValueError: boom")
    assert as_call is None
    assert wrong_args[0] is False and "TypeError" in wrong_args[1]
    assert alive == "still alive"


def test_calling_a_variable_with_parameters(peer):
    mod, me = peer

    def main():
        return mod.acall(me, ["var", 1]), mod.acall(me, ["no_such_function", 1])
    assert run(main) == ((False, "calling a variable with parameters"),
                         (False, "calling a variable with parameters"))


def test_ecall_raises(peer):
    mod, me = peer

    def main():
        assert mod.ecall(me, ["concat", "a", "b"]) == "ab"
        with pytest.raises(RPCError, match="calling a variable with parameters"):
            mod.ecall(me, ["var", 1])
        with pytest.raises(RPCTimeout):
            mod.ecall(me, ["slow", 3], 0.3)
    run(main)


def test_slow_function_past_its_timeout(peer):
    mod, me = peer

    def main():
        start = time.monotonic()
        r = mod.acall(me, ["slow", 3], 0.4)
        took = time.monotonic() - start
        return r, took, mod.call(me, ["concat", "after", "wards"])
    r, took, after = run(main)
    assert r == (False, "timeout")
    assert took < 2.5
    assert after == "afterwards"


def test_nothing_listening(peer):
    mod, _ = peer
    node = ("127.0.0.1", port_for(mod))
    r = run(mod.acall, node, "f", 0.5)
    if mod is urpc:
        assert r == (False, "timeout")          # UDP: nothing tells the caller
    else:
        assert r == (False, "connection refused")
    assert run(mod.ping, node, 0.5) is None


def test_settings_max_waiting_counts_in_timeout(peer):
    mod, me = peer
    mod.settings["max"] = 1
    try:
        def main():
            slow_call = events.thread(lambda: mod.call(me, ["slow", 2.0]))
            events.sleep(0.05)
            start = time.monotonic()
            r = mod.acall(me, ["concat", "a", "b"], 0.3)
            took = time.monotonic() - start
            slow_call.join()
            return r, took, mod.acall(me, ["concat", "a", "b"], 5)
        blocked, took, later = run(main)
    finally:
        mod.settings["max"] = None
    # Had the wait for the slot not counted, the call would have got the slot after ~1 s and
    # then succeeded within its own 0.3 s.
    assert blocked == (False, "timeout") and took < 1.9
    assert later == (True, ["ab"])


def test_1000_concurrent_calls(peer):
    mod, me = peer
    results = {}

    def caller(i):
        results[i] = mod.acall(me, ["echo", [i, "x" * (i % 50)]])

    def main():
        threads = [events.thread(lambda i=i: caller(i)) for i in range(1000)]
        for t in threads:
            t.join()
    run(main)
    assert len(results) == 1000
    bad = {i: r for i, r in results.items() if r != (True, [[i, "x" * (i % 50)]])}
    assert not bad, list(bad.items())[:5]


def test_nodes_in_every_accepted_form(app):
    from splay import Node
    port = app.ports["rpc"]

    def main():
        return [rpc.call(n, ["concat", "a", "b"]) for n in
                ({"ip": "127.0.0.1", "port": port}, Node("127.0.0.1", port), ("127.0.0.1", port))]
    assert run(main) == ["ab"] * 3


def test_calls_outside_a_thread_raise_not_in_thread(app):
    from splay import NotInThread
    for mod in MODULES.values():
        with pytest.raises(NotInThread):
            mod.call(("127.0.0.1", app.ports[mod.mode]), "var")


# ------------------------------------------------------------------ the closed namespace

def test_closed_namespace(peer, tmp_path):
    mod, me = peer
    witness = tmp_path / "witness"
    victim = tmp_path / "victim"
    victim.mkdir()
    probes = [
        ["os.system", f"touch {witness}"],
        ["system", f"touch {witness}"],
        ["rmtree", str(victim)],
        ["__import__", "os"],
        ["eval", "1+1"],
        ["exec", "import os"],
        ["open", str(witness), "w"],
        ["_private"],
        ["concat.__globals__"],
        ["concat.__code__"],
        ["var3.__class__"],
        ["var3['__class__']"],
        ["var2.append", 3],
        ["os.path.join", "a", "b"],
        ["sys.modules"],
        ["events.exit"],
        ["call_me.__globals__['os'].system", "true"],
    ]

    def main():
        return [mod.acall(me, p) for p in probes] + [mod.acall(me, "_private"),
                                                       mod.acall(me, "os")]
    results = run(main)
    for probe, (ok, value) in zip(probes + ["_private", "os"], results):
        if ok:     # only a missing name may "succeed", and it reads as nothing
            assert value == [None], (probe, value)
        else:
            assert isinstance(value, str) and value, probe
    assert not witness.exists()
    assert victim.exists()
    assert run(mod.call, me, "var2") == [1, 2]       # var2.append did not run


# ------------------------------------------------------------------ failures of the peer

def test_peer_killed_mid_call(tmp_path):
    victim = start_rpc_app(tmp_path, SERVER_FUNCTIONS)
    try:
        def main():
            out = {}
            for name in ("rpc", "rpcq", "urpc"):
                mod = MODULES[name]
                node = ("127.0.0.1", victim.ports[name])
                out[name] = events.thread(lambda mod=mod, node=node, name=name:
                                          out.__setitem__(name, mod.acall(node, ["slow", 20], 3)))
            events.sleep(0.5)
            victim.stop()
            start = time.monotonic()
            for name in ("rpc", "rpcq", "urpc"):
                t = out[name]
                if not isinstance(t, tuple):
                    t.join()
            return out, time.monotonic() - start
        out, took = run(main)
    finally:
        victim.stop()
    assert out["rpc"][0] is False and out["rpc"][1] in ("closed", "connection reset by peer")
    assert out["rpcq"][0] is False
    assert out["urpc"] == (False, "timeout")
    assert took < 10


def test_exit_stops_the_servers_of_the_run():
    port = free_port()

    def main():
        rpc.server(port, namespace={"f": lambda: 1})
        assert rpc.call(("127.0.0.1", port), "f") == 1
        events.exit()
    start = time.monotonic()
    events.run(main)
    assert time.monotonic() - start < 5

    def after():
        return rpc.acall(("127.0.0.1", port), "f", 2)
    assert run(after) == (False, "connection refused")


def test_stop_server(peer):
    mod, _ = peer
    port = port_for(mod)

    def main():
        mod.server(port, namespace={"f": lambda: "here"})
        first = mod.call(("127.0.0.1", port), "f")
        stopped = mod.stop_server(port)
        again = mod.stop_server(port)
        after = mod.acall(("127.0.0.1", port), "f", 0.5)
        return first, stopped, again, after
    first, stopped, again, after = run(main)
    assert first == "here" and stopped is True and again is None
    assert after[0] is False


def test_server_on_a_busy_port_raises_oserror(peer):
    mod, _ = peer
    port = port_for(mod)

    def main():
        mod.server(port, namespace={})
        try:
            with pytest.raises(OSError, match="cannot listen"):
                mod.server(port, namespace={})
        finally:
            mod.stop_server(port)
    run(main)


def test_namespace_of_the_node_with_several_nodes_in_a_process():
    from splayc import hub

    class FakeNode:
        def __init__(self, namespace):
            self.namespace = namespace

    port_a, port_b = free_port(), free_port()
    node_a = FakeNode({"__name__": "app_a", "who": "a"})
    node_b = FakeNode({"__name__": "app_b", "who": "b"})

    def main():
        hub.spawn_in_node(node_a, rpc.server, port_a)
        hub.spawn_in_node(node_b, rpc.server, port_b)
        events.sleep(0.05)
        out = rpc.call(("127.0.0.1", port_a), "who"), rpc.call(("127.0.0.1", port_b), "who")
        rpc.stop_server(port_a)
        rpc.stop_server(port_b)
        return out
    assert run(main) == ("a", "b")


def test_manual_recursive_find_callback():
    """The manual's callback example: the called function replies at once and calls back later."""
    import random
    port = free_port()
    me = {"ip": "127.0.0.1", "port": port}
    ns = {}

    def callback(node, count):
        ns["count"] = count
        events.fire("node", node)

    def recursive_find(m):
        def later():
            if random.randint(1, 10) == 1 or m["count"] >= 20:
                rpc.call(m["origin"], ["callback", me, m["count"]])
            else:
                m["count"] += 1
                rpc.call(me, ["recursive_find", m])
        events.thread(later)

    ns.update(callback=callback, recursive_find=recursive_find)

    def main():
        rpc.server(port, namespace=ns)
        m = {"origin": me, "count": 0}
        waiter = {}
        t = events.thread(lambda: waiter.setdefault("dest", events.wait("node", 20)))
        rpc.call(me, ["recursive_find", m])
        t.join()
        rpc.stop_server(port)
        return waiter["dest"]
    ok, dest = run(main)
    assert ok is True and dest == me and 0 <= ns["count"] <= 20


def test_ip_and_port_as_two_arguments(peer):
    mod, node = peer
    ip, port = node["ip"], node["port"]

    def main():
        return (mod.acall(ip, port, ["concat", "one", "two"]),
                mod.acall(ip, port, ["concat", "a", "b"], 10),
                mod.call(ip, port, ["concat", "c", "d"], timeout=10),
                mod.ecall(ip, port, "var"),
                mod.ping(ip, port, 10) is not None,
                mod.proxy(ip, port, 10).concat("e", "f"),
                mod.acall(node, call=["concat", "g", "h"], timeout=10))
    assert run(main) == ((True, ["onetwo"]), (True, ["ab"]), "cd", 5, True, "ef", (True, ["gh"]))


def test_too_many_arguments_are_refused(peer):
    mod, node = peer

    def main():
        with pytest.raises(TypeError, match="at most 2 more"):
            mod.acall(node, "var", 10, "extra")
        with pytest.raises(TypeError, match="needs the call"):
            mod.acall(node["ip"], node["port"])
        with pytest.raises(TypeError, match="both by position and as call="):
            mod.call(node, "var", call="var")
        return mod.call(node, "var")                 # still served
    assert run(main) == 5


def test_failed_ping_logs_its_reason():
    lines = []
    saved = rpc.l_o.level
    rpc.l_o.out, rpc.l_o.level = lines.append, 1

    def main():
        return rpc.ping("127.0.0.1", free_port(), 5)
    try:
        assert run(main) is None
    finally:
        rpc.l_o.out, rpc.l_o.level = None, saved     # None: follow log.global_out again
    assert any("ping" in line and "connection refused" in line for line in lines), lines


def test_rpc_call_to_a_killed_or_stopped_peer_fails_at_once(tmp_path):
    app = start_rpc_app(tmp_path, "def echo(x):\n    return x\n")
    node = ("127.0.0.1", app.rpc_port)
    own = free_port()

    def main():
        first = rpc.acall(node, ["echo", 1], 20)
        app.stop()                                   # SIGKILL
        start = time.monotonic()
        killed = rpc.acall(node, ["echo", 2], 20)
        rpc.server(own, namespace={"v": 1})
        rpc.stop_server(own)
        stopped = rpc.acall(("127.0.0.1", own), "v", 20)
        return first, killed, stopped, time.monotonic() - start
    try:
        first, killed, stopped, took = run(main)
    finally:
        app.stop()
    assert first == (True, [1])
    assert killed == stopped == (False, "connection refused") and took < 5
