"""Seeded generation from a checkpoint (novelty.gan.generate and `novelty generate`).

The checkpoints here are untrained 32 px generators saved in the checkpoint format: generation only
needs a config and weights, so no training is spent on these tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from novelty.cli import main
from novelty.errors import NoveltyError
from novelty.gan.dcgan import GENERATOR_FILE, GanConfig, build_discriminator, build_generator
from novelty.gan.generate import (
    GRID_FILE,
    MANIFEST_FILE,
    SAMPLES_DIR,
    generate,
    sample,
    sample_names,
)

CONFIG = GanConfig(image_size=32, z_dim=8, base_filters=4)


def _save_checkpoint(folder: Path, config: GanConfig, seed: int = 0) -> Path:
    import keras

    keras.utils.set_random_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    config.save(folder)
    build_generator(config).save_weights(folder / GENERATOR_FILE)
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return _save_checkpoint(tmp_path_factory.mktemp("generate") / "ck", CONFIG)


def _cli(*args: str):
    return CliRunner().invoke(main, ["generate", *args])


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_generate_writes_samples_grid_and_manifest(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _cli("--checkpoint", str(checkpoint), "--n", "5", "--seed", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"Wrote 5 samples to {out / SAMPLES_DIR}" in result.output

    names = sorted(p.name for p in (out / SAMPLES_DIR).iterdir())
    assert names == [f"sample-000{i}.png" for i in range(5)]
    for name in names:
        with Image.open(out / SAMPLES_DIR / name) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", (32, 32))  # from the config
    with Image.open(out / GRID_FILE) as grid:
        assert grid.size == (3 * 32 + 4 * 2, 2 * 32 + 3 * 2)  # 5 samples: 3 columns, 2 rows
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["n"] == 5 and manifest["seed"] == 3
    assert manifest["files"] == names
    assert manifest["config"] == CONFIG.to_dict()
    assert Path(manifest["checkpoint"]) == checkpoint


def test_the_same_seed_gives_identical_files_and_another_seed_differs(checkpoint: Path, tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        result = _cli("--checkpoint", str(checkpoint), "--n", "6", "--seed", str(seed), "--out", str(tmp_path / name))
        assert result.exit_code == 0, result.output
        runs[name] = _files(tmp_path / name)
    assert runs["a"] == runs["b"]
    assert runs["a"].keys() == runs["c"].keys()
    for key in runs["a"]:
        if key.startswith(SAMPLES_DIR):
            assert runs["a"][key] != runs["c"][key], key


def test_samples_match_the_generator_output(checkpoint: Path) -> None:
    from novelty.gan.dcgan import load_generator
    from novelty.gan.training import fixed_noise, to_uint8

    images, config = sample(checkpoint, n=4, seed=5, batch_size=3)  # two batches: 3 + 1
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8
    assert config == CONFIG.to_dict()
    model, _ = load_generator(checkpoint)
    expected = to_uint8(model(fixed_noise(4, CONFIG.z_dim, 5), training=False))
    assert np.abs(images.astype(int) - expected.astype(int)).max() <= 1
    assert images.std() > 0


def test_regenerating_into_the_same_folder_is_allowed(checkpoint: Path, tmp_path: Path) -> None:
    generate(checkpoint, tmp_path, n=3, seed=1)
    first = _files(tmp_path)
    generate(checkpoint, tmp_path, n=3, seed=1)
    assert _files(tmp_path) == first


def test_an_out_folder_holding_other_images_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    generate(checkpoint, tmp_path, n=4, seed=1)
    with pytest.raises(NoveltyError, match=r"already holds 2 other files \(e.g. sample-0002.png\)"):
        generate(checkpoint, tmp_path, n=2, seed=1)  # would leave samples 2 and 3 of the first run
    (tmp_path / SAMPLES_DIR / "mine.jpg").write_bytes(b"user file")
    with pytest.raises(NoveltyError, match="choose an empty --out"):
        generate(checkpoint, tmp_path, n=4, seed=1)
    assert (tmp_path / SAMPLES_DIR / "mine.jpg").read_bytes() == b"user file"


def test_a_latest_pointing_to_a_missing_step_is_said_with_what_was_used(checkpoint: Path, tmp_path: Path) -> None:
    training = tmp_path / "training"
    shutil.copytree(checkpoint, training / "checkpoints" / "step-000002")
    latest = training / "checkpoints" / "latest"
    latest.write_text("step-000002\n")
    result = _cli("--checkpoint", str(training), "--n", "2", "--out", str(tmp_path / "followed"))
    assert result.exit_code == 0 and "Warning" not in result.output, result.output
    assert json.loads((tmp_path / "followed" / MANIFEST_FILE).read_text())["warnings"] == []

    latest.write_text("step-000005\n")  # pruned by hand, or a partial copy of the folder
    out = tmp_path / "out"
    result = _cli("--checkpoint", str(training), "--n", "2", "--out", str(out))
    assert result.exit_code == 0, result.output
    note = (f"{latest} names step-000005, which is missing or incomplete; using step-000002 instead, "
            "the newest complete checkpoint")
    assert result.stderr.splitlines() == [f"Warning: {note}"]
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["warnings"] == [note] and Path(manifest["checkpoint"]).name == "step-000002"
    assert _files(out / SAMPLES_DIR) == _files(tmp_path / "followed" / SAMPLES_DIR)


def test_sample_names_sort_in_generation_order() -> None:
    assert sample_names(3) == ["sample-0000.png", "sample-0001.png", "sample-0002.png"]
    names = sample_names(12_345)
    assert names[0] == "sample-00000.png" and names == sorted(names)


def _bad_checkpoints(root: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Every kind of wrong checkpoint, and a substring of its one-line error."""
    cases: dict[str, tuple[Path, str]] = {"missing": (root / "nowhere", "checkpoint not found")}

    empty = root / "empty"
    empty.mkdir(parents=True)
    (empty / "notes.txt").write_text("hello")
    cases["not a checkpoint"] = (empty, "not a novelty checkpoint")

    weights_file = good / GENERATOR_FILE
    cases["a file"] = (weights_file, "must be a folder")

    other_arch = shutil.copytree(good, root / "other-arch")
    config = json.loads((other_arch / "config.json").read_text())
    (other_arch / "config.json").write_text(json.dumps({**config, "architecture": "stylegan2"}))
    cases["another architecture"] = (other_arch, "holds architecture 'stylegan2'")

    no_config = root / "no-config"
    no_config.mkdir()
    shutil.copy(weights_file, no_config / GENERATOR_FILE)
    cases["no config"] = (no_config, "config.json is missing")

    size64 = root / "size64"
    size64.mkdir()
    GanConfig(image_size=64, z_dim=8, base_filters=4).save(size64)
    shutil.copy(weights_file, size64 / GENERATOR_FILE)  # 32 px weights under a 64 px config
    cases["another size"] = (size64, "does not match its config.json (64 px")

    wider = root / "wider"
    wider.mkdir()
    GanConfig(image_size=32, z_dim=8, base_filters=8).save(wider)
    shutil.copy(weights_file, wider / GENERATOR_FILE)
    cases["another width"] = (wider, "does not match its config.json (32 px, z_dim 8, base_filters 8)")

    discriminator = shutil.copytree(good, root / "discriminator")
    build_discriminator(CONFIG).save_weights(discriminator / GENERATOR_FILE)
    cases["discriminator weights"] = (discriminator, "does not match its config.json")

    corrupt = shutil.copytree(good, root / "corrupt")
    data = (corrupt / GENERATOR_FILE).read_bytes()
    (corrupt / GENERATOR_FILE).write_bytes(data[: len(data) // 3])
    cases["truncated weights"] = (corrupt, "unreadable weights file")

    junk = shutil.copytree(good, root / "junk")
    (junk / GENERATOR_FILE).write_bytes(b"\x00garbage" * 100)
    cases["junk weights"] = (junk, "unreadable weights file")

    broken_json = shutil.copytree(good, root / "broken-json")
    (broken_json / "config.json").write_text('{"image_size": 32,')
    cases["broken config"] = (broken_json, "unreadable checkpoint config")
    return cases


def test_wrong_checkpoints_give_a_one_line_cli_error(checkpoint: Path, tmp_path: Path) -> None:
    for label, (path, message) in _bad_checkpoints(tmp_path / "bad", checkpoint).items():
        out = tmp_path / "out" / label
        result = _cli("--checkpoint", str(path), "--n", "2", "--out", str(out))
        assert result.exit_code == 1, (label, result.output)
        assert isinstance(result.exception, SystemExit), (label, result.exception)  # no traceback
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), (label, result.output)
        assert message in lines[0], (label, lines[0])
        assert not (out / SAMPLES_DIR).exists(), label


def test_an_out_path_that_is_a_file_gives_a_one_line_cli_error(checkpoint: Path, tmp_path: Path) -> None:
    target = tmp_path / "taken.txt"
    target.write_text("keep me")
    result = _cli("--checkpoint", str(checkpoint), "--out", str(target))
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: --out must be a folder, received a file: {target}"
    assert target.read_text() == "keep me"


def test_the_installed_command_reports_a_missing_checkpoint_without_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "novelty.cli", "generate", "--checkpoint", str(tmp_path / "nowhere"),
         "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == f"Error: checkpoint not found: {tmp_path / 'nowhere'}"
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("name", ["BUNDLED_CHECKPOINT", "BUNDLED_TWEMOJI"])
def test_the_bundled_checkpoints_load_and_generate_reproducibly(tmp_path: Path, name: str) -> None:
    """The shipped 64 px DCGAN checkpoints (masks, the default; Twemoji) must keep loading: they pin the
    architecture and layer names."""
    from novelty.images import assets

    checkpoint = getattr(assets, name)
    if not (checkpoint / GENERATOR_FILE).is_file():
        pytest.skip(f"no bundled checkpoint at {checkpoint}")
    first = generate(checkpoint, tmp_path / "a", n=4, seed=11)
    second = generate(checkpoint, tmp_path / "b", n=4, seed=11)
    assert _files(first) == _files(second)
    manifest = json.loads((first / MANIFEST_FILE).read_text())
    assert manifest["config"]["image_size"] == 64
    images = np.stack([np.asarray(Image.open(p)) for p in sorted((first / SAMPLES_DIR).iterdir())])
    assert images.shape == (4, 64, 64, 3)
    assert images.std() > 20  # a trained generator draws pictures, not flat grey
    assert len({image.tobytes() for image in images}) == 4
