"""The training loop every generator family shares: tf.distribute, checkpoints, resume, grids, TensorBoard.

Layout of a training folder (``--out``)::

    config.json                    the family's network config
    train.json                     the training options and the data source, for the record
    checkpoints/step-000500/       config.json, the family's weights, state.npz (optimisers, RNG, step,
                                   input position)
    checkpoints/latest             name of the newest complete checkpoint
    samples/step-000500.png        the family's sample grid at each checkpoint
    logs/                          TensorBoard scalars (what the step and the hooks return)

A checkpoint folder is written under a temporary name and renamed when complete, and ``latest`` is
replaced atomically after that, so a crash or kill at any moment resumes from the last complete
checkpoint. A checkpoint holds everything the next step depends on: the family's weights and state
(:meth:`~novelty.gan.family.GeneratorFamily.state_arrays`), the step and the input position (elements
consumed); the family's input stream is a pure function of its seed and that position, so a resumed
run gives the same weights as an uninterrupted one. Settings that change the result cannot change on
an existing folder (the family's ``result_options``). The loop knows families only through
:class:`~novelty.gan.family.GeneratorFamily` and later stages only through
:class:`~novelty.gan.family.TrainingHook`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from novelty.errors import NoveltyError
from novelty.files import read_json, write_json, write_text
from novelty.gan.dcgan import latest_checkpoint, step_folders
from novelty.gan.family import GeneratorFamily, TrainingHook
from novelty.images.decode import save_png

STRATEGIES = ("auto", "default", "mirrored", "tpu")
KEEP_CHECKPOINTS = 3
STATE_FILE = "state.npz"
STEP = "step"
DATA_POSITION = "data/elements"  # elements the run has consumed from the input stream


def make_strategy(strategy: str = "auto", tpu: str | None = None,
                  devices: tuple[str, ...] | None = None):
    """TPUStrategy when a TPU is named, MirroredStrategy for several GPUs (or given devices), else default."""
    import tensorflow as tf

    if tpu or strategy == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    gpus = tf.config.list_logical_devices("GPU")
    if strategy == "mirrored" or (strategy == "auto" and (devices or len(gpus) > 1)):
        return tf.distribute.MirroredStrategy(devices=list(devices) if devices else None)
    return tf.distribute.get_strategy()


def latest_step(out: Path) -> str | None:
    """Name of the newest complete checkpoint in training folder ``out`` (``step-NNNNNN``), or None."""
    found = latest_checkpoint(out, STATE_FILE)
    return found.name if found is not None else None


def check_resume(out: Path, config, options, result_options: Sequence[str]) -> dict:
    """Refuse another network or another value of ``result_options`` on a folder that holds a run.

    Returns the folder's earlier ``train.json`` record ({} for a new folder or one without it).
    """
    saved_path = out / "config.json"
    if not saved_path.is_file():
        return {}
    saved = type(config).load(out).to_dict()
    requested = config.to_dict()
    try:  # train.json records the options; a folder from before it, or a damaged one, has none to compare
        record = read_json(out / "train.json")
        saved_options = dict(record["options"])
    except (OSError, ValueError, KeyError, TypeError):
        record, saved_options = {}, {}
    for name in result_options:
        if name in saved_options:
            saved[name], requested[name] = saved_options[name], _jsonable(getattr(options, name))
    diffs = [f"{k}: saved {_shown(saved[k])} vs requested {_shown(requested[k])}"
             for k in requested if saved.get(k) != requested[k]]
    if diffs:
        raise NoveltyError(
            f"{out} already holds a training run with other settings ({'; '.join(diffs)}); "
            "use another --out or the same settings to resume"
        )
    return record


def _clear_scratch(checkpoints: Path) -> None:
    """Remove what a killed save of this loop left in ``checkpoints``: a ``.step-*.partial`` folder, or
    the temporary file of an atomic ``latest`` write (``files.atomic_open``). Only the loop writes
    these names, one save at a time, so any found before a save are stale."""
    for partial in checkpoints.glob(".step-*.partial"):
        shutil.rmtree(partial, ignore_errors=True)
    for scratch in checkpoints.glob(".latest.*.tmp"):
        scratch.unlink(missing_ok=True)


class _Run:
    """One call's place in a training folder: the built family, its step and its input position."""

    def __init__(self, out: Path, family: GeneratorFamily):
        self.out, self.family = out, family
        self.step = 0
        self.position: int | None = 0  # elements consumed; None when a restored checkpoint did not say
        self.saved_step = -1  # the step whose checkpoint is on disk, so an interrupt does not re-save it

    def save(self) -> Path:
        """Write checkpoint ``step-NNNNNN`` atomically, point ``latest`` at it, save its grid, prune."""
        name = f"step-{self.step:06d}"
        checkpoints = self.out / "checkpoints"
        final = checkpoints / name
        tmp = checkpoints / f".{name}.partial"
        _clear_scratch(checkpoints)
        tmp.mkdir(parents=True)
        self.family.save_weights(tmp)
        state = self.family.state_arrays()
        state[STEP] = np.asarray(self.step, np.int64)
        state[DATA_POSITION] = np.asarray(self.position, np.int64)
        np.savez(tmp / STATE_FILE, **state)  # last: a folder without it is incomplete
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        write_text(checkpoints / "latest", name + "\n")
        save_png(self.family.sample_grid(), self.out / "samples" / f"{name}.png")
        for old in step_folders(checkpoints, STATE_FILE)[:-KEEP_CHECKPOINTS]:
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
        self.saved_step = self.step
        return final

    def restore(self, folder: Path) -> None:
        self.family.load_weights(folder)
        with np.load(folder / STATE_FILE) as state:
            self.family.load_state(state)
            self.step = int(state[STEP])
            self.position = int(state[DATA_POSITION]) if DATA_POSITION in state.files else None
        self.saved_step = self.step


def train(family: type[GeneratorFamily], dataset, out: str | os.PathLike, config, options, *,
          source: str = "", progress: bool = True, strategy=None,
          hooks: Sequence[TrainingHook] = ()) -> Path:
    """Train ``family`` on ``dataset`` into folder ``out``, resuming if it holds a run of the same settings.

    Returns the folder of the last checkpoint. Nothing is written before the data, the folder, the
    settings, the strategy and every hook's :meth:`~novelty.gan.family.TrainingHook.check` pass.
    """
    out = Path(out)
    family.check_data(dataset, config)
    if out.exists() and not out.is_dir():
        raise NoveltyError(f"--out must be a folder, received a file: {out}")
    out.mkdir(parents=True, exist_ok=True)
    earlier = check_resume(out, config, options, family.result_options)
    strategy = strategy or make_strategy(options.strategy, options.tpu, options.devices)
    replicas = strategy.num_replicas_in_sync
    if options.batch_size % replicas:
        raise NoveltyError(
            f"global batch size {options.batch_size} does not split over {replicas} replicas"
        )
    for hook in hooks:
        hook.check()
    if earlier.get("replicas", replicas) != replicas:
        _say(f"warning: {out} was trained on {earlier['replicas']} replicas, now {replicas}: batch norm "
             "statistics and noise split differently, so the run will not match an uninterrupted one")
    _record(out, config, options, source, strategy)
    run = _Run(out, family(config, options, strategy))
    finished = _resume(run, options)
    if finished is not None:
        return finished
    for hook in hooks:
        hook.start(run.step, options.steps)
    batches = run.family.input_stream(dataset, run.position)
    return _steps(run, iter(strategy.experimental_distribute_dataset(batches)), options, hooks, progress)


def _record(out: Path, config, options, source: str, strategy) -> None:
    """The folder's ``config.json`` and ``train.json`` (options, data source, replicas, versions)."""
    import tensorflow as tf

    config.save(out)
    record = {"config": config.to_dict(), "options": _jsonable(dataclasses.asdict(options)),
              "source": source, "replicas": strategy.num_replicas_in_sync,
              "strategy": type(strategy).__name__, "tensorflow": tf.__version__}
    write_json(out / "train.json", record)


def _resume(run: _Run, options) -> Path | None:
    """Restore the newest checkpoint, if any; returns it when it already reached ``--steps``, else None."""
    resume = latest_step(run.out)
    if not resume:
        return None
    run.restore(run.out / "checkpoints" / resume)
    if run.step >= options.steps:
        _say(f"{run.out} is at step {run.step}, --steps is {options.steps}: nothing to train")
        return run.out / "checkpoints" / resume
    _say(f"resuming from step {run.step} of {options.steps}")
    if run.position is None:
        run.position = run.step * options.batch_size
        _say(f"warning: checkpoint {resume} predates saved input positions: the data stream restarts "
             f"at image {run.position}, so this run will not match an uninterrupted one")
    return None


def _steps(run: _Run, iterator, options, hooks: Sequence[TrainingHook], progress: bool) -> Path:
    """Step until ``--steps``, logging, calling the hooks and checkpointing; a checkpoint on Ctrl-C."""
    import tensorflow as tf
    from tqdm.auto import tqdm

    writer = tf.summary.create_file_writer(str(run.out / "logs"))
    bar = tqdm(total=options.steps, initial=run.step, desc="training", unit="step", disable=not progress)
    last = None
    started, first_step = time.perf_counter(), run.step
    try:
        while run.step < options.steps:
            metrics = run.family.distributed_step(next(iterator))
            run.step += 1
            run.position += options.batch_size
            bar.update(1)
            if run.step % options.log_every == 0 or run.step == options.steps:
                values = {k: float(v) for k, v in metrics.items()}
                bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()})
                rate = (run.step - first_step) / max(time.perf_counter() - started, 1e-9)
                _log(writer, run.step, {**values, "steps_per_second": rate})
            for hook in hooks:
                _log(writer, run.step, hook.after_step(run.step, run.family))
            if run.step % options.checkpoint_every == 0 or run.step == options.steps:
                last = run.save()
    except KeyboardInterrupt:
        if run.step != run.saved_step:
            run.save()
        raise
    finally:
        bar.close()
        writer.flush()
    return last


def _log(writer, step: int, scalars: dict[str, float]) -> None:
    """TensorBoard scalars at ``step``, by name."""
    import tensorflow as tf

    if scalars:
        with writer.as_default(step=step):
            for name, value in scalars.items():
                tf.summary.scalar(name, value)


def _say(message: str) -> None:
    """One line for the person at the terminal (stderr, beside the progress bar)."""
    print(message, file=sys.stderr, flush=True)


def _shown(value) -> str:
    """A setting as the command line spells it: a list of names comma-separated ('' as none)."""
    return ",".join(value) or "none" if isinstance(value, list) else str(value)


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=list))
