"""The rpcq server's connection (splayc/rpc_fast.pyx, RpcqServerConnection): each call runs inside
the connection's reader thread, and a call that suspends hands the reading over to a new thread.

What a thread per call guaranteed must still hold: a blocked call does not hold up the calls
behind it, calls do not see each other's contextvars, a call may yield or sleep, and the
connection ends cleanly (no thread left) whatever state its calls are in.
"""
import contextvars

import pytest

from splay import events, rpcq
from lua_peer import free_port
from support_events import restored_settings, run
from splayc.hub import hub as current_hub
from splayc.rpcstats import threads_by_node

pytestmark = pytest.mark.timeout(60)

var = contextvars.ContextVar("var", default="unset")


@pytest.fixture
def settings():
    yield from restored_settings(rpcq)


def served_functions(log):
    def slow(name, seconds):
        events.sleep(seconds)
        log.append(name)
        return name

    def yielding(name):
        events.yield_()
        log.append(name)
        return name

    def set_var(value):
        var.set(value)
        return var.get()

    def get_var():
        return var.get()

    def fast(name):
        log.append(name)
        return name

    return {f.__name__: f for f in (slow, yielding, set_var, get_var, fast)}


def test_a_blocked_call_does_not_hold_up_the_calls_behind_it(settings):
    settings["window_size"] = 10
    log = []
    port = free_port()

    def main():
        rpcq.server(port, namespace=served_functions(log))
        node = ("127.0.0.1", port)
        results = {}

        def caller(key, call):
            results[key] = rpcq.call(node, call)

        threads = [events.thread(lambda: caller(0, ["slow", "slow", 0.3]))]
        threads += [events.thread(lambda i=i: caller(i + 1, ["fast", f"fast{i}"]))
                    for i in range(5)]
        for t in threads:
            t.join()
        rpcq.stop_server(port)
        return [results[k] for k in range(6)]

    results = run(main)
    assert log == [f"fast{i}" for i in range(5)] + ["slow"]
    assert results == ["slow"] + [f"fast{i}" for i in range(5)]


def test_calls_on_one_connection_do_not_see_each_other_contextvars(settings):
    port = free_port()

    def main():
        rpcq.server(port, namespace=served_functions([]))
        node = ("127.0.0.1", port)
        out = [rpcq.call(node, ["set_var", "first call's"]), rpcq.call(node, ["get_var"])]
        # and after a call that suspended (the reading moved to another thread)
        rpcq.call(node, ["slow", "s", 0.01])
        out += [rpcq.call(node, ["set_var", "third call's"]), rpcq.call(node, ["get_var"])]
        rpcq.stop_server(port)
        return out

    assert run(main) == ["first call's", "unset", "third call's", "unset"]


def test_calls_that_yield_or_sleep_in_turn_all_get_their_replies(settings):
    settings["window_size"] = 50
    log = []
    port = free_port()

    def main():
        rpcq.server(port, namespace=served_functions(log))
        node = ("127.0.0.1", port)
        calls = []
        for i in range(30):
            call = (["yielding", f"y{i}"] if i % 3 == 0 else ["slow", f"s{i}", 0.001 * (i % 5)]
                    if i % 3 == 1 else ["fast", f"f{i}"])
            calls.append(call)
        got = [None] * len(calls)

        def caller(i):
            got[i] = rpcq.call(node, calls[i])

        for t in [events.thread(lambda i=i: caller(i)) for i in range(len(calls))]:
            t.join()
        rpcq.stop_server(port)
        return calls, got

    calls, got = run(main)
    assert got == [c[1] for c in calls]
    assert sorted(log) == sorted(c[1] for c in calls)


def live_threads():
    return sum(threads_by_node(current_hub()).values())


def test_a_connection_closed_during_a_suspended_call_ends_every_thread(settings):
    port = free_port()
    counts = []

    def main():
        rpcq.server(port, namespace=served_functions([]))
        node = ("127.0.0.1", port)
        counts.append(live_threads())   # main alone: the server waits for connections by callback
        late = []
        caller = events.thread(lambda: late.append(
            rpcq.acall(node, ["slow", "late", 0.5], timeout=1)))
        events.sleep(0.1)               # the call is running (suspended) in the server
        rpcq.stop_server(port)          # closes the connection under it
        caller.join()
        counts.append(late[0])
        events.sleep(0.6)               # the suspended call ends (its reply has nowhere to go)
        counts.append(live_threads())

    run(main)
    assert counts[0] == 1 and counts[2] == 1, counts
    assert counts[1][0] is False        # the caller learnt that its connection was lost



def test_replies_read_before_a_blocked_call_do_not_wait_for_it(settings):
    """Two requests in one write, a fast one then one that blocks: the fast one's reply, queued
    for the reader's next write, leaves when the new reader takes over, not when the blocked call
    ends."""
    settings["window_size"] = 10
    port = free_port()

    def blocked():
        events.wait("rpcq-test-unblock")
        return "unblocked"

    def main():
        rpcq.server(port, namespace={"blocked": blocked, "fast": lambda: "fast"})
        node = ("127.0.0.1", port)
        rpcq.call(node, ["fast"])                       # the connection is open and idle
        out = {}

        def one(name):
            out[name] = rpcq.acall(node, [name], 10)
            events.fire("rpcq-test-done-" + name)
        events.thread(lambda: one("fast"))              # queued in the same round: one write
        events.thread(lambda: one("blocked"))
        fast_in_time = events.wait("rpcq-test-done-fast", 3)[0]
        events.fire("rpcq-test-unblock")
        assert events.wait("rpcq-test-done-blocked", 10)[0]
        rpcq.stop_server(port)
        return fast_in_time, out
    fast_in_time, out = run(main)
    assert fast_in_time is True
    assert out == {"fast": (True, ["fast"]), "blocked": (True, ["unblocked"])}


def test_a_call_that_kills_its_own_thread_ends_unanswered_and_the_connection_serves_on(settings):
    """The call runs in the connection's reader thread: killing that thread ends the call (no
    reply: its caller times out, as with a thread of its own), not the connection, which would
    make the client resend it (and the calls before it) again and again."""
    settings["window_size"] = 10
    log = []
    port = free_port()

    def suicidal():
        log.append("suicidal")
        events.kill(events.current())

    def main():
        namespace = served_functions(log)
        namespace["suicidal"] = suicidal
        rpcq.server(port, namespace=namespace)
        node = ("127.0.0.1", port)
        rpcq.call(node, ["fast", "first"])              # the connection is open and idle
        out = {}

        def one(key, call, timeout):
            out[key] = rpcq.acall(node, call, timeout)
        # The fast calls go first, in the same write: their replies are queued, unsent, when the
        # suicidal call runs; they must leave, not be lost with a closed connection.
        threads = [events.thread(lambda i=i: one(i, ["fast", i], 10)) for i in range(5)]
        threads.append(events.thread(lambda: one("dead", ["suicidal"], 1.0)))
        for t in threads:
            t.join()
        after = rpcq.acall(node, ["fast", "after"], 10)
        conns = len(rpcq.connections())
        rpcq.stop_server(port)
        return out, after, conns
    out, after, conns = run(main)
    assert out["dead"] == (False, "timeout")
    assert [out[i] for i in range(5)] == [(True, [i]) for i in range(5)]
    assert after == (True, ["after"]) and conns == 1
    assert log == ["first", 0, 1, 2, 3, 4, "suicidal", "after"]     # each call ran once
