"""The DCGAN networks, their config and the checkpoint folder rules (novelty.gan.dcgan).

Layer names and variable shapes are the checkpoint format: a bundled checkpoint written today must
load tomorrow, so they are pinned here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from novelty import defaults
from novelty.errors import NoveltyError
from novelty.gan.dcgan import (
    CONFIG_FILE,
    DISCRIMINATOR_FILE,
    GENERATOR_FILE,
    GanConfig,
    build_discriminator,
    build_generator,
    latest_checkpoint,
    load_generator,
    resolve_checkpoint,
    step_folders,
)

TINY = {"z_dim": 8, "base_filters": 4}


def _config_dict(**overrides) -> dict:
    return {**GanConfig(image_size=32, **TINY).to_dict(), **overrides}


@pytest.mark.parametrize(("size", "doublings"), [(32, 3), (64, 4), (128, 5)])
def test_networks_have_one_block_per_doubling_and_the_right_shapes(size: int, doublings: int) -> None:
    config = GanConfig(image_size=size, **TINY)
    assert config.doublings == doublings
    generator, discriminator = build_generator(config), build_discriminator(config)

    ups = [layer.name for layer in generator.layers if layer.name.startswith("up") and "_bn" not in layer.name]
    downs = [layer.name for layer in discriminator.layers if layer.name.startswith("down") and "_bn" not in layer.name]
    # the last doubling of the generator is the to_rgb layer itself
    assert ups == [f"up{i}" for i in range(doublings - 1)]
    assert downs == [f"down{i}" for i in range(doublings)]

    z = np.random.default_rng(0).standard_normal((3, config.z_dim)).astype(np.float32)
    images = np.asarray(generator(z, training=False))
    assert images.shape == (3, size, size, 3)
    assert images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert images.std() > 0  # not a constant image

    logits = np.asarray(discriminator(images, training=False))
    assert logits.shape == (3, 1)
    assert np.isfinite(logits).all()


def test_layer_names_and_shapes_of_the_bundled_architecture_are_pinned() -> None:
    """64 px, base_filters 32: the shapes the bundled checkpoint was written with."""
    config = GanConfig(image_size=64, base_filters=32)
    generator, discriminator = build_generator(config), build_discriminator(config)
    g_shapes = {w.path: tuple(w.shape) for w in generator.weights}
    d_shapes = {w.path: tuple(w.shape) for w in discriminator.weights}
    assert g_shapes["project/kernel"] == (100, 4 * 4 * 256)
    assert g_shapes["up0/kernel"] == (4, 4, 128, 256)  # Conv2DTranspose: (h, w, out, in)
    assert g_shapes["up2/kernel"] == (4, 4, 32, 64)
    assert g_shapes["to_rgb/kernel"] == (4, 4, 3, 32)
    assert d_shapes["down0/kernel"] == (4, 4, 3, 32)
    assert d_shapes["down3/kernel"] == (4, 4, 128, 256)
    assert d_shapes["logit/kernel"] == (4 * 4 * 256, 1)
    # 409600 + 1024 + 524288 + 512 + 131072 + 256 + 32768 + 128 + 1539 (to_rgb has a bias)
    assert generator.count_params() == 1_101_187
    # 1568 (down0 has a bias) + 32768 + 256 + 131072 + 512 + 524288 + 1024 + 4097
    assert discriminator.count_params() == 695_585


def test_filters_halve_per_doubling_and_are_capped() -> None:
    config = GanConfig(image_size=128, base_filters=16)
    assert [config.filters(r) for r in (4, 8, 16, 32, 64)] == [128, 128, 64, 32, 16]


def test_config_round_trips_through_config_json(tmp_path: Path) -> None:
    config = GanConfig(image_size=128, z_dim=7, base_filters=5, kernel_size=3)
    config.save(tmp_path)
    saved = json.loads((tmp_path / CONFIG_FILE).read_text())
    assert saved == {"image_size": 128, "z_dim": 7, "base_filters": 5, "kernel_size": 3,
                     "architecture": "dcgan", "format_version": 1}
    assert GanConfig.load(tmp_path) == config


def test_config_defaults_come_from_the_defaults_table() -> None:
    config = GanConfig()
    assert (config.image_size, config.z_dim, config.base_filters, config.kernel_size) == (
        defaults.IMAGE_SIZE, defaults.Z_DIM, defaults.BASE_FILTERS, defaults.KERNEL_SIZE)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"image_size": 48}, "image size must be one of: 32, 64, 128; received: 48"),
    ({"image_size": "64"}, "image_size must be an integer, received: '64'"),
    ({"z_dim": 0}, "z_dim must be an integer in the range 1<=x<=1024, received: 0"),
    ({"base_filters": -2}, "base_filters must be an integer in the range 1<=x<=512"),
    ({"kernel_size": True}, "kernel_size must be an integer"),
    ({"architecture": "stylegan2"}, "architecture must be 'dcgan', received: 'stylegan2'"),
])
def test_bad_config_values_raise_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(NoveltyError) as caught:
        GanConfig(**kwargs)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("content", "message"), [
    (None, "is missing"),
    ("{not json", "unreadable checkpoint config"),
    (json.dumps([1, 2]), "architecture 'list'"),
    (json.dumps(_config_dict(architecture="stylegan2")), "holds architecture 'stylegan2'"),
    (json.dumps({k: v for k, v in _config_dict().items() if k != "architecture"}), "architecture None"),
    (json.dumps(_config_dict(colour="blue")), "unknown fields: colour"),
    (json.dumps({k: v for k, v in _config_dict().items() if k != "base_filters"}), "lacks fields: base_filters"),
    (json.dumps(_config_dict(format_version=2)), "format_version 2"),
    (json.dumps(_config_dict(image_size=96)), "received: 96"),
    (json.dumps(_config_dict(z_dim="100")), "z_dim must be an integer"),
])
def test_bad_config_files_raise_one_line_errors(tmp_path: Path, content: str | None, message: str) -> None:
    if content is not None:
        (tmp_path / CONFIG_FILE).write_text(content)
    with pytest.raises(NoveltyError) as caught:
        GanConfig.load(tmp_path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def _checkpoint(folder: Path, config: GanConfig) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config.save(folder)
    build_generator(config).save_weights(folder / GENERATOR_FILE)
    return folder


def test_generator_weights_round_trip(tmp_path: Path) -> None:
    config = GanConfig(image_size=32, **TINY)
    folder = tmp_path / "ck"
    folder.mkdir()
    config.save(folder)
    original = build_generator(config)
    original.save_weights(folder / GENERATOR_FILE)
    loaded, loaded_config = load_generator(folder)
    assert loaded_config == config
    z = np.ones((2, config.z_dim), np.float32)
    np.testing.assert_array_equal(np.asarray(original(z, training=False)), np.asarray(loaded(z, training=False)))


@pytest.mark.parametrize(("weights_config", "message"), [
    # the 4x4 projection: 32 px, base 4 -> 16 maps; 64 px, base 4 -> 32 maps; 32 px, base 6 -> 24 maps
    (GanConfig(image_size=64, **TINY), "project/kernel needs shape (8, 256), the file holds (8, 512)"),
    (GanConfig(image_size=32, z_dim=8, base_filters=6), "project/kernel needs shape (8, 256), the file holds (8, 384)"),
    (GanConfig(image_size=32, z_dim=9, base_filters=4), "the file holds (9, 256)"),
])
def test_weights_of_another_shape_than_the_config_give_one_line_errors(
        tmp_path: Path, weights_config: GanConfig, message: str) -> None:
    other = _checkpoint(tmp_path / "other", weights_config)
    folder = tmp_path / "ck"
    folder.mkdir()
    GanConfig(image_size=32, **TINY).save(folder)
    shutil.copy(other / GENERATOR_FILE, folder / GENERATOR_FILE)
    with pytest.raises(NoveltyError) as caught:
        load_generator(folder)
    text = str(caught.value)
    assert "does not match its config.json (32 px, z_dim 8, base_filters 4)" in text
    assert message in text
    assert "\n" not in text


def test_discriminator_weights_in_place_of_the_generator_give_a_one_line_error(tmp_path: Path) -> None:
    config = GanConfig(image_size=32, **TINY)
    folder = tmp_path / "ck"
    folder.mkdir()
    config.save(folder)
    build_discriminator(config).save_weights(folder / GENERATOR_FILE)
    with pytest.raises(NoveltyError, match="does not match its config.json") as caught:
        load_generator(folder)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("content", [b"", b"not an hdf5 file at all" * 10, "truncate"])
def test_unreadable_weights_give_a_one_line_error(tmp_path: Path, content) -> None:
    folder = _checkpoint(tmp_path / "ck", GanConfig(image_size=32, **TINY))
    path = folder / GENERATOR_FILE
    path.write_bytes(path.read_bytes()[:4096] if content == "truncate" else content)
    with pytest.raises(NoveltyError, match="unreadable weights file") as caught:
        load_generator(folder)
    assert "\n" not in str(caught.value)


def _training_folder(root: Path, steps: list[int], latest: str | None) -> Path:
    for step in steps:
        folder = root / "checkpoints" / f"step-{step:06d}"
        folder.mkdir(parents=True)
        (folder / GENERATOR_FILE).write_bytes(b"x")
        (folder / DISCRIMINATOR_FILE).write_bytes(b"x")
    if latest is not None:
        (root / "checkpoints" / "latest").write_text(latest + "\n")
    return root


def test_resolve_checkpoint_follows_latest_in_a_training_folder(tmp_path: Path) -> None:
    root = _training_folder(tmp_path / "run", [2, 4, 6], "step-000004")
    assert resolve_checkpoint(root) == root / "checkpoints" / "step-000004"
    assert resolve_checkpoint(root / "checkpoints" / "step-000002") == root / "checkpoints" / "step-000002"


@pytest.mark.parametrize("latest", [None, "step-000008", "", "../../elsewhere"])
def test_a_missing_or_broken_latest_falls_back_to_the_newest_complete_step(tmp_path: Path, latest) -> None:
    root = _training_folder(tmp_path / "run", [999_999, 1_000_000, 2], latest)
    partial = root / "checkpoints" / ".step-000008.partial"
    partial.mkdir()
    (root / "checkpoints" / "step-000009").mkdir()  # no weights: incomplete, never chosen
    assert resolve_checkpoint(root) == root / "checkpoints" / "step-1000000"
    assert latest_checkpoint(root) == root / "checkpoints" / "step-1000000"
    assert [p.name for p in step_folders(root / "checkpoints")] == [
        "step-000002", "step-999999", "step-1000000"]


def test_resolve_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(NoveltyError, match="checkpoint not found"):
        resolve_checkpoint(tmp_path / "nowhere")
    (tmp_path / "file.h5").write_bytes(b"x")
    with pytest.raises(NoveltyError, match="must be a folder"):
        resolve_checkpoint(tmp_path / "file.h5")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoveltyError, match="not a novelty checkpoint"):
        resolve_checkpoint(tmp_path / "empty")
    assert latest_checkpoint(tmp_path / "empty") is None


def test_importing_dcgan_and_reading_a_config_do_not_import_tensorflow(tmp_path: Path) -> None:
    import subprocess
    import sys

    GanConfig(image_size=32, **TINY).save(tmp_path)
    code = ("import sys; from novelty.gan.dcgan import GanConfig; import novelty.gan.training, novelty.gan.generate; "
            f"GanConfig.load({str(tmp_path)!r}); "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
