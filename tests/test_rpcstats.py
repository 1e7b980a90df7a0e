"""splayc.rpcstats: the latency buckets of the RPC counters are the observatory's buckets."""
import math
import random

from splay.observatory.buckets import LATENCY_BOUNDS, bucket_index
from splayc.rpcstats import latency_bucket


def test_latency_bucket_is_the_first_bound_not_below_the_latency():
    values = [0.0, -1.0, 1e-9, math.inf, math.nan, 1e9]
    for bound in LATENCY_BOUNDS:                 # each bound, and just either side of it
        values += [bound, math.nextafter(bound, 0), math.nextafter(bound, math.inf)]
    rng = random.Random(13)
    values += [10 ** rng.uniform(-7, 3) for _ in range(20_000)]
    for v in values:
        expected = 0 if math.isnan(v) else bucket_index(v)
        assert latency_bucket(v) == expected, v
