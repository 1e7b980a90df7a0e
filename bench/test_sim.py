"""Virtual time: the hub's virtual-clock mode against a plain heapq + greenlet scheduler.

The simulation has to run unchanged SPLAY code, so its threads are greenlets either way; the
question (issue #12) is whether to put the virtual clock into the existing hub or to write a
separate scheduler. Both run the same workload here: N_THREADS threads each sleep N_SLEEPS
random virtual delays (N_THREADS * N_SLEEPS timer events), and ``idle memory`` measures the RSS of
100,000 threads parked on a virtual sleep. Run: ``python -m pytest bench/test_sim.py``.
"""
import heapq
import random

import greenlet
import psutil
import pytest

from splay import events
from splay.sim import clock

N_THREADS, N_SLEEPS = 10_000, 20
N_IDLE = 100_000
_rng = random.Random(5)
DELAYS = [[_rng.uniform(0.1, 10.0) for _ in range(N_SLEEPS)] for _ in range(N_THREADS)]

ROUNDS = dict(rounds=3, iterations=1, warmup_rounds=1)


def sleepers_hub():
    def sleeper(delays):
        for d in delays:
            events.sleep(d)

    def main():
        for delays in DELAYS:
            events.thread(lambda delays=delays: sleeper(delays))

    with clock.virtual_time():
        events.run(main)


def sleepers_heapq():
    """The peer: a minimal discrete-event scheduler (heap of (time, seq, greenlet))."""
    heap, now, seq = [], [0.0], [0]
    main = greenlet.getcurrent()

    def sleep(d):
        seq[0] += 1
        heapq.heappush(heap, (now[0] + d, seq[0], greenlet.getcurrent()))
        main.switch()

    def sleeper(delays):
        for d in delays:
            sleep(d)

    for delays in DELAYS:
        g = greenlet.greenlet(sleeper)
        g.switch(delays)
    while heap:
        t, _, g = heapq.heappop(heap)
        now[0] = t
        g.switch()


@pytest.mark.benchmark(group="sim: 200,000 virtual sleeps of 10,000 threads")
@pytest.mark.parametrize("impl", ["hub-virtual", "heapq-greenlet"])
def test_virtual_sleeps(benchmark, impl):
    benchmark.pedantic(sleepers_hub if impl == "hub-virtual" else sleepers_heapq, **ROUNDS)
    benchmark.extra_info["events"] = N_THREADS * N_SLEEPS


def test_idle_thread_memory(benchmark):
    """RSS per thread parked on a virtual sleep (the hub's greenlet + Task + timer entry)."""
    proc = psutil.Process()
    per_thread = []

    def measure():
        def main():
            before = proc.memory_info().rss
            for _ in range(N_IDLE):
                events.thread(lambda: events.sleep(3600))
            events.sleep(1)                    # every thread has started and parked
            per_thread.append((proc.memory_info().rss - before) / N_IDLE)
            events.exit()

        with clock.virtual_time():
            events.run(main)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info["bytes_per_idle_thread"] = per_thread[-1]
    print(f"\nRSS per idle virtual-time thread: {per_thread[-1]:.0f} bytes")
