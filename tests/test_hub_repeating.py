"""``hub.spawn_repeating``: a thread that runs again after the delay it returns, holding no
greenlet between runs (``events.periodic`` is one: an idle simulated node's largest cost was its
periodic thread parked in ``sleep``, ~8 KB)."""
import gc

import greenlet

from splay import events, misc
from splay.sim import clock
from splayc import hub


def _greenlets():
    return sum(1 for o in gc.get_objects() if type(o) is greenlet.greenlet)


def test_a_repeating_thread_runs_at_the_delays_it_returns_until_it_returns_none():
    runs = []

    def body():
        runs.append(misc.time())
        return None if len(runs) == 4 else 0.5 * len(runs)

    def main():
        t = hub.spawn_repeating(2, body)
        events.sleep(100)
        return t

    with clock.virtual_time():
        out = {}
        events.run(lambda: out.update(t=main()))
    assert runs == [2.0, 2.5, 3.5, 5.0]
    assert events.dead(out["t"])


def test_killing_a_repeating_thread_between_runs_stops_it():
    runs = []

    def main():
        t = hub.spawn_repeating(1, lambda: runs.append(misc.time()) or 1)
        events.sleep(3.5)
        assert events.status(t) == "suspended"
        assert events.kill(t) is True and events.dead(t)
        events.sleep(10)

    with clock.virtual_time():
        events.run(main)
    assert runs == [1.0, 2.0, 3.0]


def test_a_repeating_thread_that_raises_ends_and_the_error_is_reported(capsys):
    runs = []

    def body():
        runs.append(misc.time())
        if len(runs) == 2:
            raise ValueError("tick two went wrong")
        return 1

    with clock.virtual_time():
        events.run(lambda: (hub.spawn_repeating(1, body), events.sleep(10)))
    assert runs == [1.0, 2.0]
    assert "tick two went wrong" in capsys.readouterr().out     # the log goes to stdout


def test_periodic_threads_hold_no_greenlet_between_ticks():
    counts = {}

    def main(n):
        ticks = [0]
        periodics = [events.periodic(1, lambda: ticks.__setitem__(0, ticks[0] + 1))
                     for _ in range(n)]
        events.sleep(2.5)                      # two ticks each; now every one waits for its third
        counts[n] = _greenlets()
        assert ticks[0] == 2 * n
        events.kill(periodics)

    for n in (10, 2000):
        with clock.virtual_time():
            events.run(lambda: main(n))
    assert counts[2000] - counts[10] < 100      # not one per periodic (the hub's idle workers)


def test_periodic_first_tick_after_first_seconds_then_every_interval():
    ticks = []

    def main():
        p = events.periodic(2, lambda: ticks.append(misc.time()), first=0.5)
        events.sleep(7)
        events.kill(p)

    with clock.virtual_time():
        events.run(main)
    assert ticks == [0.5, 2.5, 4.5, 6.5]


def test_periodic_refuses_a_negative_first_delay():
    import pytest
    with pytest.raises(ValueError, match="first delay >= 0"):
        events.periodic(1, lambda: None, first=-1)
