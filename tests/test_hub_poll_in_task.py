"""The hub's poll done in the greenlet of the thread that blocks (splayc/hub.pyx, _poll_in_task).

When nothing else can run, a blocking thread polls libuv itself instead of switching to the hub
greenlet and back. What the hub guarantees for its own poll must hold there too: callbacks run
outside the blocked thread's contextvars and node, a signal still ends the loop, and a thread
woken by the poll other than the poller runs as before.
"""
import contextvars

import pytest

from splay import events, rpc, rpcq
from lua_peer import free_port

pytestmark = pytest.mark.timeout(60)

var = contextvars.ContextVar("var", default="unset")


def seen_by_server():
    return var.get()


@pytest.mark.parametrize("mod", [rpc, rpcq], ids=["rpc", "rpcq"])
def test_threads_started_by_a_callback_during_the_poll_do_not_inherit_the_poller_context(mod):
    # rpc's server starts its accepting thread from the listening socket's callback, which runs
    # inside the poll of whichever thread blocked last: here the caller, with var set.
    port = free_port()
    out = []

    def main():
        mod.server(port, namespace={"seen_by_server": seen_by_server})
        var.set("the caller's")
        out.append(mod.call(("127.0.0.1", port), ["seen_by_server"], timeout=20))
        out.append(var.get())
        events.exit()

    events.run(main)
    assert out == ["unset", "the caller's"]


def test_a_thread_woken_by_the_poll_of_another_runs_and_the_poller_resumes():
    # Two threads block on the same timer kind; the first to block polls, the poll wakes the
    # other one first: both must resume, in deadline order.
    out = []

    def sleeper(name, seconds):
        events.sleep(seconds)
        out.append(name)

    def main():
        events.thread(lambda: sleeper("long", 0.05))
        events.thread(lambda: sleeper("short", 0.01))

    events.run(main)
    assert out == ["short", "long"]


def test_many_ping_pongs_over_sockets_keep_every_reply_matched():
    port = free_port()
    got = []

    def concat(a, b):
        return a + b

    def main():
        rpcq.server(port, namespace={"concat": concat})
        for i in range(300):
            got.append(rpcq.call(("127.0.0.1", port), ["concat", str(i), "x"], timeout=20))
        events.exit()

    events.run(main)
    assert got == [f"{i}x" for i in range(300)]
