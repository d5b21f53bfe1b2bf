"""DCGAN training (novelty.gan.training): checkpoints, grids, TensorBoard, resume, crash safety, tf.distribute.

Tiny networks on seeded noise images: a few training steps take well under a second; what costs time
is tracing the step function (a few seconds per ``train`` call), so calls are shared where possible.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from novelty.errors import NoveltyError
from novelty.gan.dcgan import DISCRIMINATOR_FILE, GENERATOR_FILE, GanConfig, load_generator
from novelty.gan.training import (
    DATA_POSITION,
    STATE_FILE,
    TRAINING_GENERATOR_FILE,
    TrainOptions,
    latest_step,
    train,
)

SIZE, BATCH, GRID = 32, 8, 4
CONFIG = GanConfig(image_size=SIZE, z_dim=8, base_filters=8)
SETUP = f"""
import sys
import numpy as np
from novelty.gan.dcgan import GanConfig
from novelty.errors import NoveltyError
from novelty.images.pipeline import dataset_from_array
from novelty.gan.training import TrainOptions, train
IMAGES = np.random.default_rng(0).integers(0, 256, (16, {SIZE}, {SIZE}, 3), dtype=np.uint8)
CONFIG = GanConfig(image_size={SIZE}, z_dim=8, base_filters=8)
"""


def _images(n: int = 16, size: int = SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _dataset(images: np.ndarray | None = None):
    from novelty.images.pipeline import dataset_from_array

    return dataset_from_array(_images() if images is None else images)


def _options(**overrides) -> TrainOptions:
    base = {"batch_size": BATCH, "log_every": 1, "grid_size": GRID, "seed": 0}
    return TrainOptions(**{**base, **overrides})


def _state(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / STATE_FILE) as state:
        return {key: state[key] for key in state.files}


def _weights(folder: Path) -> dict[str, np.ndarray]:
    """Every array a checkpoint holds: both networks' weights (by HDF5 path) and the optimiser/RNG state."""
    import h5py

    found = {f"state/{key}": value for key, value in _state(folder).items()}
    for name in (GENERATOR_FILE, DISCRIMINATOR_FILE):
        with h5py.File(folder / name, "r") as handle:
            handle.visititems(lambda key, item, name=name: found.__setitem__(f"{name}/{key}", item[()])
                              if isinstance(item, h5py.Dataset) else None)
    return found


def _largest_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)).max()) for k in a)


def _logged(out: Path) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard scalars from every event file under ``out/logs``: tag -> [(step, value), ...]."""
    import tensorflow as tf

    found: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for path in sorted((out / "logs").glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found[value.tag].append((event.step, float(tf.make_ndarray(value.tensor))))
    return {tag: sorted(entries) for tag, entries in found.items()}


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory) -> dict:
    """Train to step 4 (checkpoint every step), then call again with steps=6 (checkpoint every 2)."""
    out = tmp_path_factory.mktemp("training") / "run"
    first = train(_dataset(), out, CONFIG, _options(steps=4, checkpoint_every=1, flip=True, jitter=True),
                  source="noise", progress=False)
    after_first = {
        "latest": latest_step(out),
        "samples": sorted(p.name for p in (out / "samples").glob("*.png")),
        "checkpoints": sorted(p.name for p in (out / "checkpoints").glob("step-*")),
        "state": _state(out / "checkpoints" / "step-000004"),
    }
    second = train(_dataset(), out, CONFIG, _options(steps=6, checkpoint_every=2, flip=True, jitter=True),
                   source="noise", progress=False)
    return {"out": out, "first": first, "second": second, "after_first": after_first}


@pytest.mark.slow
def test_checkpoints_are_written_every_n_steps_and_pruned(resumed_run: dict) -> None:
    out, after_first = resumed_run["out"], resumed_run["after_first"]
    assert resumed_run["first"] == out / "checkpoints" / "step-000004"
    assert after_first["latest"] == "step-000004"
    # every step saved in the first call, the 3 newest kept
    assert after_first["checkpoints"] == ["step-000002", "step-000003", "step-000004"]
    assert after_first["samples"] == [f"step-00000{i}.png" for i in (1, 2, 3, 4)]
    # second call, every 2 steps: step 5 not saved, step 6 saved
    assert resumed_run["second"] == out / "checkpoints" / "step-000006"
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-000006"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "latest", "step-000003", "step-000004", "step-000006"]
    assert not (out / "samples" / "step-000005.png").exists()
    for folder in (out / "checkpoints").glob("step-*"):
        assert {p.name for p in folder.iterdir()} == {"config.json", GENERATOR_FILE, DISCRIMINATOR_FILE,
                                                       STATE_FILE, TRAINING_GENERATOR_FILE}  # --ema is on by default
        assert GanConfig.load(folder) == CONFIG


@pytest.mark.slow
def test_each_checkpoint_has_a_sample_grid(resumed_run: dict) -> None:
    out = resumed_run["out"]
    names = sorted(p.name for p in (out / "samples").glob("*.png"))
    assert names == ["step-000001.png", "step-000002.png", "step-000003.png", "step-000004.png",
                     "step-000006.png"]
    grid = np.asarray(Image.open(out / "samples" / "step-000006.png"))
    assert grid.shape == (2 * SIZE + 3 * 2, 2 * SIZE + 3 * 2, 3)  # 4 samples in 2 x 2 with 2 px gaps
    first = np.asarray(Image.open(out / "samples" / "step-000001.png"))
    assert not np.array_equal(grid, first)  # the generator changed; the noise is fixed


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(resumed_run: dict) -> None:
    out = resumed_run["out"]
    before, after = resumed_run["after_first"]["state"], _state(out / "checkpoints" / "step-000006")
    assert int(before["step"]) == 4 and int(after["step"]) == 6
    # optimiser state carried over: Adam's iteration counters count all 6 steps, not 2
    assert int(before["g_opt/0"]) == 4 and int(before["d_opt/0"]) == 4
    assert int(after["g_opt/0"]) == 6 and int(after["d_opt/0"]) == 6
    assert not np.array_equal(before["rng"], after["rng"])
    # TensorBoard saw each of steps 1..6 exactly once: the second call ran steps 5 and 6 only
    logged = _logged(out)
    for tag in ("d_loss", "g_loss", "d_real", "d_fake", "steps_per_second"):
        assert [step for step, _ in logged[tag]] == [1, 2, 3, 4, 5, 6], tag
        assert all(np.isfinite(value) for _, value in logged[tag])
    assert all(0 <= value <= 1 for _, value in logged["d_real"] + logged["d_fake"])
    assert len(list((out / "logs").glob("events.out.tfevents.*"))) == 2
    record = json.loads((out / "train.json").read_text())
    assert record["replicas"] == 1 and record["source"] == "noise"
    assert record["options"]["steps"] == 6 and record["options"]["flip"] is True
    assert record["config"] == CONFIG.to_dict()


@pytest.mark.slow
def test_a_finished_run_called_again_trains_nothing(resumed_run: dict, capsys) -> None:
    out = resumed_run["out"]
    events = sorted((out / "logs").iterdir())
    last = train(_dataset(), out, CONFIG, _options(steps=6, checkpoint_every=2, flip=True, jitter=True),
                 progress=False)
    assert last == out / "checkpoints" / "step-000006"
    assert capsys.readouterr().err.strip().endswith("is at step 6, --steps is 6: nothing to train")
    assert sorted((out / "logs").iterdir()) == events
    assert int(_state(last)["step"]) == 6


@pytest.mark.slow
def test_the_trained_folder_loads_as_a_generator(resumed_run: dict) -> None:
    model, config = load_generator(resumed_run["out"])
    assert config == CONFIG
    images = np.asarray(model(np.zeros((2, CONFIG.z_dim), np.float32), training=False))
    assert images.shape == (2, SIZE, SIZE, 3)


@pytest.mark.slow
def test_other_settings_on_the_same_folder_give_a_one_line_error(resumed_run: dict) -> None:
    out = resumed_run["out"]
    before = {name: (out / name).read_bytes() for name in ("config.json", "train.json")}
    other = GanConfig(image_size=SIZE, z_dim=8, base_filters=16)
    with pytest.raises(NoveltyError) as caught:
        train(_dataset(), out, other, _options(steps=8), progress=False)
    message = str(caught.value)
    assert "\n" not in message
    assert "base_filters: saved 8 vs requested 16" in message
    assert "use another --out" in message
    assert {name: (out / name).read_bytes() for name in before} == before


@pytest.mark.slow
@pytest.mark.parametrize(("change", "named"), [
    ({"flip": False}, "flip: saved True vs requested False"),
    ({"jitter": False}, "jitter: saved True vs requested False"),
    ({"learning_rate": 1e-3}, "learning_rate: saved 0.0002 vs requested 0.001"),
    ({"batch_size": 4}, "batch_size: saved 8 vs requested 4"),
    ({"beta_1": 0.9}, "beta_1: saved 0.5 vs requested 0.9"),
    ({"seed": 1}, "seed: saved 0 vs requested 1"),
])
def test_changed_training_settings_on_the_same_folder_are_refused(resumed_run: dict, change: dict,
                                                                   named: str) -> None:
    """Each setting that changes the weights is refused by name, with its old and new value."""
    out = resumed_run["out"]
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    options = _options(**{"steps": 8, "checkpoint_every": 2, "flip": True, "jitter": True, **change})
    with pytest.raises(NoveltyError) as caught:
        train(_dataset(), out, CONFIG, options, progress=False)
    message = str(caught.value)
    assert "\n" not in message and named in message and message.count(": saved ") == 1
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before


@pytest.mark.slow
def test_the_cli_refuses_changed_settings_before_reading_the_data(resumed_run: dict, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from novelty.cli import main

    out = resumed_run["out"]
    result = CliRunner().invoke(main, [
        "train", str(tmp_path / "not-decoded"), "--out", str(out), "--size", str(SIZE), "--z-dim", "8",
        "--base-filters", "8", "--batch-size", str(BATCH), "--flip", "--jitter", "--lr", "0.001"])
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: {out} already holds a training run with other settings "
                                     "(learning_rate: saved 0.0002 vs requested 0.001); use another --out "
                                     "or the same settings to resume")


@pytest.mark.slow
def test_the_cli_resumes_with_the_saved_settings_of_the_flags_left_out(resumed_run: dict, tmp_path: Path) -> None:
    """`novelty train DATA --out RUN` on a folder that holds a run takes its recorded network and recipe for
    every flag left out (a later change of a default does not lock a run out) and says which."""
    from click.testing import CliRunner

    from novelty.cli import main

    data = tmp_path / "images"
    data.mkdir()
    for i, image in enumerate(_images()):
        Image.fromarray(image).save(data / f"{i:02d}.png")
    out = resumed_run["out"]
    result = CliRunner().invoke(main, ["train", str(data), "--out", str(out), "--steps", "6",
                                       "--checkpoint-every", "2"])
    assert result.exit_code == 0, result.output
    assert (f"{out} holds a run: the flags left out take its saved values (--size 32, --z-dim 8, "
            "--base-filters 8, --batch-size 8, --flip, --jitter)") in result.output
    assert "is at step 6, --steps is 6: nothing to train" in result.output
    given = CliRunner().invoke(main, ["train", str(data), "--out", str(out), "--steps", "6", "--no-flip"])
    assert given.exit_code == 1 and "flip: saved True vs requested False" in given.output


def test_a_restarted_stream_is_the_tail_of_the_uninterrupted_one() -> None:
    """augment_and_batch(skip=k) gives exactly the batches after the first k images, across epochs,
    for data of known and of unknown size (shards), with flips and jitter; each epoch is reshuffled."""
    from novelty.images.pipeline import augment_and_batch

    images = _images(10)
    ids = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, SIZE, SIZE, 3), np.uint8)

    def batches(source, count, **kwargs):
        stream = augment_and_batch(source, SIZE, 4, seed=7, flip=True, jitter=True, **kwargs)
        return [b.numpy() for b in stream.take(count)]

    for source in (_dataset(images), _dataset(images).filter(lambda image: True)):  # size known, unknown
        whole = batches(source, 8)
        assert all(np.array_equal(a, b) for a, b in zip(whole, batches(source, 8), strict=True))
        for skip in (4, 12, 24):  # one batch in; epoch 1 from its 3rd image; epoch 2 from its 5th
            tail = batches(source, 8 - skip // 4, skip=skip)
            assert all(np.array_equal(a, b) for a, b in zip(whole[skip // 4:], tail, strict=True)), skip
    # the order: every image once per epoch, and the epochs differ (plain images, so values are ids)
    order = np.concatenate(batches(_dataset(ids), 5))[:, 0, 0, 0]
    order = np.rint((order + 1.0) * 127.5).astype(int)
    assert sorted(order[:10]) == sorted(order[10:20]) == list(range(10))
    assert list(order[:10]) != list(order[10:20])


def test_bad_training_data_is_refused_before_training(tmp_path: Path) -> None:
    import tensorflow as tf

    cases = [
        (_dataset(_images(size=64)), "must be (32, 32, 3) for a 32 px network, received (64, 64, 3)"),
        (tf.data.Dataset.from_tensor_slices(_images().astype(np.float32)), "must be uint8"),
        (_dataset(_images()).batch(4), "received (None, 32, 32, 3)"),
        (_images(), "must be a tf.data dataset"),
    ]
    for dataset, message in cases:
        with pytest.raises(NoveltyError, match=message.replace("(", r"\(").replace(")", r"\)")):
            train(dataset, tmp_path / "run", CONFIG, _options(steps=1), progress=False)
    assert not (tmp_path / "run").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(NoveltyError, match="must be a folder"):
        train(_dataset(), tmp_path / "file", CONFIG, _options(steps=1), progress=False)


def test_empty_training_data_gives_an_error_not_a_hang(tmp_path: Path) -> None:
    empty = np.zeros((0, SIZE, SIZE, 3), np.uint8)
    with pytest.raises(NoveltyError, match="training data is empty"):
        train(_dataset(empty), tmp_path / "run", CONFIG, _options(steps=2), progress=False)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"steps": 0}, "steps must be an integer in the range 1<=x<=10000000, received: 0"),
    ({"batch_size": -1}, "batch_size must be an integer in the range"),
    ({"learning_rate": 0.0}, "learning_rate must be a number in the range 0.0<x<=1.0"),
    ({"strategy": "horovod"}, "unknown strategy 'horovod'; must be one of: auto, default, mirrored, tpu"),
    ({"strategy": "tpu"}, "needs --tpu"),
])
def test_bad_options_raise_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(NoveltyError, match=message):
        TrainOptions(**kwargs)


def test_make_strategy_picks_the_default_strategy_on_a_plain_cpu_machine() -> None:
    import tensorflow as tf

    from novelty.gan.training import make_strategy

    if len(tf.config.list_logical_devices("GPU")) > 1:
        pytest.skip("this machine has several GPUs: auto picks MirroredStrategy")
    for name in ("auto", "default"):
        strategy = make_strategy(name)
        assert strategy is tf.distribute.get_strategy()
        assert strategy.num_replicas_in_sync == 1
        assert not isinstance(strategy, tf.distribute.MirroredStrategy)


def test_augmentation_keeps_shapes_and_range(asymmetric_image) -> None:
    import tensorflow as tf

    from novelty.images.pipeline import augment_and_batch

    image = asymmetric_image(SIZE, SIZE)
    scaled = image.astype(np.float32) / 127.5 - 1.0
    source = tf.data.Dataset.from_tensor_slices(np.repeat(image[None], 16, axis=0))

    plain = next(iter(augment_and_batch(source, SIZE, 16, seed=1)))
    assert plain.shape == (16, SIZE, SIZE, 3) and plain.dtype == tf.float32
    np.testing.assert_allclose(plain.numpy(), np.repeat(scaled[None], 16, axis=0), atol=1e-6)

    flipped = next(iter(augment_and_batch(source, SIZE, 16, seed=1, flip=True))).numpy()
    is_plain = [np.allclose(x, scaled, atol=1e-6) for x in flipped]
    is_mirror = [np.allclose(x, scaled[:, ::-1], atol=1e-6) for x in flipped]
    assert all(p or m for p, m in zip(is_plain, is_mirror, strict=True))
    assert any(is_plain) and any(is_mirror)

    jittered = next(iter(augment_and_batch(source, SIZE, 16, seed=1, flip=True, jitter=True))).numpy()
    assert jittered.shape == (16, SIZE, SIZE, 3)
    assert jittered.min() >= -1.0 and jittered.max() <= 1.0
    assert len({x.tobytes() for x in jittered}) > 1  # random crops differ
    # still the same picture: a crop moves it by a few pixels at most, so it stays far closer to the
    # original (or its mirror) than to the picture turned upside down
    for x in jittered:
        near = min(np.abs(x - scaled).mean(), np.abs(x - scaled[:, ::-1]).mean())
        assert near < 0.5 * np.abs(x - scaled[::-1]).mean()


def _cli_training(tmp_path: Path, checkpoint_every: int, *extra: str, steps: int = 100_000) -> list[str]:
    """``novelty train`` on a folder of 16 noise PNGs (written once), 100,000 steps unless told."""
    folder = tmp_path / "images"
    if not folder.is_dir():
        folder.mkdir()
        for i, image in enumerate(_images()):
            Image.fromarray(image).save(folder / f"{i:02d}.png")
    return [sys.executable, "-m", "novelty.cli", "train", str(folder), "--out", str(tmp_path / "run"),
            "--size", str(SIZE), "--base-filters", str(CONFIG.base_filters), "--z-dim", str(CONFIG.z_dim),
            "--batch-size", str(BATCH), "--steps", str(steps), "--checkpoint-every", str(checkpoint_every),
            "--log-every", "1", *extra]


CLI_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _start_cli_training(tmp_path: Path, checkpoint_every: int, *extra: str) -> tuple[subprocess.Popen, Path, Path]:
    """``novelty train`` for 100,000 steps in the background: it runs until killed."""
    command = _cli_training(tmp_path, checkpoint_every, *extra)
    out, log = tmp_path / "run", tmp_path / "stderr.txt"
    with open(log, "wb") as stderr:  # a file, not a pipe: the progress bar would fill a pipe and block
        # SIGINT as a terminal delivers it, even when pytest itself runs as a background job (whose shell
        # set SIGINT to ignored, which children inherit): the test is about what Ctrl-C does
        process = subprocess.Popen(command, env=CLI_ENV, stdout=subprocess.PIPE, stderr=stderr,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return process, out, log


def _steps_done(log: Path) -> int:
    """The last step count the progress bar of a 100,000-step run wrote to ``log``."""
    counts = re.findall(r"(\d+)/100000", log.read_text(errors="replace"))
    return int(counts[-1]) if counts else 0


def _wait_for(process: subprocess.Popen, log: Path, ready, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"training exited early: {log.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{what} not seen within {timeout} s")
        time.sleep(0.05)


def _kill_when(process: subprocess.Popen, log: Path, ready, what: str) -> None:
    """SIGKILL ``process`` once ``ready()`` holds (as kill -9 would); fail if it exits first."""
    try:
        _wait_for(process, log, ready, what)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    """SIGKILL `novelty train` after its first checkpoint; a new call picks up where it stopped."""
    process, out, log = _start_cli_training(tmp_path, checkpoint_every=2)

    def checkpoint_and_a_while() -> bool:
        if not (out / "checkpoints" / "latest").exists():
            return False
        time.sleep(0.5)  # let it run on, so the kill lands mid-training or mid-save
        return True

    _kill_when(process, log, checkpoint_and_a_while, "a checkpoint")

    name = latest_step(out)
    assert name is not None
    killed_at = int(_state(out / "checkpoints" / name)["step"])
    assert killed_at >= 2 and killed_at % 2 == 0
    assert int(name.removeprefix("step-")) == killed_at

    last = train(_dataset(), out, CONFIG, _options(steps=killed_at + 2, checkpoint_every=2), progress=False)
    assert last == out / "checkpoints" / f"step-{killed_at + 2:06d}"
    state = _state(last)
    assert int(state["step"]) == killed_at + 2
    assert int(state["g_opt/0"]) == killed_at + 2  # nothing lost before the checkpoint, nothing redone
    assert (out / "checkpoints" / "latest").read_text().strip() == last.name
    assert not list((out / "checkpoints").glob(".*"))  # no half-written checkpoint left behind
    load_generator(out)


@pytest.mark.slow
def test_a_run_killed_between_checkpoints_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path: Path) -> None:
    """SIGKILL `novelty train --flip --jitter` at a random step between checkpoints; the same command run
    again says where it resumes and ends with exactly the weights, optimiser and noise state of a run that
    was never interrupted (on one machine; this CPU gives bit-identical results)."""
    every, extra = 100, ("--flip", "--jitter", "--seed", "5")
    # a random step between the first two checkpoints, early enough that the lag of the progress bar
    # (0.1 s, a few dozen steps) does not carry the run past the second
    target = every + random.randint(5, 40)
    process, out, log = _start_cli_training(tmp_path, every, *extra)
    _kill_when(process, log, lambda: _steps_done(log) >= target, f"step {target}")
    seen = _steps_done(log)
    resumed_from = int(latest_step(out).removeprefix("step-"))
    assert resumed_from % every == 0 and resumed_from < seen, (target, seen, resumed_from)  # steps were lost

    steps = resumed_from + every + 7  # redo the lost steps, pass a checkpoint, end between two
    again = subprocess.run(_cli_training(tmp_path, every, *extra, steps=steps), env=CLI_ENV,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"resuming from step {resumed_from} of {steps}" in again.stderr

    from novelty.images.pipeline import training_images

    dataset, _ = training_images(tmp_path / "images", SIZE, progress=False)
    whole = train(dataset, tmp_path / "whole", CONFIG,
                  _options(steps=steps, checkpoint_every=every, flip=True, jitter=True, seed=5), progress=False)
    resumed = _weights(out / "checkpoints" / f"step-{steps:06d}")
    assert _largest_difference(resumed, _weights(whole)) == 0.0, (target, seen, resumed_from)
    assert int(resumed[f"state/{DATA_POSITION}"]) == steps * BATCH


@pytest.mark.slow
def test_a_folder_from_before_saved_input_positions_resumes_with_a_warning(tmp_path: Path, capsys) -> None:
    """An older checkpoint (no input position) and a run recorded on other replicas resume, saying so."""
    out = tmp_path / "run"
    train(_dataset(), out, CONFIG, _options(steps=2), progress=False)
    folder = out / "checkpoints" / "step-000002"
    np.savez(folder / STATE_FILE, **{k: v for k, v in _state(folder).items() if k != DATA_POSITION})
    record = json.loads((out / "train.json").read_text())
    (out / "train.json").write_text(json.dumps({**record, "replicas": 2}))
    capsys.readouterr()
    last = train(_dataset(), out, CONFIG, _options(steps=3), progress=False)
    lines = capsys.readouterr().err.splitlines()
    assert "resuming from step 2 of 3" in lines
    assert any(line.startswith("warning: checkpoint step-000002 predates saved input positions: the data "
                               "stream restarts at image 16") for line in lines), lines
    assert any(line.startswith(f"warning: {out} was trained on 2 replicas, now 1") for line in lines), lines
    state = _state(last)
    assert int(state["step"]) == 3 and int(state[DATA_POSITION]) == 3 * BATCH


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_at_the_current_step(tmp_path: Path) -> None:
    """SIGINT between checkpoints: the step reached is saved, the command says so and exits 130."""
    process, out, log = _start_cli_training(tmp_path, checkpoint_every=100_000)
    try:
        _wait_for(process, log, lambda: _steps_done(log) >= 3, "3 training steps")
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = log.read_text(errors="replace")
    assert process.returncode == 130, stderr[-2000:]
    assert stderr.rstrip().endswith("Interrupted.")
    assert "Traceback" not in stderr
    name = latest_step(out)
    assert name is not None
    step = int(_state(out / "checkpoints" / name)["step"])
    assert step >= 3 and name == f"step-{step:06d}"
    assert (out / "samples" / f"{name}.png").is_file()
    assert [p.name for p in (out / "checkpoints").glob("step-*")] == [name]


@pytest.mark.slow
def test_mirrored_strategy_over_two_logical_cpus(tmp_path: Path) -> None:
    """Two replicas on one CPU: the batch splits, gradients are all-reduced, the replicas stay equal (the
    generator's moving average too), with every recipe option on."""
    script = SETUP + textwrap.dedent("""
        import json
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

        from novelty.gan import training
        captured = {}
        original_init = training._Trainer.__init__
        def init(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            captured["trainer"] = self
        training._Trainer.__init__ = init

        devices = ("/cpu:0", "/cpu:1")
        result = {}
        try:
            train(dataset_from_array(IMAGES), sys.argv[1] + "-odd", CONFIG,
                  TrainOptions(steps=2, batch_size=7, strategy="mirrored", devices=devices), progress=False)
        except NoveltyError as exc:
            result["odd_batch"] = str(exc)
        options = dict(batch_size=8, checkpoint_every=2, log_every=1, grid_size=4, strategy="mirrored",
                       devices=devices, flip=True, jitter=True, ema=0.9, diffaugment="color,translation,cutout",
                       label_smoothing=0.1, quality_every=0)
        train(dataset_from_array(IMAGES), sys.argv[1], CONFIG, TrainOptions(steps=3, **options),
              progress=False)
        trainer = captured["trainer"]
        copies, spread = [], 0.0
        for model in (trainer.generator, trainer.discriminator, trainer.ema_generator):
            for variable in model.trainable_variables:
                values = [v.numpy() for v in variable.value.values]
                copies.append(len(values))
                spread = max(spread, float(np.abs(values[0] - values[1]).max()))
        result.update(copies=sorted(set(copies)), spread=spread)

        # resume a copy from step 2 (as if killed after step 3) to step 5, beside a run never stopped
        import shutil
        shutil.copytree(sys.argv[1], sys.argv[1] + "-resumed")
        shutil.rmtree(sys.argv[1] + "-resumed/checkpoints/step-000003")
        with open(sys.argv[1] + "-resumed/checkpoints/latest", "w") as pointer:
            pointer.write("step-000002\\n")
        for name in ("-resumed", "-whole"):
            train(dataset_from_array(IMAGES), sys.argv[1] + name, CONFIG, TrainOptions(steps=5, **options),
                  progress=False)
        print("RESULT " + json.dumps(result))
    """)
    out = tmp_path / "mirrored"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", script, str(out)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.split("RESULT ", 1)[1])

    assert "global batch size 7 does not split over 2 replicas" in result["odd_batch"]
    assert not (tmp_path / "mirrored-odd" / "train.json").exists()
    assert result["copies"] == [2]  # every trainable variable is mirrored on both devices
    assert result["spread"] == 0.0  # and the copies stayed identical: gradients were all-reduced
    # the distributed input stream restarts where it stopped: resumed == uninterrupted, bit for bit
    resumed, whole = (_weights(tmp_path / name / "checkpoints" / "step-000005")
                      for name in ("mirrored-resumed", "mirrored-whole"))
    assert _largest_difference(resumed, whole) == 0.0
    assert "resuming from step 2 of 5" in done.stderr

    record = json.loads((out / "train.json").read_text())
    assert record["replicas"] == 2 and record["strategy"] == "MirroredStrategy"
    assert latest_step(out) == "step-000003"
    assert int(_state(out / "checkpoints" / "step-000003")["step"]) == 3
    assert (out / "samples" / "step-000002.png").is_file()
    logged = _logged(out)
    assert [step for step, _ in logged["d_loss"]] == [1, 2, 3]
    assert all(np.isfinite(v) for tag in ("d_loss", "g_loss") for _, v in logged[tag])
    load_generator(out)  # weights written from a mirrored run load into a plain model


def test_a_resumed_run_clears_what_a_killed_save_left(tmp_path: Path) -> None:
    """A kill during a save can leave ``.step-*.partial`` or the temporary file of the ``latest`` write;
    the next save of a resumed run removes them (only the loop writes these names)."""
    out = tmp_path / "run"
    train(_dataset(), out, CONFIG, _options(steps=2, checkpoint_every=2), progress=False)
    checkpoints = out / "checkpoints"
    (checkpoints / ".latest.abc123.tmp").write_text("step-000004\n")
    (checkpoints / ".step-000004.partial").mkdir()
    (checkpoints / ".step-000004.partial" / "config.json").write_text("{}")
    keep = checkpoints / "notes.txt"  # anything else in the folder is not the loop's to remove
    keep.write_text("mine")
    last = train(_dataset(), out, CONFIG, _options(steps=4, checkpoint_every=2), progress=False)
    assert last.name == "step-000004"
    assert not list(checkpoints.glob(".*"))
    assert keep.read_text() == "mine"
