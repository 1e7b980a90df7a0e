"""Checker benchmarks: the linearizability search on generated key-value histories.

The issue's target: a 10,000-operation lin-kv history over 100 keys checked in under 10 s. The
histories come from a sequential model (tests/support_histories.py: every operation takes effect
at an instant inside its interval), with concurrent clients and unknown outcomes, so the search
has real choices to make; one case injects a stale read so the search must fail (and reduce the
counterexample).

    python -m pytest bench/test_check.py --benchmark-only
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from support_histories import kv_history  # noqa: E402

from splay import check  # noqa: E402


@pytest.mark.parametrize("processes", [10, 50])
def test_lin_kv_10000_ops_100_keys(benchmark, processes):
    records = kv_history(10_000, 100, processes, seed=1, info_rate=0.05)
    result = benchmark.pedantic(check.check, args=("lin-kv", records), rounds=3, iterations=1)
    assert result.valid == "valid"


def test_lin_kv_single_key_2000_ops_heavy_concurrency(benchmark):
    # 10 clients on one key, 2 % unknown outcomes that stay pending to the end: the hard case
    # (every unknown write may take effect at any later point)
    records = kv_history(2_000, 1, 10, seed=2, info_rate=0.02)
    result = benchmark.pedantic(check.check, args=("lin-kv", records), rounds=3, iterations=1)
    assert result.valid == "valid"


def test_lin_kv_10000_ops_with_one_stale_read(benchmark):
    records = kv_history(10_000, 100, 10, seed=3)
    reads = [r for r in records if r["type"] == "ok" and r["f"] == "read"]
    reads[len(reads) // 2]["value"] = [reads[len(reads) // 2]["value"][0], 999]
    result = benchmark.pedantic(check.check, args=("lin-kv", records), rounds=3, iterations=1)
    assert result.valid == "invalid"
