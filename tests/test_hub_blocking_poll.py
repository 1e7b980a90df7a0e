"""The hub's blocking poll and the timers that come due as it starts (splayc/hub.pyx, _poll_libuv).

When nothing can run, the hub (or the thread that blocks last, ``_poll_in_task``) looks at libuv
without blocking, then blocks in ``uv_run(UV_RUN_ONCE)``. libuv before 1.45 runs the timers that
are due at the start of that call and then blocks in epoll with a timeout computed as if their
callbacks had woken nobody. A deadline that passed between the two looks (the process preempted
there, or a slow callback in the first look) therefore woke its thread only at the next I/O event
or deadline -- never, when there was none: the CI hang of
``test_large_transfer_both_ways_with_backpressure`` on Python 3.13 under load, where two sleeping
receivers were woken that way while both senders waited for them.

Each test here makes the first look slow on purpose, so the timer is always due at the start of
the blocking call.
"""
import socket as pysocket
import time

import pytest

from splay import events, socket

pytestmark = pytest.mark.timeout(60)

# How long the blocked side waits for the sleeper at most. With the defect the sleeper is woken
# only when this deadline ends the blocking poll, so the wait times out; without it the sleeper
# is woken ~SLEEP after it blocked.
PATIENCE = 5.0
SLEEP = 0.05


def slow_first_look(sleeper_due):
    """A listening socket whose on_connection() callback returns only once ``sleeper_due[0]``
    (a time.monotonic() value) has passed, plus a connection waiting on it: the next poll's
    non-blocking look runs that callback, and the sleeper's deadline passes inside it."""
    server = socket.bind("127.0.0.1", 0)
    assert server is not None, socket.last_error

    def slow_callback():
        # Stands for the process being preempted between the two looks: no thread is started,
        # so after this look nothing is runnable and the hub goes on to the blocking poll.
        while time.monotonic() < sleeper_due[0] + 0.003:      # past libuv's ms rounding too
            time.sleep(0.001)

    server.on_connection(slow_callback)
    peer = pysocket.create_connection(server.getsockname(), timeout=PATIENCE)
    return server, peer


def test_a_sleep_that_ends_as_the_blocking_poll_starts_wakes_its_thread():
    sleeper_due = [float("inf")]
    out = []

    def sleeper():
        sleeper_due[0] = time.monotonic() + SLEEP
        events.sleep(SLEEP)
        out.append("slept")
        events.fire("slept")

    def main():
        server, peer = slow_first_look(sleeper_due)
        events.thread(sleeper)
        try:
            out.append(events.wait("slept", PATIENCE))
        finally:
            server.close()
            peer.close()

    events.run(main)
    assert out == ["slept", (True,)], (
        "the sleeper's timer fired at the start of the blocking poll, which then slept until "
        f"the next deadline: {out}")

