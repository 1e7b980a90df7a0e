"""splay.sim.compare: the permutation chi-square test tells apart what differs, not what agrees."""
import random

import pytest

from splay.sim.compare import chi_square, histogram, permutation_test


def test_two_samples_of_one_distribution_agree():
    rng = random.Random(1)
    a = [rng.choice([1, 2, 2, 3, 3, 3, 4]) for _ in range(500)]
    b = [rng.choice([1, 2, 2, 3, 3, 3, 4]) for _ in range(500)]
    _, p = permutation_test(a, b, permutations=300, seed=3)
    assert p > 0.05


def test_shifted_distributions_are_told_apart():
    rng = random.Random(2)
    a = [rng.choice([1, 2, 2, 3, 3, 3, 4]) for _ in range(500)]
    b = [x + 1 for x in a]
    _, p = permutation_test(a, b, permutations=300, seed=3)
    assert p < 0.01


def test_identical_samples_have_statistic_0_and_p_1():
    a = [1, 2, 2, 3]
    assert chi_square(a, list(a)) == 0.0
    assert permutation_test(a, list(a), permutations=50)[1] == 1.0
    assert histogram([3, 1, 3]) == {1: 1, 3: 2}


def test_an_empty_sample_is_refused():
    with pytest.raises(ValueError, match="both samples need at least one value"):
        permutation_test([], [1])
