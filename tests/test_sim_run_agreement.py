"""Chord's hop counts agree between a simulation and a real run (issue #12).

The same ring (examples/chord.py, unchanged, the same addresses) runs once as a real
``--in-process`` run over loopback (zero added latency) and once under ``--sim``; after the ring
is whole and the fingers have settled, the same 1,000 lookups (random keys from random nodes,
seeded) are made with examples/checkers.py and their hop counts compared by a permutation
chi-square test (splay.sim.compare). 48 nodes here; bench/test_sim.py does 1,000.
"""
import os
import pathlib
import random
import re
import subprocess
import sys

from splay import events
from splay.sim.compare import histogram, permutation_test

from examples import checkers
from examples.checkers import local_nodes, run, wait_for

ROOT = pathlib.Path(__file__).resolve().parent.parent
N, PERIOD, LOOKUPS = 48, 0.2, 1000
SETTLE = 40 * PERIOD          # a finger per period; 32-bit ids, about log2(N) distinct fingers
LIVENESS = 120                # seconds: generous, only a broken ring ever waits this long


def real_hops(tmp_path, first):
    proc = checkers.start_run("chord.py", N, first, [f"period={PERIOD}", "demo=0"],
                              in_process=True, time_limit=LIVENESS * 2, log=tmp_path / "real.log")

    def measure(nodes):
        ring = wait_for(lambda: checkers.chord_ring_problems(nodes), LIVENESS)
        events.sleep(SETTLE)
        problems, hops = checkers.chord_lookup_problems(nodes, samples=LOOKUPS, rng=random.Random(1))
        checkers.stop_nodes(nodes)
        return ring, problems, hops
    try:
        ring, problems, hops = run(measure, local_nodes(N, first))
        proc.communicate(timeout=LIVENESS)
    finally:
        proc.kill()
    assert ring == [] and problems == []
    return hops


def simulated_hops(tmp_path, first):
    command = [sys.executable, "-m", "splay.cli", "run", str(ROOT / "tests" / "sim_checked_example.py"),
               "-n", str(N), "--first-port", str(first), "--sim", "--quiet", "--no-metrics",
               "--log", str(tmp_path / "sim.log"), "--", "example=chord.py", "check=chord",
               "demo=0", f"period={PERIOD}", f"lookups={LOOKUPS}", f"settle={SETTLE}",
               "check_seed=1"]
    done = subprocess.run(command, env=checkers.ENV, capture_output=True, text=True,
                          timeout=LIVENESS * 2, cwd=tmp_path)
    log = (tmp_path / "sim.log").read_text()
    assert done.returncode == 0, done.stderr
    assert "PROPERTY ring ok" in log and "PROPERTY lookups ok" in log
    return [int(h) for h in re.search(r"HOPS (.*)", log).group(1).split()]


def test_hop_counts_of_a_simulation_and_a_real_run_agree(tmp_path):
    first = checkers.free_port_range(N)
    real = real_hops(tmp_path, first)
    simulated = simulated_hops(tmp_path, first)
    assert len(real) == len(simulated) == LOOKUPS
    statistic, p = permutation_test(real, simulated, permutations=500, seed=2)
    print(f"\nreal {histogram(real)}\nsim  {histogram(simulated)}\nchi2 {statistic:.2f} p {p:.3f}")
    assert p > 0.01, (histogram(real), histogram(simulated), statistic)
