"""Do a simulation and a real run agree? A two-sample test of two distributions of small integers
(hop counts, message counts), with no statistics package: a permutation test.

:func:`permutation_test` pools the two samples, deals them out again at random (seeded) many
times, and counts how often a random split is at least as different as the real one, by the
chi-square statistic of the 2 x k table of counts. A small p-value says the two samples are
unlikely to come from one distribution; a large one says the test sees no difference.
"""
import collections
import random

__all__ = ["chi_square", "permutation_test", "histogram"]


def histogram(values):
    """``{value: count}`` in value order."""
    return dict(sorted(collections.Counter(values).items()))


def chi_square(a, b):
    """The chi-square statistic of the 2 x k table of the counts of ``a`` and ``b`` (homogeneity)."""
    ca, cb = collections.Counter(a), collections.Counter(b)
    na, nb = len(a), len(b)
    total = na + nb
    stat = 0.0
    for value in set(ca) | set(cb):
        column = ca[value] + cb[value]
        for observed, n in ((ca[value], na), (cb[value], nb)):
            expected = n * column / total
            stat += (observed - expected) ** 2 / expected
    return stat


def permutation_test(a, b, permutations=1000, seed=0):
    """``(statistic, p_value)``: the chi-square of ``a`` against ``b`` and the share of
    ``permutations`` random relabellings of the pooled values whose statistic is as large
    (the observed split counted as one, so p is never 0)."""
    if not a or not b:
        raise ValueError("both samples need at least one value")
    observed = chi_square(a, b)
    pooled = list(a) + list(b)
    rng = random.Random(seed)
    at_least = 1
    for _ in range(permutations):
        rng.shuffle(pooled)
        if chi_square(pooled[:len(a)], pooled[len(a):]) >= observed - 1e-12:
            at_least += 1
    return observed, at_least / (permutations + 1)
