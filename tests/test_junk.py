"""The junk-planting harness: seeded kinds of junk, precision at N, and the whole run on a tiny folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from novelty.curate import junk
from novelty.curate.curation import outlier_stage
from novelty.embed.features import Extractor
from novelty.errors import NoveltyError
from novelty.search.neighbors import normalize


@pytest.mark.parametrize("kind", list(junk.KINDS))
def test_each_kind_is_seeded_and_varied(kind):
    a = junk.make_junk(kind, 3, 32, seed=5)
    assert a.shape == (3, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, junk.make_junk(kind, 3, 32, seed=5))
    assert not np.array_equal(a[0], a[1])  # a batch of alike images, not one image repeated


def test_unknown_kind_is_refused_by_name():
    with pytest.raises(NoveltyError, match="unknown kind of junk 'memes'; must be one of: catalogue, logo"):
        junk.make_junk("memes", 1, 32)


def test_precision_at_n():
    scores = np.array([0.9, 0.1, 0.8, 0.7, 0.2])
    assert junk.precision_at_n(scores, np.array([1, 0, 1, 0, 0], bool)) == 1.0
    assert junk.precision_at_n(scores, np.array([0, 1, 0, 0, 1], bool)) == 0.0
    assert junk.precision_at_n(scores, np.array([1, 1, 0, 0, 0], bool)) == 0.5


def _layers(x, seed=1):
    proj = np.random.default_rng(seed).normal(size=(x.shape[1], 24))
    return {"a": normalize(x.astype(np.float32)), "b": normalize(np.abs(x @ proj).astype(np.float32))}


def test_evaluate_finds_a_planted_batch_alone_and_mixed():
    rng = np.random.default_rng(0)
    genuine = rng.normal(size=(800, 16)) + 6.0
    batches = {name: 6.0 + 6 * rng.normal(size=16) + 0.05 * rng.normal(size=(10, 16)) for name in ("x", "y")}
    feats = _layers(np.vstack([genuine, *batches.values()]))
    split = {layer: (f[:800], {"x": f[800:810], "y": f[810:]}) for layer, f in feats.items()}
    results = junk.evaluate({layer: v[0] for layer, v in split.items()},
                            {name: {layer: v[1][name] for layer, v in split.items()} for name in batches},
                            {"none": [], "x": ["x"], "mixed": ["x", "y"]},
                            lambda f: (lambda s: (s.score, s.is_outlier))(outlier_stage(f)))
    assert results["x"].precision == {"x": 1.0} and results["x"].planted == {"x": 10}
    assert results["mixed"].precision == {"x": 1.0, "y": 1.0, junk.MIXED: 1.0}
    assert results["mixed"].junk_flagged == {"x": 10, "y": 10}
    assert results["none"].precision == {} and results["none"].genuine_flagged <= 0.055  # a blob: the stated rate


@pytest.mark.slow  # embeds 66 images with a VGG16 (16 s while other jobs ran)
def test_run_junk_on_a_tiny_folder(tmp_path):
    rng = np.random.default_rng(0)
    train = tmp_path / "train"
    train.mkdir()
    for i in range(60):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((32, 32), Image.Resampling.BICUBIC).save(train / f"{i:02d}.png")
    extractor = Extractor(weights="none", input_size=32)
    report = junk.run_junk(train, tmp_path / "out", share=0.05, kinds=("logo", "noise"), extractor=extractor,
                           progress=False)
    assert set(report.scenarios) == {"none", "logo", "noise", junk.MIXED}
    assert report.counts["per_kind"] == 3 and report.counts["genuine"] == 60
    assert report.scenarios[junk.MIXED].planted == {"logo": 3, "noise": 3}
    saved = json.loads((tmp_path / "out" / junk.REPORT_FILE).read_text())
    assert saved["scenarios"]["logo"]["planted"] == {"logo": 3}
    table = report.table()
    assert "P@N" in table and "noise" in table and "mixed" in table
    again = junk.run_junk(train, tmp_path / "out", share=0.05, kinds=("logo", "noise"), extractor=extractor,
                          progress=False)
    assert again.counts["embedded"] == 0  # features come from the cache
    with pytest.raises(NoveltyError, match="unknown kinds of junk"):
        junk.run_junk(train, tmp_path / "out", kinds=("memes",), progress=False)
