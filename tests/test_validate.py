"""Validation harness: copy injections, flag rates, the report, the CLI (random weights, tiny data)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from novelty.cli import main
from novelty.errors import NoveltyError
from novelty.judge.validate import COMBINED, KINDS, UNSEEN, evaluate, inject, validate


def _image(seed: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_injections_do_what_they_say():
    rng = np.random.default_rng(0)
    img = _image(1)
    assert np.array_equal(inject(img, "exact", rng), img)
    assert np.array_equal(inject(img, "flip", rng), img[:, ::-1])
    for kind in ("crop95", "crop80", "jitter", "jpeg"):
        made = inject(img, kind, rng)
        assert made.shape == img.shape and made.dtype == np.uint8
        assert not np.array_equal(made, img)
    # a crop keeps a window of the image: its centre matches a rescaled part, not the whole
    smooth = np.repeat(np.repeat(_image(2, 8), 4, axis=0), 4, axis=1)
    assert np.abs(inject(smooth, "crop80", rng).astype(int) - smooth).mean() > \
        np.abs(inject(smooth, "crop95", rng).astype(int) - smooth).mean() > 0
    with pytest.raises(NoveltyError, match="unknown kind"):
        inject(img, "rotate", rng)


def test_evaluate_flags_copies_and_spares_unseen_samples():
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((10, 16)) * 2

    def draw(n):
        return centres[rng.integers(0, 10, n)] + rng.standard_normal((n, 16))

    training = draw(2000)
    layers = {"a": training, "b": np.abs(training)}
    picked = rng.choice(2000, 50, replace=False)
    unseen = draw(400)
    probes = {"exact": {"a": training[picked], "b": np.abs(training[picked])},
              UNSEEN: {"a": unseen, "b": np.abs(unseen)}}
    rates, summary = evaluate(layers, probes, fpr=0.01, seed=0)
    assert set(rates["exact"]) == {COMBINED, "a", "b"}
    assert rates["exact"][COMBINED].rate == 1.0 and rates["exact"]["a"].rate == 1.0
    assert rates[UNSEEN][COMBINED].rate <= 0.04
    low, high = rates[UNSEEN][COMBINED].interval
    assert low <= rates[UNSEEN][COMBINED].rate <= high
    assert summary["n_heldout"] == 200


class PixelExtractor:
    """A stand-in for novelty.embed.features.Extractor: features are the pixels at two resolutions."""

    layers = ("coarse", "fine")
    input_size = 32
    preprocess = "caffe"

    class weights:  # noqa: N801 - mimics the attribute of the real extractor
        sha256 = "pixels"

        @staticmethod
        def to_json():
            return {"requested": "pixels", "source": "test", "sha256": "pixels"}

    def params(self, layer):
        return {"layer": layer, "weights_sha256": "pixels"}

    def feature_dim(self, layer, image_size=None):
        return 8 * 8 * 3 if layer == "coarse" else 32 * 32 * 3

    def embed(self, images, batch_size=32, progress=True, desc=""):
        x = np.asarray(images, np.float32) / 255.0
        coarse = x.reshape(len(x), 8, 4, 8, 4, 3).mean(axis=(2, 4))
        return {"coarse": coarse.reshape(len(x), -1), "fine": x.reshape(len(x), -1)}

    def embed_batches(self, images, batch_size=32, progress=True, desc=""):
        for start in range(0, len(images), batch_size):
            yield self.embed(images[start:start + batch_size])


def _folder(path, n):
    path.mkdir()
    for i in range(n):
        Image.fromarray(_image(100 + i)).save(path / f"{i:03d}.png")
    return path


def test_validate_writes_a_report_with_every_kind(tmp_path):
    train = _folder(tmp_path / "train", 240)
    report = validate(train, tmp_path / "out", copies=12, fpr=0.05, extractor=PixelExtractor(), progress=False)
    assert list(report.rates) == [*KINDS, UNSEEN]
    assert report.rates["exact"][COMBINED].rate == 1.0 and report.rates["flip"][COMBINED].n == 12
    assert report.counts["unseen"] == 24 and report.counts["training"] == 216
    saved = json.loads((tmp_path / "out" / "validation.json").read_text())
    assert saved["rates"]["exact"]["combined"]["flagged"] == 12
    assert saved["settings"]["seed"] == 0 and saved["settings"]["false_positive_rate"] == 0.05
    assert set(saved["goals"]) == {"flip", "crop95", "crop90", "crop80", "jitter", UNSEEN}
    table = report.table()
    assert "unseen real (FPR)" in table and "flip copies" in table
    assert (tmp_path / "out" / "validation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(NoveltyError, match="inside the image folder"):
        validate(train, train / "out", extractor=PixelExtractor(), progress=False)


def test_validate_with_faiss_records_recall_and_flags_as_exact(tmp_path, monkeypatch):
    """``index="faiss"`` (an HNSW graph here: the size rule's threshold lowered) judges through FAISS,
    records its recall in the report, and flags what exact search flags."""
    pytest.importorskip("faiss")
    from novelty import defaults

    train = _folder(tmp_path / "train", 240)
    exact = validate(train, tmp_path / "exact", copies=12, fpr=0.05, extractor=PixelExtractor(), progress=False,
                     plot=False)
    monkeypatch.setattr(defaults, "FAISS_ANN_MIN_TRAINING", 32)
    faiss = validate(train, tmp_path / "faiss", copies=12, fpr=0.05, extractor=PixelExtractor(), progress=False,
                     plot=False, index="faiss")
    assert exact.search_index["backend"] == "exact" and exact.search_index["recall_at_k"] is None
    assert faiss.settings["index"] == "faiss" and faiss.search_index["recall_at_k"] >= 0.95
    assert {s["kind"] for s in faiss.search_index["searches"]} == {"hnsw_flat"}
    for row, cells in exact.rates.items():
        assert abs(cells[COMBINED].rate - faiss.rates[row][COMBINED].rate) <= 0.02, row
    saved = json.loads((tmp_path / "faiss" / "validation.json").read_text())
    assert saved["search_index"]["recall_at_k"] == faiss.search_index["recall_at_k"]


@pytest.mark.slow
def test_cli_validate_with_random_weights(tmp_path):
    """The real extractor end to end, random weights (no download), 60 images of 32 px."""
    train = _folder(tmp_path / "train", 60)
    result = CliRunner().invoke(main, ["validate", "--train", str(train), "--out", str(tmp_path / "out"),
                                       "--weights", "none", "--input-size", "32", "--copies", "3",
                                       "--fpr", "0.2", "--layers", "block1_pool,block5_pool"])
    assert result.exit_code == 0, result.output
    assert "exact copies" in result.output and "validation.json" in result.output
    assert "validation.png" in result.output and (tmp_path / "out" / "validation.png").is_file()
    saved = json.loads((tmp_path / "out" / "validation.json").read_text())
    assert saved["rates"]["exact"]["combined"]["flagged"] == 3
    assert saved["settings"]["weights"]["requested"] == "none"


def test_cli_validate_rejects_a_missing_folder(tmp_path):
    result = CliRunner().invoke(main, ["validate", "--train", str(tmp_path / "nope"), "--out", str(tmp_path / "o"),
                                       "--weights", "none"])
    assert result.exit_code == 1 and "Error:" in result.output and "Traceback" not in result.output


def test_mirrored_extractor_flips_and_keys_its_cache_apart():
    from novelty.embed.features import MirroredExtractor

    base = PixelExtractor()
    mirror = MirroredExtractor(base)
    images = np.random.default_rng(3).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    got = mirror.embed(images)
    want = base.embed(images[:, :, ::-1])
    for layer in base.layers:
        np.testing.assert_array_equal(got[layer], want[layer])
        assert not np.array_equal(got[layer], base.embed(images)[layer])
        assert mirror.params(layer) != base.params(layer) and mirror.params(layer)["view"] == "mirror"
