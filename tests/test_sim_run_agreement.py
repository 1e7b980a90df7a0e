"""Chord's hop counts agree between a simulation and a real run (issue #12).

The same ring (examples/chord.py, unchanged, the same addresses) runs once as a real
``--in-process`` run over loopback (zero added latency) and once under ``--sim``; after the ring
is whole and the fingers have settled, the same 1,000 lookups (random keys from random nodes,
seeded) are made with examples/checkers.py (tests/support_sim.py) and their hop counts compared
by a permutation chi-square test (splay.sim.compare). 48 nodes here; bench/test_sim.py does 1,000.
"""
from splay.sim.compare import histogram, permutation_test

from examples import checkers
from support_sim import real_chord_hops, simulated_chord_hops

N, PERIOD, LOOKUPS = 48, 0.2, 1000
SETTLE = 40 * PERIOD          # a finger per period; 48-bit ids, about log2(N) distinct fingers
LIVENESS = 120                # seconds: generous, only a broken ring ever waits this long


def test_hop_counts_of_a_simulation_and_a_real_run_agree(tmp_path):
    first = checkers.free_port_range(N)
    real = real_chord_hops(tmp_path, N, first, LOOKUPS, PERIOD, SETTLE, LIVENESS)
    simulated = simulated_chord_hops(tmp_path, N, first, LOOKUPS, PERIOD, SETTLE, LIVENESS)
    assert len(real) == len(simulated) == LOOKUPS
    statistic, p = permutation_test(real, simulated, permutations=500, seed=2)
    print(f"\nreal {histogram(real)}\nsim  {histogram(simulated)}\nchi2 {statistic:.2f} p {p:.3f}")
    assert p > 0.01, (histogram(real), histogram(simulated), statistic)
