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


# -- whole runs: `splay run APP -n N --sim` against `--in-process` (bench/test_sim.py::test_sim_run)

import os
import pathlib
import re
import subprocess
import sys
import textwrap
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUN_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), str(ROOT)]))
RUN_ENV.pop("SPLAY_JOB", None)

# Every node sleeps 20 random delays of 50-500 ms: 21 thread resumptions per node, about 5 s of
# (virtual or real) time in all.
TIMERS_APP = """
    import random
    from splay import events

    def main():
        for _ in range(20):
            events.sleep(random.uniform(0.05, 0.5))

    events.run(main)
"""
SCALE_NODES = int(os.environ.get("SPLAY_BENCH_SIM_NODES", "10000"))


def _run(tmp_path, mode, n):
    """Run the timers app on ``n`` nodes; returns (wall seconds, stderr, peak RSS of the biggest
    process of the run in bytes)."""
    app = tmp_path / "timers.py"
    app.write_text(textwrap.dedent(TIMERS_APP))
    command = [sys.executable, "-m", "splay.cli", "run", str(app), "-n", str(n), mode,
               "--no-metrics", "--log", str(tmp_path / f"{mode}.log")]
    # Through a wrapper process, whose children's peak RSS is this run's alone.
    wrapper = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024); sys.exit(rc)")
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", wrapper, *command], cwd=tmp_path, env=RUN_ENV,
                          capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - began
    assert done.returncode == 0, done.stderr[-2000:]
    return wall, done.stderr, int(done.stdout.split()[-1])


@pytest.mark.timeout(1800)
@pytest.mark.benchmark(group="sim: a 10,000-node run of timers, --sim vs --in-process")
@pytest.mark.parametrize("mode", ["--sim", "--in-process"])
def test_sim_run(benchmark, tmp_path, mode):
    """Wall time of the whole run (launcher, host, every node's module, 20 sleeps per node); with
    --sim also the host's own figures: events/s, virtual/real ratio, memory per node."""
    results = []
    benchmark.pedantic(lambda: results.append(_run(tmp_path, mode, SCALE_NODES)), rounds=1,
                       iterations=1)
    wall, stderr, max_rss = results[-1]
    benchmark.extra_info["nodes"] = SCALE_NODES
    benchmark.extra_info["wall_seconds"] = wall
    benchmark.extra_info["bytes_per_node"] = max_rss / SCALE_NODES
    if mode == "--sim":
        m = re.search(r"ended at virtual time ([0-9.]+) s in ([0-9.]+) s of real time: (\d+) events, "
                      r"\S+ events/s, x([0-9.]+) real time; peak memory (\d+) MiB", stderr)
        assert m, stderr[-2000:]
        vt, real, count, ratio, peak = m.groups()
        benchmark.extra_info.update(virtual_seconds=float(vt), host_seconds=float(real),
                                    events=int(count), events_per_second=int(count) / float(real),
                                    virtual_per_real=float(ratio))
        print(f"\n--sim {SCALE_NODES} nodes: {wall:.2f} s wall, {int(count) / float(real):.0f} events/s, "
              f"virtual/real x{float(ratio):.1f}, peak {peak} MiB ({max_rss / SCALE_NODES:.0f} B/node)")
    else:
        print(f"\n--in-process {SCALE_NODES} nodes: {wall:.2f} s wall, peak "
              f"{max_rss / 2**20:.0f} MiB ({max_rss / SCALE_NODES:.0f} B/node)")


# -- Chord in simulation (examples/chord.py unchanged) and its agreement with a real run -------

sys.path.insert(0, str(ROOT / "tests"))
from support_sim import real_chord_hops, simulated_chord_hops  # noqa: E402

from splay.sim.compare import histogram, permutation_test  # noqa: E402

CHORD_NODES = int(os.environ.get("SPLAY_BENCH_CHORD_NODES", "1000"))
# The protocol's period (examples/chord.py's default: 0.5 s) and how often node 0 checks the ring
# (each check is two RPCs per node: every 5 virtual seconds, a few percent of the protocol's RPCs).
CHORD_PERIOD = os.environ.get("SPLAY_BENCH_CHORD_PERIOD", "0.5")
CHORD_CHECK_PERIOD = os.environ.get("SPLAY_BENCH_CHORD_CHECK_PERIOD", "5")
AGREEMENT_NODES = int(os.environ.get("SPLAY_BENCH_AGREEMENT_NODES", "1000"))


@pytest.mark.timeout(4 * 3600)     # 10,000 nodes take many minutes
def test_chord_sim(benchmark, tmp_path):
    """Chord (examples/chord.py, period CHORD_PERIOD) on CHORD_NODES simulated nodes: join until
    every successor is correct, 1,000 correct lookups; wall time, events/s, virtual/real, memory."""
    command = [sys.executable, "-m", "splay.cli", "run", str(ROOT / "tests" / "sim_checked_example.py"),
               "-n", str(CHORD_NODES), "--sim", "--no-metrics", "--log", str(tmp_path / "chord.log"),
               "--", "example=chord.py", "check=chord", "demo=0", f"period={CHORD_PERIOD}",
               "lookups=1000", f"check_period={CHORD_CHECK_PERIOD}"]
    wrapper = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024); sys.exit(rc)")
    results = []

    def run_it():
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", wrapper, *command], cwd=tmp_path, env=RUN_ENV,
                              capture_output=True, text=True, timeout=4 * 3600)
        results.append((time.perf_counter() - began, done))
    benchmark.pedantic(run_it, rounds=1, iterations=1)
    wall, done = results[-1]
    log = (tmp_path / "chord.log").read_text()
    assert done.returncode == 0 and "PROPERTY ring ok" in log and "PROPERTY lookups ok" in log, \
        done.stderr[-2000:]
    ring_at = float(re.search(r"ring correct at virtual time ([0-9.]+)", log).group(1))
    m = re.search(r"ended at virtual time ([0-9.]+) s in ([0-9.]+) s of real time: (\d+) events",
                  done.stderr)
    vt, real, count = float(m.group(1)), float(m.group(2)), int(m.group(3))
    max_rss = int(done.stdout.split()[-1])
    benchmark.extra_info.update(nodes=CHORD_NODES, period=float(CHORD_PERIOD), wall_seconds=wall,
                                ring_correct_at=ring_at,
                                virtual_seconds=vt, events=count, events_per_second=count / real,
                                virtual_per_real=vt / real, bytes_per_node=max_rss / CHORD_NODES)
    print(f"\nChord {CHORD_NODES} nodes in --sim (period {CHORD_PERIOD}): ring correct at "
          f"virtual {ring_at:.0f} s, {vt:.0f} virtual s in {wall:.0f} s wall, {count / real:.0f} events/s, "
          f"virtual/real x{vt / real:.2f}, {max_rss / CHORD_NODES / 1024:.1f} KB/node")


@pytest.mark.timeout(4 * 3600)
def test_chord_hop_agreement(benchmark, tmp_path):
    """The hop counts of 1,000 lookups on AGREEMENT_NODES Chord nodes: a real --in-process run
    over loopback against --sim, the same ring; both histograms and the permutation test."""
    from examples import checkers
    period, lookups, liveness = 1.0, 1000, 1800
    first = checkers.free_port_range(AGREEMENT_NODES)
    hops = {}

    def run_both():
        hops["real"] = real_chord_hops(tmp_path, AGREEMENT_NODES, first, lookups, period,
                                       40 * period, liveness)
        hops["sim"] = simulated_chord_hops(tmp_path, AGREEMENT_NODES, first, lookups, period,
                                           40 * period, liveness)
    benchmark.pedantic(run_both, rounds=1, iterations=1)
    statistic, p = permutation_test(hops["real"], hops["sim"], permutations=500, seed=2)
    benchmark.extra_info.update(real=histogram(hops["real"]), sim=histogram(hops["sim"]),
                                chi2=statistic, p=p)
    print(f"\n{AGREEMENT_NODES} nodes, {lookups} lookups\nreal {histogram(hops['real'])}\n"
          f"sim  {histogram(hops['sim'])}\nchi2 {statistic:.2f}, p {p:.3f}")
    assert p > 0.01
