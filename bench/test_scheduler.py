"""Scheduler workloads: pysplay against gevent, asyncio and asyncio+uvloop, in the same run.

Each benchmark runs one whole workload (loop start included, which is tiny next to the work);
groups hold the four implementations of one workload, so pytest-benchmark's table and
``bench/report.py`` give ratios. Run: ``python -m pytest bench/test_scheduler.py``.
"""
import asyncio
import random

import gevent
import gevent.event
import pytest
import uvloop

from splay import events

N_SPAWN = 100_000
N_PINGPONG = 100_000        # round trips: 200,000 switches
N_YIELD_THREADS, N_YIELDS = 100, 1_000
N_TIMERS = 10_000
_rng = random.Random(3)
TIMER_DELAYS = [_rng.uniform(0.001, 0.020) for _ in range(N_TIMERS)]

ROUNDS = dict(rounds=5, iterations=1, warmup_rounds=1)


def _noop():
    pass


async def _anoop():
    pass


def run_asyncio(coro_fn, use_uvloop):
    if use_uvloop:
        return uvloop.run(coro_fn())
    return asyncio.run(coro_fn())


IMPLS = ["splay", "gevent", "uvloop", "asyncio"]


# ------------------------------------------------------------------ spawn + join

def spawn_splay():
    def main():
        ts = [events.thread(_noop) for _ in range(N_SPAWN)]
        for t in ts:
            t.join()
    events.run(main)


def spawn_gevent():
    gevent.joinall([gevent.spawn(_noop) for _ in range(N_SPAWN)])


async def spawn_async():
    await asyncio.gather(*[asyncio.ensure_future(_anoop()) for _ in range(N_SPAWN)])


# ------------------------------------------------------------------ ping-pong

def pingpong_splay():
    def ping():
        for i in range(N_PINGPONG):
            events.fire("ping", i)
            events.wait("pong")

    def pong():
        for i in range(N_PINGPONG):
            events.wait("ping")
            events.fire("pong")
    events.run([pong, ping])


def pingpong_gevent():
    a, b = gevent.event.Event(), gevent.event.Event()

    def ping():
        for i in range(N_PINGPONG):
            a.set()
            b.wait()
            b.clear()

    def pong():
        for i in range(N_PINGPONG):
            a.wait()
            a.clear()
            b.set()
    gevent.joinall([gevent.spawn(pong), gevent.spawn(ping)])


async def pingpong_async():
    a, b = asyncio.Event(), asyncio.Event()

    async def ping():
        for i in range(N_PINGPONG):
            a.set()
            await b.wait()
            b.clear()

    async def pong():
        for i in range(N_PINGPONG):
            await a.wait()
            a.clear()
            b.set()
    await asyncio.gather(pong(), ping())


# ------------------------------------------------------------------ sleep(0) rounds

def yield_splay():
    def worker():
        for _ in range(N_YIELDS):
            events.sleep(0)
    events.run([worker] * N_YIELD_THREADS)


def yield_gevent():
    def worker():
        for _ in range(N_YIELDS):
            gevent.sleep(0)
    gevent.joinall([gevent.spawn(worker) for _ in range(N_YIELD_THREADS)])


async def yield_async():
    async def worker():
        for _ in range(N_YIELDS):
            await asyncio.sleep(0)
    await asyncio.gather(*[worker() for _ in range(N_YIELD_THREADS)])


# ------------------------------------------------------------------ timers

def timers_splay():
    def main():
        for d in TIMER_DELAYS:
            events.thread(lambda d=d: events.sleep(d))
    events.run(main)


def timers_gevent():
    gevent.joinall([gevent.spawn(gevent.sleep, d) for d in TIMER_DELAYS])


async def timers_async():
    await asyncio.gather(*[asyncio.sleep(d) for d in TIMER_DELAYS])


WORKLOADS = {
    "spawn_join_100k": (spawn_splay, spawn_gevent, spawn_async),
    "pingpong_200k_switches": (pingpong_splay, pingpong_gevent, pingpong_async),
    "sleep0_100x1000": (yield_splay, yield_gevent, yield_async),
    "timers_10k_random": (timers_splay, timers_gevent, timers_async),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_scheduler(benchmark, workload, impl):
    splay_fn, gevent_fn, async_fn = WORKLOADS[workload]
    benchmark.group = workload
    benchmark.extra_info["impl"] = impl
    if impl == "splay":
        fn = splay_fn
    elif impl == "gevent":
        fn = gevent_fn
    else:
        def fn():
            run_asyncio(async_fn, impl == "uvloop")
    benchmark.pedantic(fn, **ROUNDS)
