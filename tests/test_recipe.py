"""The training recipe's options (novelty.gan.recipe: DiffAugment, EMA, label smoothing) and the PRDC curve
tracked while training (novelty.gan.tracking): what each op does, and that a resumed run with all of them
on ends exactly where an uninterrupted one does, curve included."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_training import _largest_difference, _logged, _weights

from novelty.errors import NoveltyError
from novelty.gan.dcgan import GENERATOR_FILE, GanConfig
from novelty.gan.recipe import parse_diffaugment
from novelty.gan.tracking import COLUMNS, QUALITY_CSV, QUALITY_PNG, read_quality
from novelty.gan.training import TRAINING_GENERATOR_FILE, TrainOptions, train

SIZE = 32
CONFIG = GanConfig(image_size=SIZE, z_dim=8, base_filters=8)
RECIPE = {"ema": 0.9, "diffaugment": "color,translation,cutout", "label_smoothing": 0.1}


def _images(n: int = 24) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def _options(**overrides) -> TrainOptions:
    base = {"batch_size": 8, "log_every": 1, "grid_size": 4, "seed": 3, "quality_every": 0}
    return TrainOptions(**{**base, **overrides})


def _batch(n: int = 6) -> np.ndarray:
    """Smooth, distinct images in [-1, 1] (ramps), so shifts and holes are visible."""
    ramp = np.linspace(-0.9, 0.9, SIZE, dtype=np.float32)
    image = np.stack([ramp[:, None] * np.ones(SIZE)[None, :], ramp[None, :] * np.ones(SIZE)[:, None],
                      np.full((SIZE, SIZE), 0.5)], axis=-1).astype(np.float32)
    return np.stack([image * (0.5 + 0.1 * i) for i in range(n)])


def test_diffaugment_policies_parse_and_refuse_unknown_names() -> None:
    assert parse_diffaugment("cutout, color") == ("color", "cutout")  # the paper's order
    assert parse_diffaugment("") == parse_diffaugment("none") == parse_diffaugment(None) == ()
    with pytest.raises(NoveltyError, match="unknown DiffAugment policy 'colour'; must be a comma-separated "
                                           "list of: color, translation, cutout"):
        TrainOptions(diffaugment="colour")
    with pytest.raises(NoveltyError, match="named twice"):
        parse_diffaugment("color,color")
    for kwargs in ({"ema": 1.0}, {"ema": -0.1}, {"label_smoothing": 0.5}, {"quality_every": -1},
                   {"quality_samples": 5}):
        with pytest.raises(NoveltyError, match=f"{next(iter(kwargs))} must be"):
            TrainOptions(**kwargs)


def test_each_diffaugment_op_does_what_the_paper_says_and_passes_gradients() -> None:
    import tensorflow as tf

    from novelty.gan.recipe import diff_augment

    x = tf.constant(_batch())
    rng = tf.random.Generator.from_seed(1)

    # translation: each image moves by whole pixels, at most 1/8 of the side (4 px), zeros move in
    moved = diff_augment(x, ("translation",), rng).numpy()
    for original, shifted in zip(x.numpy(), moved, strict=True):
        matches = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
                   if np.allclose(np.roll(original, (dy, dx), axis=(0, 1))[4:-4, 4:-4], shifted[4:-4, 4:-4])]
        assert matches, "not a whole-pixel shift of at most 4 px"
        dy, dx = matches[0]
        if dy > 0:
            assert np.all(shifted[:dy] == 0)
        if dx < 0:
            assert np.all(shifted[:, dx:] == 0)
    assert any(not np.allclose(a, b) for a, b in zip(x.numpy(), moved, strict=True))

    # cutout: one zeroed square of half the side (clipped at the border), the rest untouched
    cut = diff_augment(x, ("cutout",), rng).numpy()
    for original, holed in zip(x.numpy(), cut, strict=True):
        hole = np.all(holed == 0, axis=-1) & np.any(original != 0, axis=-1)
        rows, cols = np.nonzero(hole)
        assert 0 < hole.sum() <= 16 * 16
        assert hole.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # a rectangle
        np.testing.assert_array_equal(holed[~hole], original[~hole])

    # colour: brightness, saturation and contrast per image; the same generator state gives the same draw
    state = rng.state.numpy()
    coloured = diff_augment(x, ("color",), rng).numpy()
    rng.reset(state)
    np.testing.assert_array_equal(coloured, diff_augment(x, ("color",), rng).numpy())
    assert not np.allclose(coloured, x.numpy())

    # differentiable: the discriminator's gradient reaches the generator's images through every op
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(diff_augment(x, ("color", "translation", "cutout"), rng) ** 2)
    grad = tape.gradient(total, x).numpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory) -> dict:
    """All recipe options and the PRDC curve on: train to 4, rewind the folder to its step-2 checkpoint
    (as a kill after step 4's evaluation would leave it), train to 3 without tracking, then to 4 with it."""
    from novelty.images.pipeline import dataset_from_array

    out = tmp_path_factory.mktemp("recipe") / "run"
    options = _options(steps=4, checkpoint_every=1, quality_every=1, quality_samples=12, weights="none",
                       **RECIPE)
    train(dataset_from_array(_images()), out, CONFIG, options, progress=False)
    folders = {step: out / "checkpoints" / f"step-{step:06d}" for step in (3, 4)}
    before = {"weights": _weights(folders[4]), "quality": read_quality(out / QUALITY_CSV),
              **{f"{kind}{step}": _h5(folder / name) for step, folder in folders.items()
                 for kind, name in (("ema", GENERATOR_FILE), ("trained", TRAINING_GENERATOR_FILE))}}
    for folder in folders.values():
        shutil.rmtree(folder)
    (out / "checkpoints" / "latest").write_text("step-000002\n")
    train(dataset_from_array(_images()), out, CONFIG, dataclasses.replace(options, steps=3, quality_every=0), progress=False)
    at_3 = read_quality(out / QUALITY_CSV)
    train(dataset_from_array(_images()), out, CONFIG, options, progress=False)
    return {"out": out, "before": before, "options": options, "quality_at_3": at_3}


def _h5(path: Path) -> dict[str, np.ndarray]:
    import h5py

    found = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda key, item: found.__setitem__(key, item[()])
                          if isinstance(item, h5py.Dataset) else None)
    return found


@pytest.mark.slow
def test_a_resumed_run_with_every_recipe_option_matches_the_uninterrupted_one(recipe_run: dict) -> None:

    out, before = recipe_run["out"], recipe_run["before"]
    again = out / "checkpoints" / "step-000004"
    assert _largest_difference(_weights(again), before["weights"]) == 0.0  # EMA + DiffAugment + smoothing
    assert _largest_difference(_h5(again / TRAINING_GENERATOR_FILE), before["trained4"]) == 0.0
    # the curve went on where it stopped: the lost run's rows of steps 3 and 4 dropped on resume (even
    # by a call that tracks nothing), step 4 evaluated again to the same numbers, each step once
    assert recipe_run["quality_at_3"] == before["quality"][:2]
    rows = read_quality(out / QUALITY_CSV)
    assert [row["step"] for row in rows] == [1, 2, 4]
    assert rows == [before["quality"][i] for i in (0, 1, 3)]
    header = (out / QUALITY_CSV).read_text().splitlines()[0]
    assert header == ",".join(COLUMNS)
    assert all(row["n_generated"] == row["n_training"] == 12 and row["k"] == 5 for row in rows)
    assert all(0 <= row[m] <= 1 for row in rows for m in ("precision", "recall", "coverage"))
    assert Image.open(out / QUALITY_PNG).size[0] > 100
    assert (out / "quality" / "training-features.npz").is_file()
    logged = _logged(out)
    for name in ("precision", "recall", "density", "coverage"):
        assert sorted({step for step, _ in logged[f"quality/{name}"]}) == [1, 2, 3, 4]  # as the loss: by event


@pytest.mark.slow
def test_the_saved_generator_is_the_moving_average_of_the_trained_one(recipe_run: dict) -> None:
    """generator.weights.h5 (what generate and analyze load) = d * the previous one + (1 - d) * the
    trained generator, for every variable, batch-norm statistics included; d warms up with the step:
    min(--ema, (1 + 4) / (10 + 4)) at step 4."""
    before = recipe_run["before"]
    decay = min(recipe_run["options"].ema, 5 / 14)
    ema3, ema4, trained4 = before["ema3"], before["ema4"], before["trained4"]
    assert ema4.keys() == trained4.keys() and len(ema4) >= 4
    for key in ema4:
        np.testing.assert_allclose(ema4[key], decay * ema3[key] + (1 - decay) * trained4[key], rtol=1e-5,
                                   atol=1e-7, err_msg=key)
    assert any(not np.allclose(ema4[key], trained4[key]) for key in ema4)  # an average, not a copy


@pytest.mark.slow
@pytest.mark.parametrize(("change", "named"), [
    ({"ema": 0.99}, "ema: saved 0.9 vs requested 0.99"),
    ({"diffaugment": "color"}, "diffaugment: saved color,translation,cutout vs requested color"),
    ({"diffaugment": ""}, "diffaugment: saved color,translation,cutout vs requested none"),
    ({"label_smoothing": 0.0}, "label_smoothing: saved 0.1 vs requested 0.0"),
])
def test_changed_recipe_options_on_resume_are_refused(recipe_run: dict, change: dict, named: str) -> None:
    from novelty.images.pipeline import dataset_from_array

    out = recipe_run["out"]
    options = _options(**{"steps": 6, "checkpoint_every": 2, "quality_every": 1, "quality_samples": 12,
                          "weights": "none", **RECIPE, **change})
    with pytest.raises(NoveltyError) as caught:
        train(dataset_from_array(_images()), out, CONFIG, options, progress=False)
    assert named in str(caught.value) and str(caught.value).count(": saved ") == 1


def test_the_cli_refuses_an_unknown_diffaugment_policy_in_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from novelty.cli import main

    result = CliRunner().invoke(main, ["train", str(tmp_path / "not-decoded"), "--out", str(tmp_path / "run"),
                                       "--diffaugment", "color,zoom"])
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: unknown DiffAugment policy 'zoom'; must be a comma-separated list "
                                     "of: color, translation, cutout (or none)")
    assert not (tmp_path / "run").exists()


def test_too_few_training_images_for_prdc_stop_before_training(tmp_path: Path) -> None:
    from novelty.images.pipeline import dataset_from_array

    with pytest.raises(NoveltyError, match="--quality-every needs more than 5 training images .* holds 4"):
        train(dataset_from_array(_images(4)), tmp_path / "run", CONFIG,
              _options(steps=2, quality_every=2, quality_samples=12, weights="none"), progress=False)
    assert not list((tmp_path / "run").glob("checkpoints/step-*"))


def test_missing_vgg_weights_for_the_curve_stop_before_training_and_say_how_to_turn_it_off(tmp_path: Path) -> None:
    from novelty.images.pipeline import dataset_from_array

    with pytest.raises(NoveltyError, match=r"weights file not found: .*nothing\.h5.*--quality-every 0 turns it off"):
        train(dataset_from_array(_images()), tmp_path / "run", CONFIG,
              _options(steps=2, quality_every=2, weights=str(tmp_path / "nothing.h5")), progress=False)
    assert not list((tmp_path / "run").glob("checkpoints/step-*"))
