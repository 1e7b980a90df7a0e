"""splay.events: scheduling order, events, timers, kill/status, run/exit, errors.

The lock, semaphore and periodic tests live in test_events_locks.py and test_events_periodic.py;
the manual's examples, translated one by one, in test_events_manual.py.
"""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import splay
from splay import events


def run_collect(main):
    out = []
    events.run(lambda: main(out))
    return out


# ------------------------------------------------------------------ run, thread, order

def test_run_calls_main_and_returns():
    assert run_collect(lambda out: out.append("hello")) == ["hello"]


def test_run_passes_args_to_main():
    got = []
    events.run(lambda a, b: got.append((a, b)), 1, "x")
    assert got == [(1, "x")]


def test_run_with_a_list_starts_one_thread_each_in_order():
    got = []
    events.run([lambda: got.append(1), lambda: got.append(2), lambda: got.append(3)])
    assert got == [1, 2, 3]


def test_new_threads_start_at_next_scheduling_point_in_creation_order():
    def main(out):
        events.thread(lambda: out.append("a"))
        events.thread(lambda: out.append("b"))
        out.append("main continues before the new threads")
        events.yield_()
        out.append("main after yield")
    assert run_collect(main) == ["main continues before the new threads", "a", "b", "main after yield"]


def test_threads_created_by_new_threads_run_in_the_same_round():
    def main(out):
        def child():
            out.append("child")
            events.thread(lambda: out.append("grandchild"))
        events.thread(child)
        events.yield_()
        out.append("main")
    assert run_collect(main) == ["child", "grandchild", "main"]


def test_thread_returns_task_or_list():
    def main(out):
        t = events.thread(lambda: None)
        ts = events.thread([lambda: None, lambda: None])
        out.append((isinstance(t, events.Task), len(ts), all(isinstance(x, events.Task) for x in ts)))
    assert run_collect(main) == [(True, 2, True)]


def test_thread_rejects_non_callable():
    def main(out):
        with pytest.raises(TypeError, match="function"):
            events.thread(42)
        out.append("ok")
    assert run_collect(main) == ["ok"]


def test_run_returns_when_nothing_can_run_and_unwinds_deadlocked_threads():
    def main(out):
        def stuck():
            try:
                events.wait("never fired")
            finally:
                out.append("stuck unwound")
        events.thread(stuck)
    out = run_collect(main)
    assert out == ["stuck unwound"]


def test_run_twice_in_sequence_works():
    assert run_collect(lambda out: out.append(1)) == [1]
    assert run_collect(lambda out: (events.sleep(0.01), out.append(2))) == [2]


def test_nested_run_is_refused():
    def main(out):
        with pytest.raises(RuntimeError, match="already running"):
            events.run(lambda: None)
        out.append("ok")
    assert run_collect(main) == ["ok"]


# ------------------------------------------------------------------ NotInThread

@pytest.mark.parametrize("call", [
    lambda: events.sleep(0.01),
    lambda: events.wait("x"),
    lambda: events.yield_(),
    lambda: events.lock().lock(),
    lambda: events.semaphore(2).lock(),
    lambda: events.synchronize(lambda: 1),
])
def test_blocking_calls_outside_a_thread_raise_not_in_thread(call):
    with pytest.raises(splay.NotInThread, match=r"events\.run\(\)"):
        call()


def test_not_in_thread_is_a_splay_error():
    assert issubclass(splay.NotInThread, splay.SplayError)


# ------------------------------------------------------------------ sleep and timers

def test_sleep_returns_true_and_orders_by_deadline():
    def main(out):
        for d in (0.05, 0.01, 0.03):
            events.thread(lambda d=d: (events.sleep(d), out.append(d)))
        out.append(events.sleep(0.1))
    assert run_collect(main) == [0.01, 0.03, 0.05, True]


def test_sleep_never_wakes_early():
    def main(out):
        for d in (0.003, 0.0305, 0.02):
            t0 = time.monotonic()
            events.sleep(d)
            out.append(time.monotonic() - t0 >= d)
    assert run_collect(main) == [True, True, True]


def test_sleep_zero_or_negative_is_a_yield():
    def main(out):
        events.thread(lambda: out.append("other"))
        out.append(events.sleep(0))
        out.append(events.sleep(-1))
    assert run_collect(main) == ["other", True, True]


def test_ten_thousand_random_timers_fire_in_deadline_order():
    rnd = random.Random(7)
    delays = [rnd.randint(1, 200) / 1000 for _ in range(10_000)]
    fired = []

    def sleeper(d):
        deadline = time.monotonic() + d
        events.sleep(d)
        fired.append((deadline, time.monotonic()))

    events.run(lambda: [events.thread(lambda d=d: sleeper(d)) for d in delays])
    assert len(fired) == len(delays)
    assert all(woke >= deadline for deadline, woke in fired), "a timer fired early"
    # In deadline order, up to libuv's millisecond granularity.
    deadlines = [d for d, _ in fired]
    worst = max(a - b for a, b in zip(deadlines, deadlines[1:]))
    assert worst < 0.010


def test_while_sleep_loop_idiom():
    def main(out):
        n = 0
        while events.sleep(0.001):
            n += 1
            if n == 3:
                break
        out.append(n)
    assert run_collect(main) == [3]


# ------------------------------------------------------------------ fire / wait

def test_wait_gets_fire_args_as_a_tuple():
    def main(out):
        events.thread(lambda: out.append(events.wait("ev")))
        out.append(events.fire("ev", "hello", "world"))
    assert run_collect(main) == [True, ("hello", "world")]


def test_wait_without_args_gets_empty_tuple():
    def main(out):
        events.thread(lambda: out.append(events.wait("ev")))
        events.fire("ev")
    assert run_collect(main) == [()]


def test_second_fire_in_same_round_fails_until_consumed():
    def main(out):
        events.thread(lambda: out.append(events.wait("ev")))
        out.append(events.fire("ev", 1))
        out.append(events.fire("ev", 2))
        events.yield_()          # the round ends: the fire is delivered
        events.yield_()
        out.append(events.fire("ev", 3))   # nobody waits now, but the slot is free again
    assert run_collect(main) == [True, False, (1,), True]


def test_fire_nobody_waits_for_is_dropped_at_end_of_round():
    def main(out):
        out.append(events.fire("lost"))
        events.yield_()           # the round ends without a waiter: dropped
        out.append(events.wait("lost", 0.05))
    assert run_collect(main) == [True, (False, "timeout")]


def test_wait_in_same_round_after_fire_gets_it():
    def main(out):
        events.fire("early", "x")
        events.thread(lambda: out.append(events.wait("early")))   # waits later in this round
    assert run_collect(main) == [("x",)]


def test_all_waiters_of_a_name_receive_the_same_args():
    def main(out):
        for i in range(3):
            events.thread(lambda i=i: out.append((i, events.wait("ev"))))
        events.yield_()
        events.fire("ev", "same")
    assert run_collect(main) == [(0, ("same",)), (1, ("same",)), (2, ("same",))]


def test_wait_with_timeout_success_and_timeout():
    def main(out):
        events.thread(lambda: out.append(events.wait("ev", 2)))
        events.thread(lambda: out.append(events.wait("other", 0.01)))
        events.fire("ev", "hello", "world")
        events.sleep(0.05)
    assert run_collect(main) == [(True, "hello", "world"), (False, "timeout")]


def test_fire_never_yields():
    def main(out):
        events.thread(lambda: out.append("other"))
        events.fire("x")
        out.append("still main")
    assert run_collect(main) == ["still main", "other"]


def test_repeated_timed_out_waits_do_not_accumulate():
    def main(out):
        for _ in range(200):
            events.wait("never", 0)
        out.append(events.stats())
    out = run_collect(main)
    assert "waiting on events: 0" in out[0]


def test_ping_pong_through_events():
    n = 1000

    def main(out):
        def ping():
            for i in range(n):
                events.fire("ping", i)
                events.wait("pong")
        def pong():
            for i in range(n):
                (j,) = events.wait("ping")
                out.append(j)
                events.fire("pong")
        events.thread([pong, ping])
    assert run_collect(main) == list(range(n))


# ------------------------------------------------------------------ kill, status, dead

def test_status_and_dead_through_a_thread_life():
    def main(out):
        me = events.current()
        t = events.thread(lambda: events.sleep(0.01))
        out.append(events.status(t))
        out.append(events.status(me))
        events.yield_()
        out.append((events.status(t), events.dead(t)))
        events.sleep(0.05)
        out.append((events.status(t), events.dead(t)))
    assert run_collect(main) == ["suspended", "running", ("suspended", False), ("dead", True)]


def test_kill_other_thread_runs_its_finally():
    def main(out):
        def victim():
            try:
                events.sleep(10)
            finally:
                out.append("victim cleaned up")
        t = events.thread(victim)
        events.yield_()
        out.append(events.kill(t))
        out.append(events.dead(t))
        events.yield_()
        out.append(events.kill(t))     # already dead: None
    assert run_collect(main) == [True, True, "victim cleaned up", None]


def test_kill_not_started_thread_never_runs_it():
    def main(out):
        t = events.thread(lambda: out.append("must not run"))
        out.append(events.kill(t))
        events.yield_()
    assert run_collect(main) == [True]


def test_kill_self_does_not_return():
    def main(out):
        def suicidal():
            out.append("before")
            events.kill(events.current())
            out.append("after")
        t = events.thread(suicidal)
        events.sleep(0.01)
        out.append(events.dead(t))
    assert run_collect(main) == ["before", True]


def test_kill_a_list_of_threads():
    def main(out):
        ts = events.thread([lambda: events.sleep(5), lambda: events.sleep(5)])
        events.yield_()
        out.append(events.kill(ts))
        out.append([events.dead(t) for t in ts])
    assert run_collect(main) == [True, [True, True]]


# One other waiter (the slot's single-waiter form) and several (its list form).
@pytest.mark.parametrize("names, killed", [("ab", "a"), ("abc", "b")])
def test_killed_waiter_does_not_consume_the_event(names, killed):
    def main(out):
        threads = {name: events.thread(lambda name=name: out.append((name, events.wait("ev"))))
                   for name in names}
        events.yield_()
        events.kill(threads[killed])
        events.fire("ev", 1)
        events.sleep(0.01)
    assert run_collect(main) == [(name, (1,)) for name in names if name != killed]


# ------------------------------------------------------------------ errors

def test_exception_ends_only_its_thread_and_is_logged(capfd):
    def main(out):
        def bad():
            raise ValueError("boom in thread")
        t = events.thread(bad)
        events.sleep(0.01)
        out.append(events.dead(t))
        out.append(type(t.exception).__name__)
        out.append("main survives")
    assert run_collect(main) == [True, "ValueError", "main survives"]
    err = capfd.readouterr()
    text = err.out + err.err
    assert "boom in thread" in text and "Traceback" in text


def test_keyboard_interrupt_in_a_thread_stops_run_after_unwinding():
    cleaned = []

    def main():
        def other():
            try:
                events.sleep(10)
            finally:
                cleaned.append("other")
        events.thread(other)
        events.yield_()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        events.run(main)
    assert cleaned == ["other"]
    assert run_collect(lambda out: out.append("usable again")) == ["usable again"]


# ------------------------------------------------------------------ exit

def test_exit_ends_the_application_with_never_ending_threads():
    def main(out):
        def server():
            while events.sleep(0.01):
                pass
        events.thread(server)
        events.sleep(0.02)
        out.append("exiting")
        events.exit()
        out.append("not reached")
    t0 = time.monotonic()
    assert run_collect(main) == ["exiting"]
    assert time.monotonic() - t0 < 5


def test_exit_leaves_a_grace_period_for_other_threads():
    def main(out):
        events.thread(lambda: (events.sleep(0.02), out.append("reply sent")))
        events.exit()
    assert run_collect(main) == ["reply sent"]


# ------------------------------------------------------------------ signals (real processes)

APP_SLEEPS_FOREVER = textwrap.dedent("""
    import sys
    from splay import events
    def main():
        try:
            print("ready", flush=True)
            events.sleep(60)
        finally:
            print("unwound", flush=True)
    try:
        events.run(main)
    except {exc} as e:
        print("run raised", type(e).__name__, flush=True)
        raise
""")


@pytest.mark.parametrize("sig,exc,code", [
    (signal.SIGINT, "KeyboardInterrupt", -signal.SIGINT),
    (signal.SIGTERM, "SystemExit", 143),
])
def test_signal_ends_the_loop_cleanly(tmp_path, sig, exc, code):
    app = tmp_path / "app.py"
    app.write_text(APP_SLEEPS_FOREVER.format(exc=exc))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    # A shell's background job (a CI script started with `&`) runs with SIGINT ignored, and a
    # Python started so keeps ignoring it (no KeyboardInterrupt): the app gets the default.
    p = subprocess.Popen([sys.executable, str(app)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.stdout.readline().strip() == "ready"
    t0 = time.monotonic()
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert time.monotonic() - t0 < 10, "the signal must not wait for the 60 s sleep"
    assert "unwound" in out and f"run raised {exc}" in out
    if sig == signal.SIGINT:
        assert p.returncode != 0 and "KeyboardInterrupt" in err
    else:
        assert p.returncode == code


# ------------------------------------------------------------------ stats, yield, synchronize

def test_stats_is_a_readable_string():
    out = run_collect(lambda out: out.append(events.stats()))
    assert out[0].startswith("threads: ") and "created" in out[0] and "rounds" in out[0]


def test_yield_gives_others_a_turn_round_robin():
    def main(out):
        def worker(name):
            for _ in range(3):
                out.append(name)
                events.yield_()
        events.thread([lambda: worker("a"), lambda: worker("b")])
    assert run_collect(main) == ["a", "b", "a", "b", "a", "b"]


def test_synchronize_serialises_and_returns_result():
    def main(out):
        inside = []

        def critical():
            inside.append(1)
            assert len(inside) == 1
            events.sleep(0.005)
            inside.pop()
            return "done"
        ts = events.thread([lambda: out.append(events.synchronize(critical)) for _ in range(3)])
        events.sleep(0.1)
    assert run_collect(main) == [(True, "done")] * 3


def test_synchronize_timeout():
    def main(out):
        def slow():
            events.sleep(0.2)
            return 1
        events.thread(lambda: events.synchronize(slow))
        events.yield_()
        out.append(events.synchronize(slow, 0.01))
    assert run_collect(main) == [(False, "timeout")]


def test_context_vars_do_not_leak_between_threads():
    import contextvars
    var = contextvars.ContextVar("v", default="unset")

    def main(out):
        def setter():
            var.set("set by a thread")
        def reader():
            out.append(var.get())
        for _ in range(3):
            events.thread(setter)
            events.yield_()
            events.thread(reader)     # may run on the same reused greenlet
            events.yield_()
    assert run_collect(main) == ["unset"] * 3


# ------------------------------------------------------------------ scheduler structures at scale
# The hub keeps woken threads in a ring, timeouts in a heap under one libuv timer, and one Slot per
# event name: these tests hold them to the same rules as a handful of threads.

def test_hundreds_of_yielding_threads_keep_round_robin_order():
    def main(out):
        def worker(i):
            for r in range(3):
                out.append((r, i))
                events.yield_()
        events.thread([lambda i=i: worker(i) for i in range(500)])
    out = run_collect(main)
    assert out == [(r, i) for r in range(3) for i in range(500)]


def test_equal_timeouts_wake_in_the_order_they_were_armed():
    def main(out):
        for i in range(200):
            events.thread(lambda i=i: (events.sleep(0.02), out.append(i)))
    assert run_collect(main) == list(range(200))


def test_a_satisfied_long_timeout_does_not_keep_run_alive():
    def main(out):
        events.thread(lambda: out.append(events.wait("ev", 30)))
        events.thread(lambda: (events.sleep(0.01), out.append("short")))
        events.yield_()
        events.fire("ev", "now")
    t0 = time.monotonic()
    assert run_collect(main) == [(True, "now"), "short"]
    assert time.monotonic() - t0 < 5, "an idle timer kept the loop alive"


def test_endless_sleep_can_be_killed_and_huge_timeouts_work():
    def main(out):
        sleeper = events.thread(lambda: events.sleep(float("inf")))
        events.thread(lambda: out.append(events.wait("ev", 1e12)))
        events.yield_()
        events.fire("ev", 1)
        events.sleep(0.01)
        out.append(events.kill(sleeper))
    t0 = time.monotonic()
    assert run_collect(main) == [(True, 1), True]
    assert time.monotonic() - t0 < 5


def test_timed_out_waiter_among_several_leaves_the_others_waiting():
    def main(out):
        events.thread(lambda: out.append(("a", events.wait("ev"))))
        events.thread(lambda: out.append(("b", events.wait("ev", 0.01))))
        events.thread(lambda: out.append(("c", events.wait("ev"))))
        events.sleep(0.05)
        events.fire("ev", "x")
        events.sleep(0.01)
        out.append(events.stats().split("waiting on events: ")[1])
    assert run_collect(main) == [("b", (False, "timeout")), ("a", ("x",)), ("c", ("x",)), "0"]


def test_many_event_names_do_not_grow_the_table():
    from splayc import hub

    def main(out):
        for i in range(5000):
            events.fire(f"name-{i}", i)      # nobody waits: dropped at the end of the round
            if i % 100 == 99:
                events.yield_()
        events.yield_()
        out.append(hub.hub().stats()["event_names"])
    names = run_collect(main)[0]
    assert names < 1000


def test_unhashable_event_name_is_a_type_error_and_the_loop_goes_on():
    def main(out):
        with pytest.raises(TypeError):
            events.fire(["not", "hashable"])
        with pytest.raises(TypeError):
            events.wait({}, 0.01)
        events.thread(lambda: out.append(events.wait("ok")))
        events.yield_()
        out.append(events.fire("ok", "still working"))
    assert run_collect(main) == [True, ("still working",)]


def test_parked_workers_end_with_run():
    import gc
    import greenlet
    from splayc import hub

    def main(out):
        events.thread([lambda: events.sleep(0.01) for _ in range(300)])
    run_collect(main)
    assert hub.hub().stats()["idle_workers"] == 0
    alive = [g for g in gc.get_objects()
             if isinstance(g, greenlet.greenlet) and g and g is not greenlet.getcurrent()]
    assert alive == []
    assert run_collect(lambda out: (events.sleep(0.01), out.append("again"))) == ["again"]


def test_failing_threads_do_not_stop_the_worker_that_ran_them(capfd):
    def main(out):
        for i in range(5):
            events.thread(lambda i=i: 1 / 0 if i % 2 else out.append(i))
            events.yield_()
    assert run_collect(main) == [0, 2, 4]
    text = "".join(capfd.readouterr())
    assert text.count("ZeroDivisionError") >= 2
