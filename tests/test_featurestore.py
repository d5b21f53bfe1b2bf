"""The feature store (novelty.embed.featurestore): content-hash cache, float16 storage, atomic commits.

A fake extractor (pure numpy, counting what it embeds) tests the cache logic without TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from novelty.embed.featurestore import FeatureStore, fits_float16
from novelty.errors import NoveltyError

PARAMS = {"weights_sha256": "abc", "preprocess": "caffe", "input_size": 32, "layer": "a", "block1_reduce": None}


class FakeExtractor:
    """Features = the image's pixel means per channel and quadrant, scaled: deterministic, no TF."""

    def __init__(self, layers=("a", "b"), preprocess="caffe", scale=1.0):
        self.layers = layers
        self.preprocess = preprocess
        self.scale = scale
        self.embedded = 0
        self.batches = 0

    def params(self, layer: str) -> dict:
        return {**PARAMS, "layer": layer, "preprocess": self.preprocess}

    def feature_dim(self, layer: str, image_size: int | None = None) -> int:
        return 12 if layer == "a" else 3

    def embed_batches(self, images, batch_size=32, progress=True, desc=""):
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size].astype(np.float32)
            self.embedded += len(batch)
            self.batches += 1
            h = batch.shape[1] // 2
            quads = [batch[:, :h, :h], batch[:, :h, h:], batch[:, h:, :h], batch[:, h:, h:]]
            a = np.concatenate([q.mean(axis=(1, 2)) for q in quads], axis=1) * self.scale
            yield {"a": a, "b": batch.mean(axis=(1, 2)) * self.scale}


def _images(n: int, seed: int = 0) -> tuple[list[str], list[str], np.ndarray]:
    images = np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return [f"img{i}.png" for i in range(n)], [f"sha{seed}-{i}" for i in range(n)], images


def _expected(images: np.ndarray) -> dict[str, np.ndarray]:
    return next(FakeExtractor().embed_batches(images, batch_size=len(images)))


def test_save_load_round_trip_in_float16_memory_mapped(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    features = np.random.default_rng(1).random((5, 7), dtype=np.float32) * 10
    store.save("training", "a", list("vwxyz"), features, PARAMS)
    ids, loaded = store.load("training", "a")
    assert ids == list("vwxyz")
    assert loaded.dtype == np.float16 and isinstance(loaded, np.memmap)
    np.testing.assert_allclose(loaded, features, rtol=1e-3)
    assert store.meta("training", "a")["params"] == PARAMS


def test_float32_store_keeps_exact_values(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, dtype="float32")
    features = np.random.default_rng(1).random((3, 4), dtype=np.float32)
    store.save("generated", "a", ["p", "q", "r"], features, PARAMS)
    np.testing.assert_array_equal(store.load("generated", "a")[1], features)


@pytest.mark.parametrize(("values", "fits"), [
    (np.array([[0.0, 1.0], [3.0, 0.5]]), True),
    (np.zeros((2, 3)), True),
    (np.array([[7e4, 1.0]]), False),  # overflows float16
    (np.array([[1e-6, 2e-6]]), False),  # underflows: the row's largest value is subnormal
    (np.array([[np.nan, 1.0]]), False),
])
def test_fits_float16(values: np.ndarray, fits: bool) -> None:
    assert fits_float16(values) is fits


def test_values_float16_cannot_hold_are_stored_as_float32(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    features = np.array([[1.0, 2.0], [1e5, 3.0], [1e-7, 4e-7]], np.float32)
    with store.writer("training", "a", ["x", "y", "z"], 2, PARAMS) as writer:
        writer.put(np.array([0]), features[:1])  # fits: starts as float16
        writer.put(np.array([1, 2]), features[1:])  # does not: the whole layer moves to float32
    ids, loaded = store.load("training", "a")
    assert loaded.dtype == np.float32 and store.meta("training", "a")["dtype"] == "float32"
    np.testing.assert_array_equal(loaded, features)
    assert store.meta("training", "a")["requested_dtype"] == "float16"


def test_rows_put_in_any_order_and_runs_land_in_place(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path, "float32")
    features = np.arange(12, dtype=np.float32).reshape(6, 2)
    with store.writer("training", "a", list("uvwxyz"), 2, PARAMS) as writer:
        writer.put(np.array([4, 0, 1]), features[[4, 0, 1]])  # unsorted, a run of two
        writer.put(np.array([5, 2, 3]), features[[5, 2, 3]])
    np.testing.assert_array_equal(store.load("training", "a", mmap=False)[1], features)


def test_a_failed_write_leaves_the_previous_store_and_no_temporary_files(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    store.save("training", "a", ["x"], np.ones((1, 4), np.float32), PARAMS)
    before = sorted(p.name for p in (tmp_path / "training").iterdir())
    with pytest.raises(RuntimeError), store.writer("training", "a", ["x", "y"], 4, PARAMS) as writer:
        writer.put(np.array([0]), np.zeros((1, 4), np.float32))
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in (tmp_path / "training").iterdir()) == before
    ids, loaded = store.load("training", "a")
    assert ids == ["x"] and loaded.tolist() == [[1, 1, 1, 1]]


def test_unwritten_rows_are_an_error_not_zeros(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    with pytest.raises(NoveltyError, match="never written"), \
            store.writer("training", "a", ["x", "y"], 4, PARAMS) as writer:
        writer.put(np.array([0]), np.ones((1, 4), np.float32))
    assert store.meta("training", "a") is None


def test_load_of_a_missing_set_names_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(NoveltyError, match="novelty analyze"):
        FeatureStore(tmp_path).load("training", "block5_pool")


def test_bad_names_and_dtypes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NoveltyError, match="float16, float32"):
        FeatureStore(tmp_path, dtype="int8")
    with pytest.raises(NoveltyError, match="invalid feature-store name"):
        FeatureStore(tmp_path).meta("../escape", "a")


def test_update_embeds_once_then_nothing(tmp_path: Path) -> None:
    store, extractor = FeatureStore(tmp_path), FakeExtractor()
    ids, shas, images = _images(10)
    assert store.update("training", ids, shas, images, extractor, batch_size=4, progress=False) == 10
    data_files = sorted(p.name for p in (tmp_path / "training").glob("*.npy"))
    assert store.update("training", ids, shas, images, extractor, batch_size=4, progress=False) == 0
    assert extractor.embedded == 10
    assert sorted(p.name for p in (tmp_path / "training").glob("*.npy")) == data_files  # not rewritten
    expected = _expected(images)
    for layer in ("a", "b"):
        stored_ids, features = store.load("training", layer)
        assert stored_ids == ids
        np.testing.assert_allclose(features, expected[layer], rtol=1e-3)


def test_update_embeds_only_an_added_image_and_follows_renames(tmp_path: Path) -> None:
    store, extractor = FeatureStore(tmp_path), FakeExtractor()
    ids, shas, images = _images(6)
    store.update("training", ids, shas, images, extractor, progress=False)
    new_ids, new_shas, new_image = _images(1, seed=9)
    renamed = ["renamed.png"] + ids[1:]  # same content as img0: reused under its new id
    order = [5, 0, 3]  # a new order and two files removed
    all_ids = [renamed[i] for i in order] + new_ids
    all_shas = [shas[i] for i in order] + new_shas
    all_images = np.concatenate([images[order], new_image])
    extractor.embedded = 0
    assert store.update("training", all_ids, all_shas, all_images, extractor, progress=False) == 1
    assert extractor.embedded == 1
    stored_ids, features = store.load("training", "a")
    assert stored_ids == all_ids
    np.testing.assert_allclose(features, _expected(all_images)["a"], rtol=1e-3)


def test_update_with_another_configuration_rebuilds_instead_of_mixing(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    ids, shas, images = _images(5)
    store.update("training", ids, shas, images, FakeExtractor(), progress=False)
    other = FakeExtractor(preprocess="original", scale=2.0)
    assert store.update("training", ids, shas, images, other, progress=False) == 5
    _, features = store.load("training", "b")
    np.testing.assert_allclose(features, 2.0 * _expected(images)["b"], rtol=1e-3)
    assert store.meta("training", "b")["params"]["preprocess"] == "original"
    assert len(list((tmp_path / "training").glob("b-*.npy"))) == 1  # the old data file is gone
    # and a store asked for float32 does not reuse float16 rows either
    assert FeatureStore(tmp_path, "float32").update("training", ids, shas, images, other, progress=False) == 5


def test_sets_are_cached_apart(tmp_path: Path) -> None:
    store, extractor = FeatureStore(tmp_path), FakeExtractor()
    ids, shas, images = _images(3)
    store.update("training", ids, shas, images, extractor, progress=False)
    assert store.update("generated", ids[:2], shas[:2], images[:2], extractor, progress=False) == 2
    assert store.load("generated", "a")[0] == ids[:2] and store.load("training", "a")[0] == ids
