"""events.periodic: ticks, skipping while the previous call runs, force, lists, stopping."""
import pytest

from splay import events


def run_collect(main):
    out = []
    events.run(lambda: main(out))
    return out


def test_periodic_calls_every_interval_and_stops_when_killed():
    def main(out):
        t = events.periodic(0.01, lambda: out.append("tick"))
        events.sleep(0.055)
        events.kill(t)
        n = len(out)
        events.sleep(0.03)
        out.append(n == len(out))
    out = run_collect(main)
    assert out[-1] is True
    assert 3 <= out.count("tick") <= 6


def test_periodic_skips_ticks_while_previous_call_alive():
    def main(out):
        def slow():
            out.append("start")
            events.sleep(0.035)
        t = events.periodic(0.01, slow)
        events.sleep(0.1)
        events.kill(t)
    starts = run_collect(main).count("start")
    # without skipping there would be ~10 starts; a call lasts ~4 ticks
    assert 1 <= starts <= 3


def test_periodic_force_starts_every_tick():
    def main(out):
        def slow():
            out.append("start")
            events.sleep(0.035)
        t = events.periodic(0.01, slow, True)
        events.sleep(0.1)
        events.kill(t)
    assert run_collect(main).count("start") >= 6


def test_periodic_with_list_starts_all_each_tick():
    def main(out):
        t = events.periodic(0.01, [lambda: out.append("a"), lambda: out.append("b")])
        events.sleep(0.035)
        events.kill(t)
    out = run_collect(main)
    assert out.count("a") == out.count("b") >= 2


def test_periodic_bad_arguments():
    def main(out):
        with pytest.raises(ValueError, match="interval"):
            events.periodic(0, lambda: None)
        with pytest.raises(TypeError, match="function"):
            events.periodic(1, "not a function")
        out.append("ok")
    assert run_collect(main) == ["ok"]
