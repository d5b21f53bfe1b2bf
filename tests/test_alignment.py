"""Aligned pixel match: crops, rescales and mirror images of one picture line up; other pictures do not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from novelty.errors import NoveltyError
from novelty.judge.alignment import NO_MATCH, TrainingPixels, best_match, grey, match, views


def texture(seed: int, size: int = 64) -> np.ndarray:
    """A seeded picture with detail at several scales (smoothed noise), RGB uint8."""
    rng = np.random.default_rng(seed)
    x = sum(gaussian_filter(rng.standard_normal((size, size, 3)), (s, s, 0)) * s for s in (1.0, 3.0, 8.0))
    x = (x - x.min()) / (x.max() - x.min())
    return (x * 255).astype(np.uint8)


def crop(image: np.ndarray, side: float, left: int, top: int) -> np.ndarray:
    size = image.shape[0]
    m = round(size * side)
    return np.asarray(Image.fromarray(image).crop((left, top, left + m, top + m))
                      .resize((size, size), Image.Resampling.LANCZOS))


def test_a_crop_lines_up_with_its_source_and_says_where():
    source, other = texture(1), texture(2)
    copy = crop(source, 0.8, 9, 4)
    v = views(np.stack([copy, source, other]))
    found = match(v, 0, v, 1)
    assert found.score > 0.9
    assert found.scale == 0.8 and found.inside == "query"
    assert abs(found.offset[0] - 9) <= 1 and abs(found.offset[1] - 4) <= 1
    assert match(v, 0, v, 2).score < 0.4  # another picture
    assert match(v, 1, v, 1).score == pytest.approx(1.0, abs=1e-4)


def test_the_candidate_can_be_the_crop():
    source = texture(3)
    wide = crop(source, 0.85, 5, 5)  # the training image is the crop, the query shows more around it
    v = views(np.stack([source, wide]))
    found = match(v, 0, v, 1)
    assert found.score > 0.9 and found.inside == "candidate" and found.scale == 0.85


def test_unrelated_textures_stay_low_and_flat_images_match_nothing():
    v = views(np.stack([texture(s) for s in range(10, 20)]))
    scores = [match(v, i, v, j).score for i in range(10) for j in range(10) if i != j]
    assert max(scores) < 0.5
    blank = views(np.full((2, 64, 64, 3), 255, np.uint8))
    assert match(blank, 0, blank, 1) == NO_MATCH  # OpenCV alone would call two flat images identical


def test_best_match_finds_a_mirrored_crop_among_candidates():
    training = np.stack([texture(s) for s in range(30, 40)])
    query = np.stack([crop(training[4], 0.9, 3, 2)[:, ::-1], texture(99)])
    reads = []

    def images(indices):
        reads.extend(indices.tolist())
        return training[indices]

    train_pixels = TrainingPixels(images)
    candidates = np.array([[0, 1, 2], [0, 1, 2]])
    mirrored_candidates = np.array([[4, 5, -1], [4, 5, -1]])
    idx, score, mirrored, matches = best_match(grey(query), candidates, train_pixels, mirrored_candidates, chunk=1)
    assert idx[0] == 4 and mirrored[0] and score[0] > 0.9 and matches[0].scale == 0.9
    assert score[1] < 0.5
    idx_plain, score_plain, mirrored_plain, _ = best_match(grey(query), candidates, train_pixels)
    assert score_plain[0] < 0.5 and not mirrored_plain.any()  # without the mirror search it is missed
    assert sorted(reads) == [0, 1, 2, 4, 5]  # each training image read once, however often asked for


def test_views_reject_other_shapes():
    with pytest.raises(NoveltyError, match="square RGB"):
        grey(np.zeros((2, 32, 48, 3), np.uint8))
    with pytest.raises(NoveltyError, match="grey images"):
        views(np.zeros((2, 32, 32), np.uint8))
    small = grey(np.zeros((1, 32, 32, 3), np.uint8))  # other sizes are scaled to ALIGN_SIZE
    assert small.shape == (1, 64, 64) and small.dtype == np.float16
    assert views(small).scales[0].shape == (1, 64, 64) and views(small).scales[-1].shape == (1, 48, 48)
