"""Curation maths with planted answers: duplicates, outliers, hubs, pixel flags."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from novelty import defaults
from novelty.curate.curation import (
    aspect_ratio_score,
    combined_score,
    curation_views,
    duplicate_components,
    duplicate_groups,
    duplicate_rule,
    group_numbers,
    hotelling_z,
    k_occurrence,
    outlier_depth,
    outlier_distance,
    outlier_scales,
    outlier_scores,
    outlier_stage,
    pixel_scores,
    quality_flags,
    robust_z,
    self_neighbours,
    thumbnail,
)
from novelty.errors import NoveltyError
from novelty.search.neighbors import normalize


def _collection(seed: int = 0, n: int = 300, d: int = 24):
    """Clustered non-negative features with 12 planted near-duplicate pairs and one outlier (last row)."""
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.standard_normal((10, d))) * 3
    x = centres[rng.integers(0, 10, n)] + np.abs(rng.standard_normal((n, d)))
    twins = np.arange(12) * 7
    x[twins + 1] = x[twins] * 1.001 + 1e-4 * rng.random((12, d))  # near-exact copies
    x[-1] = 0.0
    x[-1, :2] = 50.0  # points away from every cluster
    layer_b = np.sqrt(x) @ np.abs(rng.standard_normal((d, 16)))
    return {"a": normalize(x), "b": normalize(layer_b)}, twins  # rows L2-normalised, as curation takes them


def test_self_neighbours_remove_self_even_when_duplicates_tie():
    x = np.array([[1.0, 0], [1.0, 0], [0, 1.0], [0.7, 0.7]])
    idx, sims = self_neighbours(x, k=2)
    assert idx.shape == (4, 2) and not (idx == np.arange(4)[:, None]).any()
    assert idx[0, 0] == 1 and idx[1, 0] == 0 and sims[0, 0] == pytest.approx(1.0)


def test_self_neighbours_drop_the_row_in_place_block_by_block(monkeypatch):
    """Blocks of a few rows give the lists of one whole block: each top-(k + 1) list without the row
    itself (the last entry dropped where the row is missing, as with exact ties), in the lists' own memory."""
    from novelty import defaults
    from novelty.search.neighbors import top_k

    rng = np.random.default_rng(3)
    x = normalize(np.vstack([rng.standard_normal((60, 8)), np.repeat(rng.standard_normal((1, 8)), 5, axis=0)]))
    full_idx, full_sims = top_k(x, x, 8)
    monkeypatch.setattr(defaults, "TOPK_BLOCK_BYTES", 16 * 8 * 7)  # blocks of 7 rows
    idx, sims = self_neighbours(x, k=7)
    assert idx.base is not None and sims.base is not None  # views of the searched lists, not copies
    for row in range(len(x)):
        keep = full_idx[row] != row  # all True where the row is missing: then [:7] drops the last entry
        np.testing.assert_array_equal(idx[row], full_idx[row][keep][:7])
        np.testing.assert_array_equal(sims[row], full_sims[row][keep][:7])
    assert not (idx == np.arange(len(x))[:, None]).any()


def test_planted_duplicates_are_grouped_and_nothing_else():
    feats, twins = _collection()
    nb = {layer: self_neighbours(f, 10) for layer, f in feats.items()}
    rule = duplicate_rule({layer: nb[layer][1][:, 0] for layer in feats})
    assert all(0.9 < t < 1.0 for t in rule.thresholds().values())
    numbers = group_numbers(duplicate_components(feats, nb, rule))
    grouped = set(np.flatnonzero(numbers).tolist())
    assert grouped == set(twins.tolist()) | set((twins + 1).tolist())
    assert all(numbers[t] == numbers[t + 1] for t in twins) and numbers.max() == 12
    assert numbers[twins[0]] == 1  # numbered by first member


def test_a_pair_close_in_one_layer_only_is_not_a_duplicate():
    feats, twins = _collection()
    feats["b"] = feats["b"].copy()
    feats["b"][twins[0] + 1] = feats["b"][5]  # the twin looks like something else in layer b
    nb = {layer: self_neighbours(f, 10) for layer, f in feats.items()}
    rule = duplicate_rule({layer: nb[layer][1][:, 0] for layer in feats})
    numbers = group_numbers(duplicate_components(feats, nb, rule))
    assert numbers[twins[0]] == 0 and numbers[twins[1]] > 0


def test_planted_outlier_ranks_first_even_when_saved_twice():
    feats, _ = _collection()
    for layer in feats:  # the outlier has an exact twin: its own group must not hide it
        feats[layer] = np.vstack([feats[layer], feats[layer][-1:]])
    n = len(feats["a"])
    nb = {layer: self_neighbours(f, 10) for layer, f in feats.items()}
    comps = duplicate_components(feats, nb, duplicate_rule({layer: nb[layer][1][:, 0] for layer in feats}))
    assert comps[n - 1] == comps[n - 2]
    scores = outlier_scores({layer: outlier_distance(*nb[layer], comps) for layer in feats})
    assert set(np.argsort(-scores)[:2].tolist()) == {n - 2, n - 1}
    assert (scores[-2:] > defaults.OUTLIER_Z).all()
    assert (scores > defaults.OUTLIER_Z).sum() <= 2 + 0.02 * n
    # without excluding the group, the twin's distance of 0 would hide it
    naive = outlier_distance(nb["a"][0], nb["a"][1], np.arange(n), k=1)
    assert naive[-1] == pytest.approx(0.0, abs=1e-6)


def test_robust_z():
    z = robust_z(np.array([1.0, 2, 3, 4, 100]))
    assert z[2] == 0 and z[-1] > 30
    flat = robust_z(np.array([5.0, 5, 5, 5, 9]))  # MAD 0: mean absolute deviation takes over
    assert flat[-1] > 0 and np.isfinite(flat).all()
    assert (robust_z(np.ones(4)) == 0).all()


def test_k_occurrence_finds_the_hub():
    lists = np.array([[0, 1], [0, 2], [0, 3], [0, 1]])
    np.testing.assert_array_equal(k_occurrence(lists, 5), [4, 2, 1, 1, 0])


def test_pixel_scores_flag_what_they_say():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    white = np.full((32, 32, 3), 250, np.uint8)
    dark = (noise // 6).astype(np.uint8)
    two_colours = np.zeros((32, 32, 3), np.uint8)
    two_colours[:, 16:] = 200
    flags = {name: quality_flags(pixel_scores(img).__dict__)
             for name, img in [("noise", noise), ("white", white), ("dark", dark), ("two", two_colours)]}
    assert flags["noise"] == {"near_blank": False, "very_dark": False, "low_information": False}
    assert flags["white"]["near_blank"] and flags["white"]["low_information"] and not flags["white"]["very_dark"]
    assert flags["dark"]["very_dark"] and not flags["dark"]["near_blank"]
    assert flags["two"]["low_information"] and not flags["two"]["near_blank"]
    assert aspect_ratio_score(100, 100) == 0 and aspect_ratio_score(300, 100) == pytest.approx(2 / 3)
    assert quality_flags({"odd_aspect_ratio": aspect_ratio_score(200, 100)}) == {"odd_aspect_ratio": True}
    with pytest.raises(NoveltyError):
        pixel_scores(np.zeros((4, 4)))


def test_thumbnail_reads_jpeg_and_png_small(tmp_path):
    rng = np.random.default_rng(1)
    big = rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)
    Image.fromarray(big).save(tmp_path / "a.jpg", quality=90)
    Image.fromarray(big).convert("RGBA").save(tmp_path / "b.png")
    (tmp_path / "c.jpg").write_bytes(b"not an image")
    for name in ("a.jpg", "b.png"):
        small, original = thumbnail(tmp_path / name)
        assert original == (500, 300) and max(small.shape[:2]) <= 64 and small.shape[2] == 3
    from novelty.images.decode import ImageError

    with pytest.raises(ImageError):
        thumbnail(tmp_path / "c.jpg")


def test_duplicate_rule_averages_the_layers():
    rng = np.random.default_rng(4)
    nearest = {"a": 1 - np.exp(rng.normal(-2, 0.5, 500)), "b": 1 - np.exp(rng.normal(-1, 0.5, 500))}
    rule = duplicate_rule(nearest, z=3.5)
    t = rule.thresholds()
    assert t["a"] == pytest.approx(1 - np.exp(-2 - 3.5 * 0.5), abs=0.01)
    just_under_a = 1 - (1 - t["a"]) * 1.2  # a little less close than the single-layer line at a
    very_close_b = 1 - (1 - t["b"]) * 0.05
    pairs = {"a": np.array([just_under_a, 1.0, just_under_a]), "b": np.array([very_close_b, 0.2, 0.2])}
    # slightly under at a but far past at b: a duplicate; identical at a but unrelated at b: not one
    assert rule.is_duplicate(pairs).tolist() == [True, False, False]


def _blob(seed: int, n: int, d: int = 16) -> np.ndarray:
    """A Gaussian blob away from the origin (so cosine distances vary), ``(n, d)``."""
    return np.random.default_rng(seed).normal(size=(n, d)) + 6.0


def _two_layers(x: np.ndarray, seed: int = 1) -> dict[str, np.ndarray]:
    """Two "layers" of one set: the features and a non-negative random projection of them."""
    proj = np.random.default_rng(seed).normal(size=(x.shape[1], 32))
    return {"a": normalize(x.astype(np.float32)), "b": normalize(np.abs(x @ proj).astype(np.float32))}


def test_lone_outlier_and_small_tight_far_cluster_both_rank_at_the_top():
    rng = np.random.default_rng(3)
    bulk = _blob(0, 1000)
    lone = 6.0 + 6 * rng.normal(size=(1, 16))  # one image far from everything
    centre = 6.0 + rng.normal(size=16) * 6
    batch = centre + 0.05 * rng.normal(size=(12, 16))  # 12 alike images: each other's nearest neighbours
    stage = outlier_stage(_two_layers(np.vstack([bulk, lone, batch])))
    planted = set(range(1000, 1013))
    top = set(np.argsort(-stage.score)[:13].tolist())
    assert top == planted
    assert stage.is_outlier[1000:].all()
    # the old single-scale score (k = 5) cannot see the batch: its members are each other's neighbours
    nb = {layer: self_neighbours(f, 10) for layer, f in _two_layers(np.vstack([bulk, lone, batch])).items()}
    single = outlier_scores({layer: outlier_distance(*nb[layer], np.arange(1013), k=5) for layer in nb})
    assert not set(np.argsort(-single)[:13].tolist()) >= set(range(1001, 1013))


@pytest.mark.parametrize("seed", [0, 1])
def test_a_plain_gaussian_blob_flags_about_the_stated_rate(seed):
    stage = outlier_stage(_two_layers(_blob(seed, 2000), seed + 10))
    assert stage.scales == (5, 10, 20, 40, 80, 160)  # up to 10% of the set
    # a blob's log distances (and log T^2) have long upper tails: 3.5 to 4.75% over seeds 0-3, the masks 0.9%
    assert 0.005 <= stage.is_outlier.mean() <= 0.05, stage.is_outlier.mean()
    assert "above 2.5" in stage.rule() and "up to about 5.5% of a featureless Gaussian blob" in stage.rule()


def test_outlier_scales_follow_the_set_size():
    assert outlier_scales(2989) == (5, 10, 20, 40, 80, 160)
    assert outlier_scales(1000) == (5, 10, 20, 40, 80)
    assert outlier_scales(20) == (5,)
    assert outlier_scales(4) == (3,)
    assert outlier_depth(2989) == 320 and outlier_depth(20) == 10 and outlier_depth(4) == 3


def test_hotelling_view_finds_a_batch_at_the_edge_of_the_main_axes():
    rng = np.random.default_rng(4)
    scales = np.r_[np.full(4, 3.0), np.full(28, 0.3)]  # four main directions, many small ones
    bulk = rng.normal(size=(1500, 32)) * scales
    batch = rng.normal(size=(15, 32)) * scales
    batch[:, :4] = 3.5 * 3.0 * np.sign(rng.normal(size=4))  # every main coordinate at 3.5 sd: inside the
    # bulk's range on each axis, yet far out jointly (about 49 of T^2 on the main four, typically 4)
    z = hotelling_z(normalize(np.hstack([np.full((1515, 1), 20.0), np.vstack([bulk, batch])]).astype(np.float32)))
    assert set(np.argsort(-z)[:15].tolist()) == set(range(1500, 1515))
    assert z[1500:].min() > 2.5 > np.percentile(z[:1500], 97)


def test_the_views_combine_as_a_maximum_of_averages():
    z_knn, z_t2 = np.array([3.0, 2.0, 0.0, -1.0]), np.array([0.0, 4.0, 4.0, -3.0])
    assert combined_score(z_knn, z_t2).tolist() == [3.0, 3.0, 2.0, -1.0]  # T^2 alone gives half its z
    assert hotelling_z(np.eye(3, 8, dtype=np.float32)).shape == (3,)  # too few images for components: no crash


def _wide(feats: dict[str, np.ndarray], width: int = 1024, seed: int = 5) -> dict[str, np.ndarray]:
    """Layer "a" made wide and non-negative (ReLU of a random expansion), as block1_pool is; "b" kept."""
    expand = np.random.default_rng(seed).normal(size=(feats["a"].shape[1], width))
    return {"a": normalize(np.maximum(feats["a"] @ expand, 0.0).astype(np.float32)), "b": feats["b"]}


def test_a_wide_layer_is_searched_on_its_sketch_and_the_groups_stay_exact():
    base, twins = _collection()
    feats = _wide(base)
    assert curation_views(feats, 256) == {"a": "sketch:256", "b": "exact"}
    assert curation_views(feats, 0) == curation_views(feats, 1024) == {"a": "exact", "b": "exact"}
    deep, rule, comps = duplicate_groups(feats, 10, sketch=256)
    exact_deep, exact_rule, exact_comps = duplicate_groups(feats, 10, sketch=0)
    assert rule.views == {"a": "sketch:256", "b": "exact"} and exact_rule.views == {"a": "exact", "b": "exact"}
    assert not np.allclose(deep["a"][1], exact_deep["a"][1])  # the lists are the sketch's, approximate
    np.testing.assert_array_equal(deep["b"][0], exact_deep["b"][0])
    numbers = group_numbers(comps)
    np.testing.assert_array_equal(numbers, group_numbers(exact_comps))
    assert set(np.flatnonzero(numbers).tolist()) == set(twins.tolist()) | set((twins + 1).tolist())
    # the rule's nearest distances are exact cosines (to the nearest image the sketch found)
    assert rule.thresholds()["a"] == pytest.approx(exact_rule.thresholds()["a"], abs=2e-3)


def test_the_slack_finds_a_pair_an_approximate_list_put_past_the_threshold_and_exact_cosines_decide():
    base, twins = _collection()
    one = {"a": base["a"]}
    idx, sims = self_neighbours(one["a"], 10)
    rule = duplicate_rule({"a": sims[:, 0]})
    exact = group_numbers(duplicate_components(one, {"a": (idx, sims)}, rule))
    i, j = int(twins[0]), int(twins[0]) + 1
    blurred = sims.copy()  # the twins' similarity as a sketch's error could give it: past the threshold
    blurred[i, idx[i] == j] = blurred[j, idx[j] == i] = 1.0 - 1.5 * (1.0 - rule.thresholds()["a"])
    lost = group_numbers(duplicate_components(one, {"a": (idx, blurred)}, rule))
    assert lost[i] == lost[j] == 0
    found = group_numbers(duplicate_components(one, {"a": (idx, blurred)}, rule, slack={"a": 2.0}))
    np.testing.assert_array_equal(found, exact)
    assert found[i] == found[j] > 0
    # more candidates, not more duplicates: every extra candidate is judged on its exact cosine
    np.testing.assert_array_equal(group_numbers(duplicate_components(one, {"a": (idx, sims)}, rule, slack={"a": 3.0})),
                                  exact)


def test_outliers_on_a_sketched_wide_layer_still_rank_the_planted_ones_first():
    rng = np.random.default_rng(3)
    lone = 6.0 + 6 * rng.normal(size=(1, 16))
    batch = 6.0 + rng.normal(size=16) * 6 + 0.05 * rng.normal(size=(12, 16))
    feats = _wide(_two_layers(np.vstack([_blob(0, 1000), lone, batch])))
    stage = outlier_stage(feats, sketch=256)
    assert set(np.argsort(-stage.score)[:13].tolist()) == set(range(1000, 1013))
    exact = outlier_stage(feats, sketch=0)
    assert np.corrcoef(stage.score, exact.score)[0, 1] > 0.95
