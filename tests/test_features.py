"""VGG16 features (novelty.embed.features): preprocessing modes, shapes, reduction, batching, laziness."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from novelty import defaults
from novelty.embed.features import (
    Extractor,
    LazyImages,
    MirroredExtractor,
    conv_flops,
    feature_dim,
    parse_reduce,
    preprocess,
    reduce_pool,
    sketch,
)
from novelty.errors import NoveltyError


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor(weights="none", input_size=32, layers=("block1_pool", "block3_conv1", "block5_pool"))


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)


def test_importing_features_does_not_import_tensorflow() -> None:
    code = ("import sys, novelty.embed.features, novelty.embed.featurestore, novelty.embed.weights, novelty.analysis; "
            "sys.exit(int(any(m in sys.modules for m in ('tensorflow', 'keras'))))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_caffe_preprocessing_equals_keras_preprocess_input(images: np.ndarray) -> None:
    from keras.applications.vgg16 import preprocess_input

    expected = preprocess_input(images.astype(np.float32))
    np.testing.assert_allclose(preprocess(images, "caffe"), expected, atol=1e-4)


def test_original_preprocessing_is_the_2018_scaling() -> None:
    pixels = np.array([[[[0, 127, 255]]]], np.uint8)
    np.testing.assert_allclose(preprocess(pixels, "original"), [[[[-1.0, 127 / 127.5 - 1, 1.0]]]])
    with pytest.raises(NoveltyError, match="must be one of: caffe, original"):
        preprocess(pixels, "torch")


def test_reduce_pool_averages_blocks() -> None:
    x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    out = reduce_pool(x, 2)
    assert out.shape == (2, 2, 2, 3)
    np.testing.assert_allclose(out[1, 0, 1], x[1, 0:2, 2:4].mean(axis=(0, 1)))
    assert parse_reduce("pool:4") == ("pool", 4) and parse_reduce("sketch:64") == ("sketch", 64)
    assert parse_reduce("none") is None and parse_reduce(None) is None
    for bad in ("pool:1", "pool:x", "pca:16", "sketch:8"):
        with pytest.raises(NoveltyError, match="must be none, sketch:D with D >= 16"):
            parse_reduce(bad)


def test_sketch_preserves_inner_products_on_average() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((40, 4096), dtype=np.float32)
    x[1] = x[0] + 0.05 * rng.random(4096, dtype=np.float32)  # a planted near-copy of row 0
    y = sketch(x, 1024)
    assert y.shape == (40, 1024) and y.dtype == np.float32
    np.testing.assert_array_equal(y, sketch(x, 1024))  # deterministic
    np.testing.assert_array_equal(y, sketch(x, 1024, block=7))  # blocks of rows change nothing
    exact = x @ x.T
    ratio = (y @ y.T)[~np.eye(40, dtype=bool)] / exact[~np.eye(40, dtype=bool)]
    assert abs(ratio.mean() - 1) < 0.05 and ratio.std() < 0.1
    cosine = y @ y[0] / np.linalg.norm(y, axis=1) / np.linalg.norm(y[0])
    assert np.argsort(-cosine)[1] == 1  # the near-copy stays the nearest


def test_conv_flops_match_vgg16_at_224() -> None:
    assert abs(conv_flops(224) / 1e9 - 30.7) < 0.1  # 15.35 G multiply-adds
    assert conv_flops(64) * 4 == pytest.approx(conv_flops(128), rel=1e-9)


def test_embed_gives_flattened_float32_of_the_documented_sizes(extractor: Extractor, images: np.ndarray) -> None:
    out = extractor.embed(images, batch_size=2, progress=False)
    assert list(out) == ["block1_pool", "block3_conv1", "block5_pool"]
    for layer, features in out.items():
        assert features.dtype == np.float32
        assert features.shape == (5, feature_dim(layer, 32)) == (5, extractor.feature_dim(layer))
    assert out["block1_pool"].shape[1] == 16 * 16 * 64 and out["block5_pool"].shape[1] == 512
    assert np.isfinite(out["block5_pool"]).all() and out["block5_pool"].std() > 0


def test_embedding_is_deterministic_and_independent_of_batch_size(extractor: Extractor, images: np.ndarray) -> None:
    model = extractor.model
    before = extractor.embedded
    a = extractor.embed(images, batch_size=5, progress=False)
    b = extractor.embed(images[::-1], batch_size=2, progress=False)
    assert extractor.model is model  # built once
    assert extractor.embedded - before == 10
    for layer in a:
        np.testing.assert_allclose(a[layer], b[layer][::-1], rtol=1e-4, atol=1e-5 * np.abs(a[layer]).max())
    other = Extractor(weights="none", input_size=32, layers=("block5_pool",))
    np.testing.assert_allclose(other.embed(images[:2], progress=False)["block5_pool"],
                               a["block5_pool"][:2], rtol=1e-4, atol=1e-3)  # same seed, same weights


def test_lazy_images_are_read_a_batch_at_a_time_and_embed_bit_for_bit(extractor: Extractor,
                                                                       images: np.ndarray) -> None:
    reads: list[list[int]] = []
    lazy = LazyImages(np.arange(len(images)), lambda rows: reads.append(list(rows)) or images[rows])
    streamed = list(extractor.embed_batches(lazy, batch_size=2, progress=False))
    assert [rows for rows in reads if rows] == [[0, 1], [2, 3], [4]]
    for got, want in zip(streamed, extractor.embed_batches(images, batch_size=2, progress=False), strict=True):
        assert all(np.array_equal(got[layer], want[layer]) for layer in extractor.layers)
    mirrored = MirroredExtractor(extractor).embed_batches(lazy, batch_size=2, progress=False)
    flipped = extractor.embed_batches(np.ascontiguousarray(images[:, :, ::-1]), batch_size=2, progress=False)
    for got, want in zip(mirrored, flipped, strict=True):
        assert all(np.array_equal(got[layer], want[layer]) for layer in extractor.layers)
    with pytest.raises(NoveltyError, match="read by slices"):
        lazy[[0, 1]]


def test_images_of_another_size_are_fitted_to_the_input_size(extractor: Extractor, images: np.ndarray) -> None:
    big = np.repeat(np.repeat(images[:2], 2, axis=1), 2, axis=2)  # 64 px versions
    out = extractor.embed(big, progress=False)
    assert out["block5_pool"].shape == (2, 512)
    near = extractor.embed(images[:2], progress=False)["block5_pool"]
    cosine = np.sum(out["block5_pool"] * near, 1) / np.linalg.norm(out["block5_pool"], axis=1) / np.linalg.norm(near, axis=1)
    assert (cosine > 0.9).all()


def test_block1_reduction_shrinks_only_block1(images: np.ndarray) -> None:
    layers = ("block1_pool", "block5_pool")
    reduced = Extractor(weights="none", input_size=32, layers=layers, block1_reduce="pool:4")
    out = reduced.embed(images[:2], progress=False)
    assert out["block1_pool"].shape == (2, 4 * 4 * 64) == (2, reduced.feature_dim("block1_pool"))
    assert out["block5_pool"].shape == (2, 512)
    assert reduced.params("block1_pool")["block1_reduce"] == "pool:4"
    assert reduced.params("block5_pool")["block1_reduce"] is None
    sketched = Extractor(weights="none", input_size=32, layers=layers, block1_reduce="sketch:256")
    out = sketched.embed(images[:2], progress=False)
    assert out["block1_pool"].shape == (2, 256) == (2, sketched.feature_dim("block1_pool"))


def test_params_key_every_setting(extractor: Extractor) -> None:
    params = extractor.params("block5_pool")
    assert params == {"weights_sha256": extractor.weights.sha256, "preprocess": defaults.PREPROCESS,
                      "input_size": 32, "fit": "crop", "layer": "block5_pool", "block1_reduce": None}
    for change in ({"preprocess": "original"}, {"fit_mode": "pad"}, {"input_size": 64}, {"seed": 1}):
        assert Extractor(**{"weights": "none", "input_size": 32, **change}).params("block5_pool") != params


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"layers": ("block6_pool",)}, "unknown layer 'block6_pool'; must be one of: block1_conv1"),
    ({"layers": ()}, "no layers given"),
    ({"input_size": 16}, "input size must be an integer in the range 32<=x<=512, received: 16"),
    ({"preprocess": "tf"}, "unknown preprocess mode 'tf'"),
])
def test_bad_settings_give_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(NoveltyError, match=message):
        Extractor(weights="none", **kwargs)


def test_bad_image_arrays_are_refused(extractor: Extractor) -> None:
    with pytest.raises(NoveltyError, match="expected uint8 images"):
        extractor.embed(np.zeros((2, 32, 32, 3), np.float32), progress=False)
    with pytest.raises(NoveltyError, match="batch size must be positive"):
        extractor.embed(np.zeros((2, 32, 32, 3), np.uint8), batch_size=0, progress=False)
    empty = extractor.embed(np.zeros((0, 32, 32, 3), np.uint8), progress=False)
    assert empty["block5_pool"].shape == (0, 512)
