"""Ending the nodes of a many-node process one after the other (the end of every ``--in-process``
and ``--sim`` demo: node 0 stops the others), against the same workload in gevent (a ``Group``
of greenlets per node, killed) and asyncio (a set of tasks per node, cancelled), in the same run.

Each of N_NODES nodes has three threads asleep; the timed part ends every node, one at a time.
Before each node kept its own list of threads, one exit walked every thread of the process:
quadratic (20,000 nodes: 39 s; the 100,000-node Chord simulation spent 27 minutes stopping).
Run: ``SPLAY_BENCH_EXIT_NODES=20000 python -m pytest bench/test_node_exit.py -s`` (the timed part\nof each is printed; pytest-benchmark's table also counts the set-up).
"""
import asyncio
import os
import time

import gevent
import gevent.pool

from splay import events
from splayc import hub

N_NODES = int(os.environ.get("SPLAY_BENCH_EXIT_NODES", "20000"))
THREADS = 3
ROUNDS = dict(rounds=3, iterations=1, warmup_rounds=0)


class _Node:
    """Stands for an ``--in-process`` node: the identity its threads carry."""


def _pysplay_exits():
    took = []

    def node_main():
        for _ in range(THREADS - 1):
            events.thread(lambda: events.sleep(3600))
        events.sleep(3600)

    def main():
        nodes = [_Node() for _ in range(N_NODES)]
        for n in nodes:
            hub.spawn_in_node(n, node_main)
        events.sleep(0.01)
        h, began = hub.hub(), time.perf_counter()
        for n in nodes:
            h.request_exit(n)
        events.sleep(0)                  # the killed threads unwind
        took.append(time.perf_counter() - began)
        events.exit()

    events.run(main)
    return took[0]


def _gevent_exits():
    groups = [gevent.pool.Group() for _ in range(N_NODES)]
    for g in groups:
        for _ in range(THREADS):
            g.spawn(gevent.sleep, 3600)
    gevent.sleep(0.01)
    began = time.perf_counter()
    for g in groups:
        g.kill(block=False)
    gevent.sleep(0)
    took = time.perf_counter() - began
    for g in groups:
        g.kill()
    return took


def _asyncio_exits():
    async def main():
        nodes = [{asyncio.ensure_future(asyncio.sleep(3600)) for _ in range(THREADS)}
                 for _ in range(N_NODES)]
        await asyncio.sleep(0.01)
        began = time.perf_counter()
        for tasks in nodes:
            for t in tasks:
                t.cancel()
        await asyncio.sleep(0)
        took = time.perf_counter() - began
        for tasks in nodes:
            await asyncio.gather(*tasks, return_exceptions=True)
        return took
    return asyncio.run(main())


def _measure(benchmark, fn):
    took = []
    benchmark.pedantic(lambda: took.append(fn()), **ROUNDS)
    benchmark.extra_info.update(nodes=N_NODES, threads_per_node=THREADS,
                                exit_seconds=min(took), per_node_us=min(took) / N_NODES * 1e6)
    print(f"\n{benchmark.name}: {N_NODES} nodes ended in {min(took):.3f} s "
          f"(best of {len(took)}; {min(took) / N_NODES * 1e6:.2f} us per node)")


def test_node_exit_pysplay(benchmark):
    benchmark.group = "node exit"
    _measure(benchmark, _pysplay_exits)


def test_node_exit_gevent(benchmark):
    benchmark.group = "node exit"
    _measure(benchmark, _gevent_exits)


def test_node_exit_asyncio(benchmark):
    benchmark.group = "node exit"
    _measure(benchmark, _asyncio_exits)
