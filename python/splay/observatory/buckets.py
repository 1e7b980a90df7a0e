"""The fixed log-scale latency buckets shared by nodes, the controller, Prometheus and plots.

A histogram is a list of ``len(LATENCY_BOUNDS) + 1`` NON-cumulative counts: count ``i`` holds the
observations ``<= LATENCY_BOUNDS[i]`` and ``> LATENCY_BOUNDS[i-1]``; the last one is the overflow
(observations above the largest bound). Because every node uses the same bounds, histograms of
different nodes add up bucket by bucket (:func:`merge`) and percentiles stay meaningful.
"""
import bisect

LATENCY_BOUNDS = tuple(1e-5 * 2 ** i for i in range(24))  # seconds: 10 us ... ~84 s
"""Upper bounds (seconds) of the latency buckets, ascending; an overflow bucket follows them."""

N_BUCKETS = len(LATENCY_BOUNDS) + 1
"""Number of counts in a latency histogram (the bounds plus the overflow bucket)."""


def empty(bounds=LATENCY_BOUNDS):
    """A histogram of zero counts for ``bounds`` (plus the overflow bucket)."""
    return [0] * (len(bounds) + 1)


def bucket_index(value, bounds=LATENCY_BOUNDS):
    """Index of the bucket ``value`` falls into: the first bound ``>= value``, else the overflow."""
    return bisect.bisect_left(bounds, value)


def observe(counts, value, bounds=LATENCY_BOUNDS):
    """Add one observation of ``value`` to ``counts`` (in place) and return ``counts``."""
    counts[bisect.bisect_left(bounds, value)] += 1
    return counts


def merge(a, b):
    """The bucket-by-bucket sum of two histograms of the same bounds (a new list).

    Raises ValueError when their lengths differ (histograms of different bounds do not add up).
    """
    if len(a) != len(b):
        raise ValueError(f"cannot merge histograms of {len(a)} and {len(b)} buckets: "
                         "both must use the same bounds")
    return [x + y for x, y in zip(a, b)]


def percentile(counts, q, bounds=LATENCY_BOUNDS):
    """The ``q`` quantile (``q`` in [0, 1]) of a histogram, in the bounds' unit; None when empty.

    The value is interpolated linearly within the bucket holding the quantile (the first bucket
    starts at 0). An observation in the overflow bucket is reported as the largest bound, the
    best lower estimate the histogram holds.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q!r} is outside [0, 1]; use e.g. 0.5 for the median")
    if len(counts) != len(bounds) + 1:
        raise ValueError(f"histogram has {len(counts)} counts, expected {len(bounds) + 1} "
                         "(one per bound plus the overflow)")
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, c in enumerate(counts):
        if c and seen + c >= rank:
            if i == len(bounds):
                return float(bounds[-1])
            low = bounds[i - 1] if i > 0 else 0.0
            high = bounds[i]
            return low + (high - low) * max(rank - seen, 0) / c
        seen += c
    return float(bounds[-1])
