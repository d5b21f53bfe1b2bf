"""Modes: the number found by BIC, shares compared with exact tests, missed and over-produced modes."""

from __future__ import annotations

import numpy as np
import pytest

from novelty.errors import NoveltyError
from novelty.judge import modes


def _blobs(sizes, dim=64, seed=0, spread=0.05):
    """Rows around len(sizes) well-separated random directions, and their blob number."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    rows = centres[labels] + spread * rng.normal(size=(len(labels), dim)) * np.linalg.norm(centres[labels], axis=1,
                                                                                           keepdims=True) / dim ** 0.5
    return rows.astype(np.float32), labels


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_bic_finds_the_number_of_blobs_and_their_members():
    rows, truth = _blobs([120, 100, 90, 80, 60])
    model = modes.fit_modes(rows, seed=0)
    assert model.k == 5 and min(model.bic, key=model.bic.get) == 5
    found, _ = model.assign(rows)
    assert _same_partition(found, truth)


def test_a_generator_of_two_modes_misses_the_others_and_over_produces_its_two():
    rows, truth = _blobs([120, 100, 90, 80, 60])
    generated, g_truth = _blobs([150, 150, 0, 0, 0], seed=0)  # same centres (same seed), two blobs only
    ids = [f"t{i}" for i in range(len(rows))]
    report = modes.find_modes(rows, generated + 0.0, ids, [f"g{i}" for i in range(len(generated))], seed=0)
    status = {}
    for row in report.table:
        blob = np.bincount(truth[report.training_modes == row["mode"] - 1]).argmax()
        status[int(blob)] = row["status"]
        assert len(row["training_examples"]) == modes.REPRESENTATIVES
    assert status == {0: "over-produced", 1: "over-produced", 2: "missed", 3: "missed", 4: "missed"}
    assert report.effective["generated"] == pytest.approx(2.0, abs=0.01)
    assert report.summary()["counts"] == {"reproduced": 0, "missed": 3, "under-produced": 0, "over-produced": 2}
    # none of 300 samples in a mode of this share would happen by chance less than alpha / k
    share = report.summary()["smallest_missable_share"]
    assert (1 - share) ** 300 == pytest.approx(modes.MODES_ALPHA / report.k, rel=1e-3)


def test_held_out_images_of_the_same_collection_are_reproduced():
    rows, _ = _blobs([300, 250, 200, 150, 100], seed=3)
    rng = np.random.default_rng(0)
    held = rng.permutation(len(rows))
    model = modes.fit_modes(rows[held[200:]], seed=0)
    reference, _ = model.assign(rows[held[200:]])
    heldout, _ = model.assign(rows[held[:200]])
    table = modes.compare_shares(reference, heldout, model.k)
    assert [r["status"] for r in table] == ["reproduced"] * model.k
    for r in table:  # the interval holds the generated share
        assert r["generated_ci"][0] <= r["generated_share"] <= r["generated_ci"][1]


def test_few_samples_cannot_show_a_mode_missed():
    # 30 samples all in one of five equal modes: each other mode had a 0.8**30 = 0.12% chance of none
    # (0.6% after Holm over 5 modes): missed. With 20 samples, 1.2% each, 5.8% after Holm: not shown.
    training = np.repeat(np.arange(5), 100)
    table = modes.compare_shares(training, np.zeros(30, dtype=int), 5)
    assert [r["status"] for r in table] == ["over-produced"] + ["missed"] * 4
    table = modes.compare_shares(training, np.zeros(20, dtype=int), 5)
    assert [r["status"] for r in table] == ["over-produced"] + ["reproduced"] * 4


def test_holm_matches_the_step_down_definition():
    adjusted = modes.holm(np.array([0.01, 0.04, 0.03, 0.2]))
    assert adjusted == pytest.approx([0.04, 0.09, 0.09, 0.2])


def test_effective_modes_and_the_candidate_grid():
    assert modes.effective_modes(np.array([0, 1, 2, 3]), 4) == pytest.approx(4.0)
    assert modes.effective_modes(np.array([2, 2, 2]), 4) == pytest.approx(1.0)
    assert max(modes.candidate_counts(400)) == 10 and max(modes.candidate_counts(100_000)) == max(modes.MODES_GRID)
    with pytest.raises(NoveltyError, match="at least 80 training images"):
        modes.fit_modes(np.ones((10, 8), dtype=np.float32))
