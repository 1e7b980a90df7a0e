"""splay.rpc_core.server.TCPServer with ``inline`` (splay.rpc's server): the accept thread serves
each connection itself, since TCP_DEFER_ACCEPT hands it over with its request already read, and
hands the accepting to a new thread whenever a connection waits. Real loopback sockets."""
import time

import pytest

from splay import events, rpc, socket
from splay.rpc_core.server import TCPServer
from lua_peer import free_port
from support_events import run

pytestmark = pytest.mark.timeout(60)


def test_rpc_server_serves_in_the_accept_thread():
    port = free_port()

    def main():
        rpc.server(port, namespace={"f": lambda: 1})
        srv = rpc._module.servers.by_port[port]
        r = rpc.call(("127.0.0.1", port), ["f"])
        rpc.stop_server(port)
        return srv.inline, r
    assert run(main) == (True, 1)


def test_a_blocked_call_does_not_hold_up_the_next_connections():
    port = free_port()

    def slow():
        events.fire("inline-test-slow-started")
        events.wait("inline-test-release")
        return "slow"

    def main():
        rpc.server(port, namespace={"slow": slow, "fast": lambda i: i})
        results = []

        def caller():
            results.append(rpc.call(("127.0.0.1", port), ["slow"]))
            events.fire("inline-test-slow-done")
        events.thread(caller)
        assert events.wait("inline-test-slow-started", 10)[0]
        fast = [rpc.call(("127.0.0.1", port), ["fast", i]) for i in range(20)]
        before = list(results)
        events.fire("inline-test-release")
        assert events.wait("inline-test-slow-done", 10)[0]
        rpc.stop_server(port)
        return fast, before, results
    fast, before, results = run(main)
    assert fast == list(range(20)) and before == [] and results == ["slow"]


def test_a_silent_connection_does_not_hold_up_calls():
    """A client that connects and sends nothing is accepted after the deferral; the thread that
    serves it waits for its request and the others go on."""
    port = free_port()

    def main():
        rpc.server(port, namespace={"f": lambda i: i * 2})
        silent = socket.connect("127.0.0.1", port)
        t0 = time.monotonic()
        answers = []
        while time.monotonic() - t0 < 2.5:            # across the ~1 s deferral of the silent one
            answers.append(rpc.call(("127.0.0.1", port), ["f", len(answers)], 5))
        silent.close()
        rpc.stop_server(port)
        return answers
    answers = run(main)
    assert answers == [2 * i for i in range(len(answers))] and len(answers) > 10


def test_many_concurrent_calls_that_yield_are_all_answered():
    port = free_port()

    def napping(i):
        events.sleep(0.01)
        return i

    def main():
        rpc.server(port, namespace={"napping": napping})
        out = {}

        def one(i):
            out[i] = rpc.call(("127.0.0.1", port), ["napping", i], 20)
        threads = [events.thread(lambda i=i: one(i)) for i in range(200)]
        while len(out) < 200:
            events.sleep(0.01)
        rpc.stop_server(port)
        return [out[i] for i in range(200)], all(t.dead for t in threads)
    values, dead = run(main)
    assert values == list(range(200)) and dead


class Recorder:
    """The log a TCPServer is given: keeps what it is told."""

    def __init__(self):
        self.lines = []

    def error(self, message):
        self.lines.append(("error", message))

    def notice(self, message):
        self.lines.append(("notice", message))


def test_a_failing_connection_handler_is_logged_and_the_server_accepts_on():
    port = free_port()
    served = []
    recorder = Recorder()

    def serve(c):
        line = c.receive()
        served.append(line)
        if line == b"boom":
            raise RuntimeError("handler broke")
        c.send(b"ok " + line + b"\n")

    def main():
        srv = TCPServer("test", port, serve, log=recorder, inline=True)
        replies = []
        for word in (b"boom", b"fine", b"again"):
            c = socket.connect("127.0.0.1", port)
            c.send(word + b"\n")
            c.settimeout(5)
            replies.append(c.receive())
            c.close()
        srv.close()
        return srv.inline, replies
    inline, replies = run(main)
    assert inline is True
    assert served == [b"boom", b"fine", b"again"]
    assert replies == [None, b"ok fine", b"ok again"]      # the broken one is closed, unanswered
    assert recorder.lines == [("error", f"test server on port {port}: serving a connection "
                                        f"failed: RuntimeError: handler broke")]


def test_a_handler_that_kills_its_own_thread_leaves_the_server_accepting():
    """With inline serving the handler runs in the accept thread: killing it must not strand the
    connections queued behind it."""
    port = free_port()

    def suicidal():
        events.kill(events.current())

    def main():
        rpc.server(port, namespace={"suicidal": suicidal, "f": lambda i: i})
        out = {}

        def one(i):
            out[i] = rpc.acall(("127.0.0.1", port), ["suicidal"] if i == 0 else ["f", i], 5)
        threads = [events.thread(lambda i=i: one(i)) for i in range(20)]
        for t in threads:
            t.join()
        after = rpc.call(("127.0.0.1", port), ["f", 99], 5)
        rpc.stop_server(port)
        return out, after
    out, after = run(main)
    assert out[0][0] is False                            # its connection closed unanswered
    assert [out[i] for i in range(1, 20)] == [(True, [i]) for i in range(1, 20)]
    assert after == 99
