"""The copy rate's intervals: exact Clopper-Pearson against SciPy, the bootstrap, the JSON record."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from novelty.judge.rates import bootstrap_interval, clopper_pearson, copy_rate


@pytest.mark.parametrize(("successes", "n"), [(0, 10), (3, 10), (10, 10), (7, 300)])
def test_clopper_pearson_matches_scipy_and_stays_honest_at_the_ends(successes, n):
    low, high = clopper_pearson(successes, n, 0.95)
    expected = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="exact")
    assert low == pytest.approx(expected.low, abs=1e-9) and high == pytest.approx(expected.high, abs=1e-9)
    assert (low == 0.0) == (successes == 0) and (high == 1.0) == (successes == n)
    assert low <= successes / n <= high


def test_bootstrap_interval_brackets_the_rate_and_is_seeded():
    flags = np.zeros(200)
    flags[:20] = 1
    low, high = bootstrap_interval(flags, resamples=2000, confidence=0.95, seed=1)
    assert low < 0.1 < high and 0.04 < low and high < 0.16
    assert bootstrap_interval(flags, resamples=2000, confidence=0.95, seed=1) == (low, high)
    assert bootstrap_interval(np.zeros(50), resamples=100) == (0.0, 0.0)  # collapses: why the exact one is given
    assert all(np.isnan(bootstrap_interval(np.zeros(0))))


def test_copy_rate_is_json_ready_with_both_intervals():
    is_copy = np.array([True] + [False] * 99)
    rate = copy_rate(is_copy, fpr=0.01, resamples=500, seed=0)
    assert (rate["count"], rate["n"], rate["rate"]) == (1, 100, 0.01)
    assert rate["expected_false_positives"] == pytest.approx(1.0)
    assert rate["exact_interval"][0] < 0.01 < rate["exact_interval"][1]
    assert copy_rate(np.zeros(0, bool), fpr=0.01)["rate"] is None
