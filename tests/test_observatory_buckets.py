"""splay.observatory.buckets: bucket placement, merging, percentiles."""
import pytest

from splay.observatory.buckets import (LATENCY_BOUNDS, N_BUCKETS, bucket_index, empty, merge,
                                       observe, percentile)


def test_bounds_are_the_contract_ones():
    assert len(LATENCY_BOUNDS) == 24 and N_BUCKETS == 25
    assert LATENCY_BOUNDS[0] == 1e-5 and LATENCY_BOUNDS[-1] == pytest.approx(83.88608)


def test_observation_lands_in_the_first_bound_at_or_above_it():
    assert bucket_index(0.0) == 0
    assert bucket_index(1e-5) == 0            # <= bound: this bucket
    assert bucket_index(1.1e-5) == 1
    assert bucket_index(1000.0) == 24         # overflow
    h = observe(observe(empty(), 3e-5), 3e-5)
    assert h[2] == 2 and sum(h) == 2


def test_merge_adds_bucket_by_bucket_and_refuses_other_bounds():
    assert merge([1, 2, 0], [0, 1, 5]) == [1, 3, 5]
    with pytest.raises(ValueError, match="same bounds"):
        merge([1, 2], [1, 2, 3])


def test_percentile_interpolates_within_the_bucket():
    h = empty()
    for _ in range(100):
        observe(h, 1.5e-3)                    # all in (1.28e-3, 2.56e-3]
    p50 = percentile(h, 0.5)
    assert 1.28e-3 < p50 <= 2.56e-3
    assert percentile(h, 1.0) == pytest.approx(2.56e-3)
    assert percentile(h, 0.0) == pytest.approx(1.28e-3)


def test_percentile_orders_across_buckets():
    h = empty()
    for _ in range(90):
        observe(h, 1e-4)
    for _ in range(10):
        observe(h, 1.0)
    assert percentile(h, 0.5) <= 1e-4 * 1.3
    assert 0.5 < percentile(h, 0.99) <= 1.31072


def test_percentile_of_empty_and_overflow():
    assert percentile(empty(), 0.5) is None
    h = empty()
    h[-1] = 3
    assert percentile(h, 0.5) == LATENCY_BOUNDS[-1]


@pytest.mark.parametrize("q", [-0.1, 1.5])
def test_percentile_refuses_quantiles_outside_0_1(q):
    with pytest.raises(ValueError, match="outside"):
        percentile(empty(), q)


def test_percentile_refuses_a_histogram_of_other_length():
    with pytest.raises(ValueError, match="expected 25"):
        percentile([1, 2, 3], 0.5)
