"""A simulation in which no thread can run again ends with a report of who waits where."""

from splay import events
from splay.sim import clock, deadlock


def test_threads_waiting_forever_are_reported_with_their_line():
    def forever():
        events.wait("nobody-fires-this")

    def main():
        t = events.thread(forever)
        t.name = "listener"
        events.sleep(10)

    with clock.virtual_time(), deadlock.watch() as report:
        events.run(main)
    assert len(report.entries) == 1
    name, node, where = report.entries[0]
    assert name == "listener"
    assert "test_sim_deadlock.py" in where and 'events.wait("nobody-fires-this")' in where
    text = str(report)
    assert text.startswith("simulation stuck: 1 thread(s) blocked")
    assert "listener" in text


def test_a_run_that_finishes_reports_nothing():
    with clock.virtual_time(), deadlock.watch() as report:
        events.run(lambda: events.sleep(5))
    assert not report and str(report) == ""


def test_an_exit_with_blocked_threads_is_not_a_deadlock():
    def main():
        events.thread(lambda: events.wait("never"))
        events.sleep(1)
        events.exit()

    with clock.virtual_time(), deadlock.watch() as report:
        events.run(main)
    assert not report
