"""Throughput of an RPC-heavy ``splay run --in-process`` with the nodes over 1 and K worker processes.

N nodes (default 64) of bench/workers_rpc_app.py, each with 4 threads calling random other nodes'
``ping`` over rpcq for D seconds (default 10) from a common wall-clock start; the figure is the
calls completed per second by all nodes together, and the calls per CPU second of the node
processes (which the machine's other load does not change: K workers reach K times the
one-process throughput when K cores are free for them and this figure stays the same). ``--workers 1`` (one process, one scheduler)
and ``--workers K`` (default: the cores) are measured in the same run, alternately, R rounds
each (default 2); the ratio of the best rounds goes in BENCHMARKS.md.

    python -m pytest bench/test_workers.py -s -q
    SPLAY_WORKERS_NODES=64 SPLAY_WORKERS_SECONDS=10 SPLAY_WORKERS_ROUNDS=3 python -m pytest bench/test_workers.py -s -q
    SPLAY_WORKERS_MODE=rpc python -m pytest bench/test_workers.py -s -q     # a connection per call

(``SPLAY_WORKERS_MODE``: ``rpcq``, the default, or ``rpc``, the family examples/chord.py uses:
its calls per CPU second are the budget of a Chord run over workers, see bench/test_scale.py.)

Prints one line ``workers {json}`` per round and a last one with the ratio.
"""
import json
import os
import re
import subprocess
import sys
import time

from examples.checkers import free_port_range
from splay.launch.workers import default_workers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "bench", "workers_rpc_app.py")
NODES = int(os.environ.get("SPLAY_WORKERS_NODES", "64"))
SECONDS = float(os.environ.get("SPLAY_WORKERS_SECONDS", "10"))
ROUNDS = int(os.environ.get("SPLAY_WORKERS_ROUNDS", "2"))
K = int(os.environ.get("SPLAY_WORKERS_K", str(max(2, default_workers()))))
MODE = os.environ.get("SPLAY_WORKERS_MODE", "rpcq")


def calls_per_second(tmp_path, workers):
    """One run with ``--workers workers``: the calls per second of all nodes together."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), ROOT]))
    env.pop("SPLAY_JOB", None)
    start = time.time() + 3.0 + NODES * 0.01             # every node's server is up by then
    run = subprocess.run([sys.executable, "-m", "splay.cli", "run", APP, "-n", str(NODES),
                          "--first-port", str(free_port_range(NODES)), "--in-process",
                          "--workers", str(workers), "--quiet", "--no-metrics",
                          "--log", str(tmp_path / f"run-{workers}.log"), "--",
                          f"start={start}", f"seconds={SECONDS}", f"mode={MODE}"],
                         env=env, capture_output=True, text=True, timeout=SECONDS + 120)
    assert run.returncode == 0, run.stderr
    found = re.findall(r"\[node \d+\] calls (\d+) pid (\d+) cpu ([\d.]+)",
                       (tmp_path / f"run-{workers}.log").read_text())
    assert len(found) == NODES, run.stderr
    calls = sum(int(c) for c, _, _ in found)
    cpu = sum({pid: float(s) for _, pid, s in found}.values())    # each worker's CPU once
    return calls / SECONDS, calls / cpu


def test_rpc_throughput_workers_against_one_process(benchmark, tmp_path):
    best = {1: 0.0, K: 0.0}
    per_cpu = {1: 0.0, K: 0.0}

    def rounds():
        for r in range(ROUNDS):
            for workers in (1, K):
                rate, rate_per_cpu = calls_per_second(tmp_path, workers)
                best[workers] = max(best[workers], rate)
                per_cpu[workers] = max(per_cpu[workers], rate_per_cpu)
                print("workers", json.dumps({"round": r, "workers": workers, "nodes": NODES, "mode": MODE,
                                             "calls_per_s": round(rate),
                                             "calls_per_cpu_s": round(rate_per_cpu),
                                             "load": os.getloadavg()[0]}), flush=True)

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    print("workers", json.dumps({"nodes": NODES, "mode": MODE, "k": K, "best_one_process": round(best[1]),
                                 f"best_{K}_workers": round(best[K]),
                                 "ratio": round(best[K] / best[1], 2),
                                 "per_cpu_ratio": round(per_cpu[K] / per_cpu[1], 2),
                                 "cores": os.cpu_count(), "load": os.getloadavg()[0]}), flush=True)
    assert best[1] > 0 and best[K] > 0
