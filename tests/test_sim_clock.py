"""Virtual time (splay.sim.clock): sleeps, timeouts and periodic ticks on a virtual clock that
jumps to the next deadline when every thread is blocked."""

import time

import pytest

from splay import events, misc
from splay.sim import clock


def test_a_day_of_virtual_time_takes_under_a_second():
    ticks = []
    ends = []

    def main():
        p = events.periodic(60, lambda: ticks.append(misc.time()))
        events.sleep(24 * 3600 + 30)
        events.kill(p)
        ends.append(misc.time())

    real_start = time.monotonic()
    with clock.virtual_time():
        events.run(main)
    assert time.monotonic() - real_start < 1.0
    assert ends == [24 * 3600.0 + 30]
    assert len(ticks) == 24 * 60                 # one tick a minute, exactly on schedule
    assert ticks[:3] == [60.0, 120.0, 180.0]
    assert not clock.is_virtual()


def test_sleepers_wake_in_deadline_order_then_arming_order():
    order = []

    def sleeper(name, delay):
        events.sleep(delay)
        order.append((name, misc.time()))

    def main():
        events.thread(lambda: sleeper("c", 3))
        events.thread(lambda: sleeper("a", 1))
        events.thread(lambda: sleeper("b1", 2))
        events.thread(lambda: sleeper("b2", 2))

    with clock.virtual_time():
        events.run(main)
    assert order == [("a", 1.0), ("b1", 2.0), ("b2", 2.0), ("c", 3.0)]


def test_wait_timeout_and_a_fire_are_measured_on_the_virtual_clock():
    got = []

    def waiter():
        got.append(("timeout", events.wait("never", timeout=3600), misc.time()))
        got.append(("fired", events.wait("ping", timeout=3600), misc.time()))

    def pinger():
        events.sleep(5000)
        events.fire("ping", "x")

    def main():
        events.thread(waiter)
        events.thread(pinger)

    with clock.virtual_time(start=100.0):
        events.run(main)
    assert got == [("timeout", (False, "timeout"), 3700.0), ("fired", (True, "x"), 5100.0)]


def test_computing_takes_no_virtual_time():
    seen = []

    def main():
        before = misc.time()
        sum(range(200000))
        seen.append(misc.time() - before)

    with clock.virtual_time():
        events.run(main)
    assert seen == [0.0]


def test_real_time_is_back_after_a_simulation():
    with clock.virtual_time():
        events.run(lambda: events.sleep(3600))
    assert not clock.is_virtual()
    assert abs(misc.time() - time.time()) < 5
    start = time.monotonic()
    events.run(lambda: events.sleep(0.05))
    assert time.monotonic() - start >= 0.05


def test_a_negative_start_is_refused():
    with pytest.raises(ValueError, match="cannot start before 0"):
        clock.enable(-1)
    assert not clock.is_virtual()
