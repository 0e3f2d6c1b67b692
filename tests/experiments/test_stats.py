"""The verdict statistics against scipy's t distribution computed independently, the three
verdicts on both sides of a margin, identity checks, and seed blocks that do not overlap."""

import math

import numpy as np
import pytest
import scipy.stats

from dlopt.experiments.stats import decide, derive, interval, seed_block


def _t_interval(x):
    """The textbook interval mean ± t_{0.975, n−1}·s/√n, from scipy.stats.t directly."""
    x = np.asarray(x, dtype=float)
    half = scipy.stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return x.mean() - half, x.mean() + half


@pytest.mark.parametrize("seed", range(5))
def test_interval_is_the_student_t_interval(seed):
    x = np.random.default_rng(seed).normal(0.3, 0.1, size=3 + seed)
    mean, low, high, se = interval(x)
    ref_low, ref_high = _t_interval(x)
    assert mean == pytest.approx(x.mean(), rel=1e-12)
    assert low == pytest.approx(ref_low, rel=1e-10) and high == pytest.approx(ref_high, rel=1e-10)
    assert se == pytest.approx(x.std(ddof=1) / math.sqrt(len(x)), rel=1e-12)


def test_three_verdicts_greater():
    assert decide([0.10, 0.11, 0.12, 0.09], 0.05, "greater", "empirical").verdict == "confirmed"
    assert decide([0.00, 0.01, -0.01, 0.005], 0.05, "greater", "empirical").verdict == "refuted"
    assert decide([0.0, 0.1, 0.05, 0.09], 0.05, "greater", "empirical").verdict == "inconclusive"


def test_three_verdicts_less_and_negative_margins():
    assert decide([0.001, 0.002, 0.0], 0.02, "less", "empirical").verdict == "confirmed"
    assert decide([0.05, 0.06, 0.055], 0.02, "less", "empirical").verdict == "refuted"
    # non-inferiority: within 0.01 below zero is still fine
    assert decide([-0.001, 0.0, 0.002], -0.01, "greater", "empirical").verdict == "confirmed"


def test_one_seed_or_non_finite_values_decide_nothing():
    assert decide([0.5], 0.0, "greater", "empirical").verdict == "inconclusive"
    assert decide([0.5, math.nan], 0.0, "greater", "empirical").verdict == "inconclusive"
    flat = decide([0.2, 0.2, 0.2], 0.1, "greater", "empirical")  # no spread: the point itself
    assert flat.verdict == "confirmed" and flat.ci_low == flat.ci_high == pytest.approx(0.2)


def test_identity_rows_decide_on_every_value_and_can_fail():
    assert decide([1e-16, 3e-16], 1e-10, "less", "identity").verdict == "confirmed"
    assert decide([1e-16, 1e-3], 1e-10, "less", "identity").verdict == "refuted"
    assert decide([math.nan], 1e-10, "less", "identity").verdict == "refuted"
    with pytest.raises(ValueError, match="direction"):
        decide([1.0], 0.0, "above", "empirical")


def test_seed_blocks_are_reproducible_and_disjoint():
    a, b = seed_block(0, 10), seed_block(1000, 10)
    assert a == seed_block(0, 10) and len(set(a)) == 10
    assert not set(a) & set(b)
    assert all(0 <= s < 2**31 for s in a + b)
    assert derive(5, 1) != derive(5, 2) and derive(5, 1) == derive(5, 1)
    assert not {a[0] + i for i in range(10)} & set(a[1:])  # not seed + i
