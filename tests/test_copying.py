"""Data-copying test C_T (Meehan et al., 2020) with planted generators."""

from __future__ import annotations

import numpy as np
import pytest

from novelty.errors import NoveltyError
from novelty.judge.copying import data_copying_test, mann_whitney_z


def _mixture(rng: np.random.Generator, n: int, centres: np.ndarray) -> np.ndarray:
    picks = rng.integers(0, len(centres), n)
    return centres[picks] + rng.standard_normal((n, centres.shape[1]))


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((5, 8)) * 6
    return rng, centres, _mixture(rng, 1500, centres), _mixture(rng, 400, centres)


def test_generator_returning_training_points_is_strongly_negative(world):
    rng, _centres, training, heldout = world
    copies = training[rng.choice(len(training), 400, replace=False)]
    result = data_copying_test(training, heldout, copies, seed=0)
    assert result.c_t < -5
    assert all(c.z < -3 for c in result.cells if c.used)
    assert result.n_cells > 1 and result.heldout_share_used > 0.5


def test_fresh_samples_of_the_same_distribution_are_near_zero(world):
    rng, centres, training, heldout = world
    fresh = _mixture(np.random.default_rng(7), 400, centres)
    result = data_copying_test(training, heldout, fresh, seed=0)
    assert abs(result.c_t) < 2.5
    assert result.warnings == []


def test_underfitting_generator_is_positive(world):
    _rng, centres, training, heldout = world
    blurry = _mixture(np.random.default_rng(8), 400, centres) * 1.0 + np.random.default_rng(9).standard_normal((400, 8)) * 2
    assert data_copying_test(training, heldout, blurry, seed=0).c_t > 3


def test_cells_with_too_few_samples_are_skipped_and_listed(world):
    _rng, _centres, training, heldout = world
    few = training[:30] + 1e-3
    result = data_copying_test(training, heldout, few, n_cells=5, min_cell_samples=20, seed=0)
    assert sum(c.used for c in result.cells) <= 1
    assert sum(c.n_generated for c in result.cells) == 30 and len(result.cells) == 5
    none = data_copying_test(training, heldout, few, n_cells=5, min_cell_samples=40, seed=0)
    assert np.isnan(none.c_t) and "undefined" in none.warnings[0]
    assert none.as_dict()["c_t"] is None


def test_mann_whitney_z_sign_and_scale():
    rng = np.random.default_rng(1)
    a = rng.standard_normal(200)
    assert mann_whitney_z(a - 2, a) < -10  # generated closer: negative
    assert mann_whitney_z(a, a) == pytest.approx(0.0, abs=1e-9)
    from scipy.stats import mannwhitneyu

    b = rng.standard_normal(150) + 0.2
    u = mannwhitneyu(a, b, alternative="two-sided", method="asymptotic", use_continuity=False).statistic
    expected = (u - 200 * 150 / 2) / np.sqrt(200 * 150 * 351 / 12)
    assert mann_whitney_z(a, b) == pytest.approx(expected, rel=0.05)  # scipy corrects ties; there are none


def test_wide_features_are_clustered_in_a_projection():
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((3, 600)) * 3
    training = _mixture(rng, 600, centres)
    heldout = _mixture(rng, 200, centres)
    result = data_copying_test(training, heldout, training[:200] + 1e-3, seed=0)
    assert result.n_cells == 10 and result.c_t < -5


def test_bad_shapes_raise():
    with pytest.raises(NoveltyError, match="widths differ"):
        data_copying_test(np.zeros((10, 3)), np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(NoveltyError, match="n_cells"):
        data_copying_test(np.zeros((10, 3)), np.zeros((10, 3)), np.zeros((10, 3)), n_cells=20)
