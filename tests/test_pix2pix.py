"""pix2pix training (novelty.gan.pix2pix_family on the shared loop) and generation from input images.

Tiny 32 px networks on pairs made in code (target: blocky colours, input: the target inverted). What costs
time is tracing the step (a few seconds per ``train`` call), so one trained folder is shared.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_pairs import SIZE, make_pair
from test_prepare import _assert_one_line_error
from test_training import _largest_difference, _state, _weights

from novelty.cli import main
from novelty.errors import NoveltyError
from novelty.files import read_json
from novelty.gan.dcgan import GanConfig
from novelty.gan.pix2pix import (
    Pix2PixConfig,
    build_patch_discriminator,
    build_unet,
    load_translator,
)
from novelty.gan.pix2pix_family import HOLDOUT_FILE, Pix2PixOptions, read_holdout, train_pairs
from novelty.gan.training import check_resume
from novelty.images.pairs import pair_dataset

CONFIG = Pix2PixConfig(image_size=SIZE, base_filters=8, bottleneck_dense=1)
PAIRS = 12


def _options(**overrides) -> Pix2PixOptions:
    base = {"batch_size": 4, "log_every": 1, "grid_size": 3, "seed": 0, "flip": True, "jitter": True,
            "cross_flip": True, "holdout": 0.2}
    return Pix2PixOptions(**{**base, **overrides})


@pytest.fixture(scope="module")
def pair_folder(tmp_path_factory) -> Path:
    from novelty.images.decode import save_png

    folder = tmp_path_factory.mktemp("pix2pix") / "pairs"
    for i in range(PAIRS):
        save_png(np.concatenate(make_pair(i), axis=1), folder / f"pair{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def trained(pair_folder, tmp_path_factory) -> Path:
    """`novelty train --model pix2pix` for 4 steps, a checkpoint every 2."""
    out = tmp_path_factory.mktemp("pix2pix") / "run"
    result = CliRunner().invoke(main, [
        "train", str(pair_folder), "--model", "pix2pix", "--out", str(out), "--size", str(SIZE), "--steps", "4",
        "--batch-size", "4", "--checkpoint-every", "2", "--base-filters", "8", "--bottleneck-dense", "1",
        "--flip", "--jitter", "--cross-flip", "--holdout", "0.2", "--seed", "0"])
    assert result.exit_code == 0, result.output
    return out


def test_the_networks_have_the_stated_shapes() -> None:
    at256 = Pix2PixConfig(image_size=256)
    assert at256.levels == 8 and at256.patch_size == 70 and at256.widths() == [64, 128, 256, 512, 512, 512, 512, 512]
    assert [Pix2PixConfig(image_size=s).patch_size for s in (128, 64, 32)] == [34, 16, 16]
    unet, patches = build_unet(CONFIG), build_patch_discriminator(CONFIG)
    assert unet.output_shape == (None, SIZE, SIZE, 3)
    assert sum("up" in layer.name and layer.name[2:].isdigit() for layer in unet.layers) == CONFIG.levels - 1
    assert any(layer.name == "bottleneck_dense0" for layer in unet.layers)
    assert patches.output_shape == (None, 14, 14, 1)


@pytest.mark.slow
def test_a_cli_run_writes_checkpoints_grids_and_the_held_out_ids(trained: Path, pair_folder: Path) -> None:
    assert (trained / "checkpoints" / "latest").read_text().strip() == "step-000004"
    assert Pix2PixConfig.load(trained / "checkpoints" / "step-000004") == CONFIG
    record = read_json(trained / HOLDOUT_FILE)
    held = read_holdout(trained)
    assert record["fraction"] == 0.2 and record["seed"] == 0 and len(held) == round(0.2 * PAIRS) == record["count"]
    assert set(held) <= {p.name for p in pair_folder.iterdir()}
    options = read_json(trained / "train.json")["options"]
    assert options["cross_flip"] is True and options["l1_lambda"] == 100.0 and options["holdout"] == 0.2
    state = _state(trained / "checkpoints" / "step-000004")
    assert int(state["step"]) == 4 and int(state["data/elements"]) == 16 and int(state["g_opt/0"]) == 4
    from PIL import Image

    grid = np.asarray(Image.open(trained / "samples" / "step-000004.png"))
    assert grid.shape == (8 * SIZE + 9 * 2, 3 * SIZE + 4 * 2, 3)  # 8 rows of input | generated | target


@pytest.mark.slow
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(trained: Path, pair_folder: Path,
                                                                     tmp_path: Path) -> None:
    """2 steps, then a second call to 4, from Python: the same weights as the 4-step CLI run, bit for bit."""
    dataset, ids, _ = pair_dataset(pair_folder, SIZE, progress=False)
    halves = tmp_path / "halves"
    train_pairs(dataset, ids, halves, CONFIG, _options(steps=2, checkpoint_every=2), progress=False)
    first = _weights(halves / "checkpoints" / "step-000002")
    resumed = train_pairs(dataset, ids, halves, CONFIG, _options(steps=4, checkpoint_every=2), progress=False)
    a, b = _weights(resumed), _weights(trained / "checkpoints" / "step-000004")
    assert any(key.startswith("state/dropout/") for key in a)  # dropout's random state is part of a checkpoint
    assert _largest_difference(a, b) == 0.0
    assert _largest_difference(first, a) > 0  # the second call did train
    assert read_holdout(halves) == read_holdout(trained)


@pytest.mark.slow
@pytest.mark.parametrize("change", [{"cross_flip": False}, {"holdout": 0.1}, {"l1_lambda": 10.0}])
def test_changed_settings_on_the_same_folder_are_refused_by_name(trained: Path, change: dict) -> None:
    with pytest.raises(NoveltyError, match=f"{next(iter(change))}: saved"):
        check_resume(trained, CONFIG, _options(**change, steps=8))
    with pytest.raises(NoveltyError, match="holds architecture 'pix2pix'; this version reads 'dcgan'"):
        check_resume(trained, GanConfig(image_size=SIZE), _options())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    from novelty.images.decode import save_png

    folder = tmp_path_factory.mktemp("pix2pix") / "inputs"
    for i in range(3):
        save_png(make_pair(20 + i)[0], folder / f"in{i}.png")
    save_png(np.full((40, 48, 3), 9, np.uint8), folder / "sub" / "other.bmp")  # fitted like any image
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return folder


def _generate(*args: str):
    return CliRunner().invoke(main, ["generate", *map(str, args)])


@pytest.mark.slow
def test_generation_is_one_output_per_input_named_after_it_and_deterministic(trained, inputs, tmp_path) -> None:
    results = []
    for name in ("one", "two"):
        result = _generate("--checkpoint", trained, "--inputs", inputs, "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
        assert "1 inputs skipped" in result.output
        results.append({p.relative_to(tmp_path / name / "samples").as_posix(): p.read_bytes()
                        for p in sorted((tmp_path / name / "samples").rglob("*.png"))})
    assert sorted(results[0]) == ["in0.png", "in1.png", "in2.png", "sub/other.png"]
    assert results[0] == results[1]
    skipped = (tmp_path / "one" / "skipped.csv").read_text()
    assert "broken.jpg" in skipped and "not a readable image" in skipped
    model, _ = load_translator(trained)
    from PIL import Image

    expected = np.clip(np.rint((model(make_pair(21)[0][None] / 127.5 - 1.0, training=False)[0].numpy() + 1) * 127.5),
                       0, 255).astype(np.uint8)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "one" / "samples" / "in1.png")), expected)


@pytest.mark.slow
def test_a_moved_checkpoint_still_loads(trained, inputs, tmp_path) -> None:
    before = _generate("--checkpoint", trained / "checkpoints" / "step-000004", "--inputs", inputs,
                       "--out", tmp_path / "before")
    assert before.exit_code == 0, before.output
    moved = tmp_path / "elsewhere" / "renamed-run"
    shutil.copytree(trained, tmp_path / "copy")
    shutil.move(tmp_path / "copy", moved)
    for path, out in ((moved, "training-folder"), (moved / "checkpoints" / "step-000004", "step-folder")):
        after = _generate("--checkpoint", path, "--inputs", inputs, "--out", tmp_path / out)
        assert after.exit_code == 0, after.output
        for png in (tmp_path / "before" / "samples").rglob("*.png"):
            assert (tmp_path / out / "samples" / png.relative_to(tmp_path / "before" / "samples")).read_bytes() \
                == png.read_bytes()
    assert str(trained) not in "".join(p.read_text(errors="ignore") for p in (moved / "checkpoints").rglob("*.json"))


@pytest.mark.slow
def test_the_wrong_family_for_the_request_is_a_one_line_error(trained, inputs, tmp_path) -> None:
    result = _generate("--checkpoint", trained, "--out", tmp_path / "noise")
    _assert_one_line_error(result, "is a pix2pix checkpoint", "--inputs DIR")
    dcgan = tmp_path / "dcgan"
    from novelty.gan.dcgan import GENERATOR_FILE, build_generator

    config = GanConfig(image_size=32, z_dim=4, base_filters=4)
    dcgan.mkdir()
    config.save(dcgan)
    build_generator(config).save_weights(dcgan / GENERATOR_FILE)
    result = _generate("--checkpoint", dcgan, "--inputs", inputs, "--out", tmp_path / "translated")
    _assert_one_line_error(result, "is a DCGAN checkpoint", "takes no --inputs")
    result = _generate("--checkpoint", trained, "--inputs", inputs, "--n", "5", "--out", tmp_path / "n")
    _assert_one_line_error(result, "--n applies only with a DCGAN checkpoint")
    result = _generate("--checkpoint", dcgan, "--fit", "pad", "--out", tmp_path / "fit")
    _assert_one_line_error(result, "--fit applies only with --inputs")
    assert not any((tmp_path / name).exists() for name in ("noise", "translated", "n", "fit"))


def test_data_that_is_not_pairs_of_the_size_is_refused_before_training(tmp_path) -> None:
    import tensorflow as tf

    from novelty.gan import loop
    from novelty.gan.pix2pix_family import Pix2Pix

    images = np.zeros((4, SIZE, SIZE, 3), np.uint8)
    for data, message in [
        (tf.data.Dataset.from_tensor_slices(images), r"pix2pix trains on \(input, target\) pairs"),
        (tf.data.Dataset.from_tensor_slices((images, images.astype(np.float32))), "pair images must be uint8"),
        (tf.data.Dataset.from_tensor_slices((images, np.zeros((4, 16, 16, 3), np.uint8))),
         r"pair images must be \(32, 32, 3\) for a 32 px network, received \(16, 16, 3\)"),
    ]:
        with pytest.raises(NoveltyError, match=message):
            loop.train(Pix2Pix, data, tmp_path / "run", CONFIG, _options(steps=1), progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_resuming_on_other_data_says_the_held_out_pairs_changed(trained, pair_folder, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    fewer = tmp_path / "fewer"
    shutil.copytree(pair_folder, fewer)
    for name in read_holdout(out):
        (fewer / name).unlink()  # the held-out pairs gone: others are drawn
    dataset, ids, _ = pair_dataset(fewer, SIZE, progress=False)
    train_pairs(dataset, ids, out, CONFIG, _options(steps=5, checkpoint_every=5), progress=False)
    assert "the pairs held out now differ" in capsys.readouterr().err
    assert not set(read_holdout(out)) & set(read_holdout(trained))


@pytest.mark.slow
def test_analyze_judges_a_checkpoints_outputs_for_its_held_out_inputs(trained, pair_folder, tmp_path) -> None:
    """`novelty analyze --inputs` with a checkpoint: its outputs for the held-out inputs, each beside its
    held-out truth; the held-out targets are not among the training targets searched."""
    from novelty.images.decode import save_png
    from novelty.run import tables

    held = read_holdout(trained)
    for name in held:
        save_png(make_pair(int(name[4:6]))[0], tmp_path / "inputs" / name)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["analyze", "--train", str(pair_folder), "--checkpoint", str(trained),
                                       "--inputs", str(tmp_path / "inputs"), "--out", str(run), "--weights", "none",
                                       "--input-size", "32", "--no-align", "--holdout", "0.5", "--fpr", "0.3", "--k", "8"])
    assert result.exit_code == 0, result.output
    rows = tables.read_table(run / "samples.csv", tables.SAMPLES).rows
    assert sorted(row["id"] for row in rows) == sorted(held)
    assert all(row["truth_id"] == row["id"] and row["truth_split"] == "heldout" for row in rows)
    assert all(row["truth_rank_block5_pool"] >= 1 and row["truth_similarity_block1_pool"] is not None for row in rows)
    manifest = read_json(run / "run.json")
    assert manifest["checkpoint"] == str(trained.resolve()) and manifest["conditional"]["heldout_pairs"] == len(held)
    assert len(list((run / "targets").iterdir())) == PAIRS - len(held)
    result = CliRunner().invoke(main, ["analyze", "--train", str(pair_folder), "--generated", str(tmp_path / "inputs"),
                                       "--direction", "BtoA", "--out", str(tmp_path / "plain")])
    _assert_one_line_error(result, "--direction applies only with --inputs")
