"""The hub's blocking poll and the timers that come due as it starts (splayc/hub.pyx, _poll_libuv).

When nothing can run, the hub (or the thread that blocks last, ``_poll_in_task``) looks at libuv
without blocking, then blocks in ``uv_run(UV_RUN_ONCE)``. libuv before 1.45 runs the timers that
are due at the start of that call and then blocks in epoll with a timeout computed as if their
callbacks had woken nobody. A deadline that passed between the two looks (the process preempted
there, or a slow callback in the first look) therefore woke its thread only at the next I/O event
or deadline -- never, when there was none: the CI hang of
``test_large_transfer_both_ways_with_backpressure`` on Python 3.13 under load, where the two
sleeping receivers were woken that way while both senders waited for them.

Each test makes the first look slow on purpose (a listening socket's on_connection() callback that
takes a moment), so that the timer is due at the start of the blocking call, and waits for the
woken thread with a deadline of its own: with the defect, only that deadline ends the poll.
"""
import socket as pysocket
import time

import pytest

from splay import events, socket
from splay.emulation import apply, parse_matrix
from splayc import hub

pytestmark = pytest.mark.timeout(60)

# How long the test waits for the woken thread. With the defect that thread runs only when this
# deadline ends the blocking poll, so the wait times out; without it, right after the timer.
PATIENCE = 5.0
SLEEP = 0.05                 # the timer that comes due during the slow look
MARGIN = 0.005               # past it, and past libuv's rounding to whole milliseconds


class SlowLook:
    """A listening socket whose on_connection() callback takes ``seconds`` and starts no thread.

    ``connect()`` makes a connection wait on it: the next poll's non-blocking look runs the
    callback, after the I/O callbacks of what was ready before. It stands for the process being
    preempted between the two looks; after it nothing is runnable, so the hub goes on to the
    blocking poll."""

    def __init__(self, seconds):
        self.server = socket.bind("127.0.0.1", 0)
        assert self.server is not None, socket.last_error
        self.server.on_connection(self._slow_callback)
        self.seconds = seconds
        self.peer = None

    def _slow_callback(self):
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            time.sleep(0.001)

    def connect(self):
        self.peer = pysocket.create_connection(self.server.getsockname(), timeout=PATIENCE)

    def close(self):
        self.server.close()
        if self.peer is not None:
            self.peer.close()


def test_a_sleep_that_ends_as_the_blocking_poll_starts_wakes_its_thread():
    out = []

    def sleeper():
        events.sleep(SLEEP)
        out.append("slept")
        events.fire("slept")

    def main():
        look = SlowLook(SLEEP + MARGIN)
        look.connect()
        events.thread(sleeper)        # it sleeps, then polls: the slow look, the blocking poll
        try:
            out.append(events.wait("slept", PATIENCE))
        finally:
            look.close()

    events.run(main)
    assert out == ["slept", (True,)], (
        "the sleeper's timer fired at the start of the blocking poll, which then waited for the "
        f"next deadline: {out}")


class EmulatedNode:
    """A node object of its own (threads inherit it); ``apply`` gives it a policy with links."""

    def __init__(self):
        self.net_policy = None


def test_data_an_emulated_link_delivers_as_the_blocking_poll_starts_wakes_its_reader():
    # The delay of an emulated link is a libuv timer too (splayc/tcp.pyx, _deliver_cb): data that
    # arrives is held for the one-way delay, then handed to the waiting reader.
    delay = 0.030
    model = parse_matrix(f"a b\na - {delay * 1000:g}\nb {delay * 1000:g} -\n", "two.matrix")
    out = []

    def main():
        listener = socket.bind("127.0.0.1", 0)
        port = listener.getsockname()[1]
        node_a = EmulatedNode()
        apply(model, 0, [("127.0.0.1", 1), ("127.0.0.1", port)], node=node_a)
        connected = []

        def reader():                 # in node a: its connection to b's address is shaped
            c = socket.connect("127.0.0.1", port)
            connected.append(c)
            out.append(c.receive())
            events.fire("received")

        hub.spawn_in_node(node_a, reader)
        sender = listener.accept()
        while not connected:           # the reader is blocked in receive() once it connected
            events.sleep(0)
        look = SlowLook(delay + MARGIN)
        try:
            # Ready in this order, so that the next look reads the data (held for the delay),
            # then runs the slow callback, during which the delivery comes due.
            sender.send(b"over the emulated link\n")
            look.connect()
            out.append(events.wait("received", PATIENCE))
        finally:
            look.close()
            for s in (listener, sender, connected[0]):
                s.close()

    events.run(main)
    assert out == [b"over the emulated link", (True,)], (
        "the link's delivery timer fired at the start of the blocking poll, which then waited "
        f"for the next deadline: {out}")
