"""The 1,000-node hop-count agreement figure of issue #12: a real run and its simulation.

examples/chord.py (demo=0), the same N nodes on the same addresses, once as a real
``--in-process`` run over loopback and once under ``--sim``, both with a zero-latency topology
(``--topology`` of a uniform model of 0 ms: every pair has a link, adding nothing). Once the ring
is correct and the fingers have settled (40 periods), node 0 -- or the test, for the real run --
makes the same 1,000 seeded lookups (examples/checkers.py, the machinery of
tests/test_sim_run_agreement.py in tests/support_sim.py); the two hop-count histograms are
compared by a permutation chi-square test (splay.sim.compare).

Run::

    python -m pytest bench/test_sim_agreement.py -s
    SPLAY_BENCH_AGREEMENT_NODES=1000 SPLAY_BENCH_AGREEMENT_PERIOD=5 python -m pytest bench/test_sim_agreement.py -s

The real run must keep up with its period in real time: on a loaded machine, a longer period
(``SPLAY_BENCH_AGREEMENT_PERIOD``) gives each round the CPU it needs. Figures in BENCHMARKS.md
("Chord in simulation").
"""
import os
import sys
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support_sim import real_chord_hops, simulated_chord_hops  # noqa: E402

from examples import checkers  # noqa: E402
from splay.sim.compare import histogram, permutation_test  # noqa: E402

NODES = int(os.environ.get("SPLAY_BENCH_AGREEMENT_NODES", "1000"))
PERIOD = float(os.environ.get("SPLAY_BENCH_AGREEMENT_PERIOD", "5"))
LOOKUPS = 1000
LIVENESS = 3600          # real seconds: only a ring that never forms waits this long


@pytest.mark.timeout(4 * 3600)
def test_chord_hop_agreement_with_a_zero_latency_topology(benchmark, tmp_path):
    """Both histograms and the permutation test (p > 0.01: the two are not told apart)."""
    topology = tmp_path / "zero.model"
    topology.write_text("uniform delay_ms=0\n")
    extra = ["--topology", str(topology)]
    first = checkers.free_port_range(NODES)
    hops = {}

    def run_both():
        hops["real"] = real_chord_hops(tmp_path, NODES, first, LOOKUPS, PERIOD, 40 * PERIOD,
                                       LIVENESS, extra)
        hops["sim"] = simulated_chord_hops(tmp_path, NODES, first, LOOKUPS, PERIOD, 40 * PERIOD,
                                           LIVENESS, extra)
    benchmark.pedantic(run_both, rounds=1, iterations=1)
    assert len(hops["real"]) == len(hops["sim"]) == LOOKUPS
    statistic, p = permutation_test(hops["real"], hops["sim"], permutations=1000, seed=2)
    benchmark.extra_info.update(nodes=NODES, period=PERIOD, real=histogram(hops["real"]),
                                sim=histogram(hops["sim"]), chi2=statistic, p=p)
    print(f"\n{NODES} Chord nodes, period {PERIOD:g} s, {LOOKUPS} lookups, zero-latency topology\n"
          f"real {histogram(hops['real'])}\nsim  {histogram(hops['sim'])}\n"
          f"chi2 {statistic:.3f}, permutation p {p:.3f}")
    assert p > 0.01
