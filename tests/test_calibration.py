"""Calibrated copy verdicts: split, p-values, the min-p layer rule, planted copies."""

from __future__ import annotations

import numpy as np
import pytest

from novelty.errors import NoveltyError
from novelty.judge.calibration import (
    calibrate,
    conformal_p_value,
    heldout_share,
    holdout_split,
    judge,
    leave_group_out_nearest,
)
from novelty.search.neighbors import top_k


def test_split_is_seeded_sized_and_keeps_groups_whole():
    groups = np.arange(1000)
    groups[10:40] = 10  # one group of 30
    groups[100:105] = 100
    ref, held = holdout_split(1000, 0.1, seed=3, groups=groups)
    assert len(held) == 100 and len(ref) == 900
    assert np.array_equal(np.sort(np.concatenate([ref, held])), np.arange(1000))
    for g in (10, 100):
        members = np.flatnonzero(groups == g)
        assert np.isin(members, held).all() or np.isin(members, ref).all()
    again = holdout_split(1000, 0.1, seed=3, groups=groups)
    other = holdout_split(1000, 0.1, seed=4, groups=groups)
    assert np.array_equal(again[1], held) and not np.array_equal(other[1], held)


def test_split_edge_cases():
    ref, held = holdout_split(2, 0.1)
    assert len(ref) == 1 and len(held) == 1
    with pytest.raises(NoveltyError, match="between 0 and 1"):
        holdout_split(10, 1.0)
    with pytest.raises(NoveltyError, match="at least 2"):
        holdout_split(1, 0.5)
    with pytest.raises(NoveltyError, match="one duplicate group"):
        holdout_split(5, 0.2, groups=np.zeros(5, int))


def test_shares_and_p_values_on_planted_numbers():
    held = np.array([0.1, 0.2, 0.3, 0.4])
    gen = np.array([0.5, 0.4, 0.25, 0.0])
    np.testing.assert_allclose(heldout_share(gen, held), [0.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(conformal_p_value(gen, held), [0.2, 0.4, 0.6, 1.0])


def _world(seed=0, n=3000, d=32):
    """Training images of a 20-mode mixture; nearest similarities as the verdicts module computes them."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, d)) * 2
    def draw(m):
        return centres[rng.integers(0, 20, m)] + rng.standard_normal((m, d))
    training = draw(n)
    ref, held = holdout_split(n, 0.2, seed=seed)
    return rng, draw, training, ref, held


def _nearest(queries, pool):
    return top_k(queries, pool, k=1)[1][:, 0]


def _held_nearest(features, held):
    """Held-out images against every other training image (no duplicate groups in these worlds)."""
    return leave_group_out_nearest(features[held], features, held, np.arange(len(features)))[1]


def test_leave_group_out_skips_the_image_and_its_duplicates():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    comps = np.array([0, 0, 1, 2])  # rows 0 and 1 are one duplicate group
    idx, sims = leave_group_out_nearest(x[[0, 3]], x, np.array([0, 3]), comps)
    assert idx.tolist() == [2, 2] and sims[0] < 0.999


def test_memorised_copy_is_flagged_and_unseen_sample_is_not():
    rng, draw, training, ref, held = _world()
    features = {"a": training, "b": np.abs(training) ** 1.5}  # two correlated "layers"
    cal = calibrate({name: _held_nearest(f, held) for name, f in features.items()}, fpr=0.01)
    unseen = draw(5)
    generated = np.concatenate([training[ref[:2]], training[held[:1]] + 1e-3, unseen])
    gen_feats = {"a": generated, "b": np.abs(generated) ** 1.5}
    verdicts = judge(cal, {name: _nearest(gen_feats[name], f) for name, f in features.items()})
    assert verdicts.is_copy.tolist() == [True, True, True, False, False, False, False, False]
    assert (verdicts.copy_score[:3] > 0.99).all() and (verdicts.copy_score[3:] < 0.99).all()
    assert (verdicts.heldout_share["a"][:3] == 0).all()
    for layer, t in cal.thresholds.items():
        assert np.isfinite(t) and t == pytest.approx(cal.summary()["thresholds"][layer])


def test_false_positive_rate_holds_for_fresh_samples_and_rule_equals_thresholds():
    rng, draw, training, ref, held = _world(seed=1, n=6000)
    fpr = 0.05
    features = {"a": training, "b": training[:, :16]}
    cal = calibrate({name: _held_nearest(f, held) for name, f in features.items()}, fpr=fpr)
    fresh = draw(3000)
    sims = {"a": _nearest(fresh, training), "b": _nearest(fresh[:, :16], training[:, :16])}
    verdicts = judge(cal, sims)
    assert 0.02 < verdicts.is_copy.mean() < 0.08  # nominal 0.05
    any_layer = np.any([sims[layer] > cal.thresholds[layer] for layer in cal.layers], axis=0)
    assert not (any_layer & ~verdicts.is_copy).any()  # over a line: always a copy
    assert (verdicts.is_copy & ~any_layer).sum() <= 0.1 * verdicts.is_copy.sum()  # under every line: rare
    assert np.array_equal(verdicts.is_copy, verdicts.copy_p_value <= fpr)
    # one layer alone at the same rate flags about as many; min-p does not double the rate
    single = judge(calibrate({"a": _held_nearest(training, held)}, fpr=fpr), {"a": sims["a"]})
    assert abs(single.is_copy.mean() - verdicts.is_copy.mean()) < 0.03


def test_too_few_heldout_images_flag_nothing_and_say_so():
    held = {"a": np.linspace(0.5, 0.9, 50)}
    cal = calibrate(held, fpr=0.01)
    assert cal.thresholds["a"] == np.inf and "too few held-out images" in cal.warnings[0]
    assert not judge(cal, {"a": np.array([1.0])}).is_copy.any()
    rough = calibrate({"a": np.linspace(0.5, 0.9, 299)}, fpr=0.01)
    assert "rough" in rough.warnings[0]


def test_bad_calibration_input():
    with pytest.raises(NoveltyError, match="false positive rate"):
        calibrate({"a": np.ones(10)}, fpr=0)
    with pytest.raises(NoveltyError, match="same non-zero number"):
        calibrate({"a": np.ones(10), "b": np.ones(9)})
    cal = calibrate({"a": np.linspace(0, 1, 200)}, fpr=0.05)
    with pytest.raises(NoveltyError, match="missing for layers"):
        judge(cal, {"b": np.ones(3)})


def test_leave_group_out_can_skip_more_pairs():
    x = np.array([[1.0, 0.0], [0.99, 0.05], [0.9, 0.3], [0.0, 1.0]])
    comps = np.arange(4)
    idx, _ = leave_group_out_nearest(x[[0]], x, np.array([0]), comps)
    assert idx.tolist() == [1]
    idx, _ = leave_group_out_nearest(x[[0]], x, np.array([0]), comps, exclude=lambda rows, cols: cols == 1)
    assert idx.tolist() == [2]


def test_a_sample_beyond_every_held_out_image_in_one_layer_gets_the_smallest_p_value():
    """Ties at count 0 with the top held-out image of each other layer are broken by the robust z."""
    rng = np.random.default_rng(4)
    held = {name: rng.uniform(0.2, 0.8, 99) for name in ("a", "b", "c")}
    cal = calibrate(held, fpr=0.01)
    sample = {"a": np.array([0.5]), "b": np.array([0.5]), "c": np.array([0.95])}
    verdict = judge(cal, sample)
    assert verdict.copy_p_value[0] == pytest.approx(1 / 100) and verdict.is_copy[0]
    # just above the top of one layer, but less far out than the top held-out images of the others: not alone
    top = {name: float(h.max()) for name, h in held.items()}
    close = judge(cal, {"a": np.array([0.5]), "b": np.array([0.5]), "c": np.array([top["c"] + 1e-9])})
    z_top = {name: (top[name] - np.median(h)) / np.median(np.abs(h - np.median(h))) for name, h in held.items()}
    expected = 1 + sum(z_top[name] >= z_top["c"] for name in ("a", "b"))
    assert close.copy_p_value[0] == pytest.approx(expected / 100)
