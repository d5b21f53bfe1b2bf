"""Train a DCGAN with tf.distribute: checkpoints, automatic resume, sample grids, TensorBoard.

Layout of a training folder (``--out``)::

    config.json                    GanConfig
    train.json                     the training options and the data source, for the record
    checkpoints/step-000500/       config.json, generator/discriminator weights, optimizer + RNG state
    checkpoints/latest             name of the newest complete checkpoint
    samples/step-000500.png        fixed-noise grid at each checkpoint
    logs/                          TensorBoard scalars
    quality.csv, quality.png       block5_pool PRDC while training (novelty.gan.tracking)

With ``--ema`` a checkpoint's ``generator.weights.h5`` holds the averaged generator (what is sampled
and loaded by ``generate`` and ``analyze``) and ``generator.training.weights.h5`` the one trained.

A checkpoint folder is written under a temporary name and renamed when complete, and ``latest`` is
replaced atomically after that, so a crash or kill at any moment resumes from the last complete
checkpoint. A checkpoint holds everything the next step depends on: weights, both optimisers, the
noise generator's state and the input position (images consumed); the input stream is a pure
function of the seed and that position (:func:`novelty.images.pipeline.augment_and_batch`), so a resumed
run gives the same weights as an uninterrupted one. Settings that change the result cannot change
on an existing folder (:data:`RESULT_OPTIONS`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from novelty import bounds, defaults
from novelty.errors import NoveltyError
from novelty.files import read_json, write_json, write_text
from novelty.gan.dcgan import (
    DISCRIMINATOR_FILE,
    GENERATOR_FILE,
    GanConfig,
    build_discriminator,
    build_generator,
    latest_checkpoint,
    step_folders,
)
from novelty.gan.recipe import diff_augment, ema_decay, parse_diffaugment, update_ema
from novelty.gan.tracking import METRICS, keep_until

STRATEGIES = ("auto", "default", "mirrored", "tpu")
KEEP_CHECKPOINTS = 3
STATE_FILE = "state.npz"
DATA_POSITION = "data/elements"  # images the run has consumed from the input stream
# Training options that change the weights a run reaches; the others (steps, checkpoint and log
# intervals, grid size, strategy) may change between calls on one folder.
RESULT_OPTIONS = ("batch_size", "learning_rate", "beta_1", "seed", "flip", "jitter", "ema", "diffaugment",
                  "label_smoothing")
TRAINING_GENERATOR_FILE = "generator.training.weights.h5"  # with --ema: the generator being trained


@dataclass(frozen=True)
class TrainOptions:
    """How to train: the loop, the optimiser, augmentation and distribution."""

    steps: int = defaults.STEPS
    batch_size: int = defaults.BATCH_SIZE  # global: split over replicas
    learning_rate: float = defaults.LEARNING_RATE
    beta_1: float = defaults.BETA_1
    checkpoint_every: int = defaults.CHECKPOINT_EVERY
    log_every: int = defaults.LOG_EVERY
    seed: int = defaults.SEED
    flip: bool = False
    jitter: bool = False
    strategy: str = "auto"
    tpu: str | None = None
    devices: tuple[str, ...] | None = None  # explicit devices for MirroredStrategy
    grid_size: int = defaults.GRID_SIZE
    ema: float = defaults.EMA  # decay of the generator's moving average; 0 = off
    diffaugment: tuple[str, ...] = ()  # DiffAugment policies (novelty.gan.recipe.DIFFAUGMENT_POLICIES)
    label_smoothing: float = defaults.LABEL_SMOOTHING  # one-sided: real target 1 - this
    quality_every: int = defaults.QUALITY_EVERY  # steps between PRDC evaluations; 0 = off
    quality_samples: int = defaults.QUALITY_SAMPLES
    weights: str = defaults.WEIGHTS  # VGG16 weights of the PRDC evaluations

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "log_every", "learning_rate", "beta_1", "seed",
                     "ema", "label_smoothing", "quality_every", "quality_samples"):
            bounds.check(name, getattr(self, name))  # the fields are named as their ranges in defaults.RANGES
        object.__setattr__(self, "diffaugment", parse_diffaugment(self.diffaugment))
        if self.grid_size < 1:
            raise NoveltyError(f"grid_size must be positive, received: {self.grid_size}")
        if self.strategy not in STRATEGIES:
            raise NoveltyError(f"unknown strategy {self.strategy!r}; must be one of: {', '.join(STRATEGIES)}")
        if self.strategy == "tpu" and not self.tpu:
            raise NoveltyError("strategy 'tpu' needs --tpu NAME (a TPU name or grpc:// address)")


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


class _Trainer:
    """Holds models, optimisers and the compiled distributed step for one training folder."""

    def __init__(self, config: GanConfig, options: TrainOptions, strategy):
        import keras
        import tensorflow as tf

        self.config, self.options, self.strategy = config, options, strategy
        keras.utils.set_random_seed(options.seed)
        with strategy.scope():
            self.generator = build_generator(config)
            self.discriminator = build_discriminator(config)
            self.g_opt = keras.optimizers.Adam(options.learning_rate, beta_1=options.beta_1)
            self.d_opt = keras.optimizers.Adam(options.learning_rate, beta_1=options.beta_1)
            self.g_opt.build(self.generator.trainable_variables)
            self.d_opt.build(self.discriminator.trainable_variables)
            self.rng = tf.random.Generator.from_seed(options.seed)
            self.ema_generator = None  # the averaged generator, sampled and saved, under --ema
            if options.ema:
                self.ema_generator = build_generator(config)
                self.ema_generator.set_weights(self.generator.get_weights())
        self.step = 0
        self.position: int | None = 0  # images consumed; None when a restored checkpoint did not say
        self.saved_step = -1  # the step whose checkpoint is on disk, so an interrupt does not re-save it
        bce = keras.losses.BinaryCrossentropy(from_logits=True, reduction="none")
        global_batch = options.batch_size
        z_dim = config.z_dim
        real_target = 1.0 - options.label_smoothing

        def judge(images):
            if options.diffaugment:
                images = diff_augment(images, options.diffaugment, self.rng)
            return self.discriminator(images, training=True)

        def replica_step(real):
            n = tf.shape(real)[0]
            z = self.rng.normal([n, z_dim])
            with tf.GradientTape() as d_tape:
                fake = self.generator(z, training=True)
                real_logits = judge(real)
                fake_logits = judge(fake)
                per_example = (bce(tf.fill(tf.shape(real_logits), real_target), real_logits)
                               + bce(tf.zeros_like(fake_logits), fake_logits))
                d_loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            d_vars = self.discriminator.trainable_variables
            self.d_opt.apply_gradients(zip(d_tape.gradient(d_loss, d_vars), d_vars, strict=True))
            z = self.rng.normal([n, z_dim])
            with tf.GradientTape() as g_tape:
                fake_logits = judge(self.generator(z, training=True))
                g_loss = tf.nn.compute_average_loss(
                    bce(tf.ones_like(fake_logits), fake_logits), global_batch_size=global_batch)
            g_vars = self.generator.trainable_variables
            self.g_opt.apply_gradients(zip(g_tape.gradient(g_loss, g_vars), g_vars, strict=True))
            d_real = tf.nn.compute_average_loss(tf.sigmoid(real_logits)[:, 0], global_batch_size=global_batch)
            d_fake = tf.nn.compute_average_loss(tf.sigmoid(fake_logits)[:, 0], global_batch_size=global_batch)
            return {"d_loss": d_loss, "g_loss": g_loss, "d_real": d_real, "d_fake": d_fake}

        @tf.function
        def distributed_step(batch):
            per_replica = strategy.run(replica_step, args=(batch,))
            if self.ema_generator is not None:  # cross-replica context: every copy gets the same update
                update_ema(self.ema_generator.variables, self.generator.variables,
                           ema_decay(options.ema, self.g_opt.iterations))
            return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                    for k, v in per_replica.items()}

        self.distributed_step = distributed_step

    @property
    def sampler(self):
        """The generator that is sampled and saved: the averaged one under --ema, else the trained one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    # ---- checkpoint state -------------------------------------------------------------------
    def _state_arrays(self) -> dict[str, np.ndarray]:
        state = {f"g_opt/{i}": np.asarray(v) for i, v in enumerate(self.g_opt.variables)}
        state.update({f"d_opt/{i}": np.asarray(v) for i, v in enumerate(self.d_opt.variables)})
        state["rng"] = self.rng.state.numpy()
        state["step"] = np.asarray(self.step, np.int64)
        state[DATA_POSITION] = np.asarray(self.position, np.int64)
        return state

    def save(self, out: Path, grid_noise: np.ndarray) -> Path:
        from novelty.images.decode import grid, save_png

        name = f"step-{self.step:06d}"
        checkpoints = out / "checkpoints"
        final = checkpoints / name
        tmp = checkpoints / f".{name}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.config.save(tmp)
        self.sampler.save_weights(tmp / GENERATOR_FILE)
        if self.ema_generator is not None:
            self.generator.save_weights(tmp / TRAINING_GENERATOR_FILE)
        self.discriminator.save_weights(tmp / DISCRIMINATOR_FILE)
        np.savez(tmp / STATE_FILE, **self._state_arrays())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        write_text(checkpoints / "latest", name + "\n")
        samples = to_uint8(self.sampler(grid_noise, training=False))
        save_png(grid(samples), out / "samples" / f"{name}.png")
        self._prune(checkpoints, keep=name)
        self.saved_step = self.step
        return final

    def _prune(self, checkpoints: Path, keep: str) -> None:
        done = step_folders(checkpoints, STATE_FILE)
        for old in done[:-KEEP_CHECKPOINTS]:
            if old.name != keep:
                shutil.rmtree(old, ignore_errors=True)

    def restore(self, folder: Path) -> None:
        trained = folder / TRAINING_GENERATOR_FILE
        self.generator.load_weights(trained if self.ema_generator is not None and trained.is_file()
                                    else folder / GENERATOR_FILE)
        if self.ema_generator is not None:
            self.ema_generator.load_weights(folder / GENERATOR_FILE)
        self.discriminator.load_weights(folder / DISCRIMINATOR_FILE)
        with np.load(folder / STATE_FILE) as state:
            for i, v in enumerate(self.g_opt.variables):
                v.assign(state[f"g_opt/{i}"])
            for i, v in enumerate(self.d_opt.variables):
                v.assign(state[f"d_opt/{i}"])
            self.rng.reset(state["rng"])
            self.step = int(state["step"])
            self.position = int(state[DATA_POSITION]) if DATA_POSITION in state.files else None
        self.saved_step = self.step


def to_uint8(images) -> np.ndarray:
    """Generator output in [-1, 1], ``(N, H, W, 3)`` -> uint8 with the same layout."""
    arr = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((arr + 1.0) * 127.5), 0, 255).astype(np.uint8)


def fixed_noise(n: int, z_dim: int, seed: int) -> np.ndarray:
    """The seeded latent vectors used for grids and generation: ``(n, z_dim)`` float32."""
    return np.random.default_rng(seed).standard_normal((n, z_dim)).astype(np.float32)


def check_resume(out: Path, config: GanConfig, options: TrainOptions) -> dict:
    """Refuse another network or another :data:`RESULT_OPTIONS` value on a folder that holds a run.

    Returns the folder's earlier ``train.json`` record ({} for a new folder or one without it).
    """
    saved_path = out / "config.json"
    if not saved_path.is_file():
        return {}
    saved = GanConfig.load(out).to_dict()
    requested = config.to_dict()
    try:  # train.json records the options; a folder from before it, or a damaged one, has none to compare
        record = read_json(out / "train.json")
        saved_options = dict(record["options"])
    except (OSError, ValueError, KeyError, TypeError):
        record, saved_options = {}, {}
    for name in RESULT_OPTIONS:
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


def train(dataset, out: str | os.PathLike, config: GanConfig, options: TrainOptions, *,
          source: str = "", progress: bool = True, strategy=None) -> Path:
    """Train on ``dataset`` (single uint8 images) into folder ``out``, resuming if it holds a run.

    Returns the folder of the last checkpoint. ``dataset`` is an unbatched tf.data dataset of
    ``(size, size, 3)`` uint8 images (see :mod:`novelty.images.pipeline`).
    """
    import tensorflow as tf
    from tqdm.auto import tqdm

    from novelty.images.pipeline import augment_and_batch

    out = Path(out)
    _check_dataset(dataset, config.image_size)
    if out.exists() and not out.is_dir():
        raise NoveltyError(f"--out must be a folder, received a file: {out}")
    out.mkdir(parents=True, exist_ok=True)
    earlier = check_resume(out, config, options)
    strategy = strategy or make_strategy(options.strategy, options.tpu, options.devices)
    replicas = strategy.num_replicas_in_sync
    if options.batch_size % replicas:
        raise NoveltyError(
            f"global batch size {options.batch_size} does not split over {replicas} replicas"
        )
    tracker = None
    if options.quality_every:  # resolves --weights now: a missing weights file stops before any training
        from novelty.gan.tracking import QualityTracker

        try:
            tracker = QualityTracker(out, dataset, options.weights, options.quality_samples, options.seed,
                                     config.z_dim)
        except NoveltyError as exc:
            raise NoveltyError(f"{exc} (for the quality curve; --quality-every 0 turns it off)") from None
    if earlier.get("replicas", replicas) != replicas:
        _say(f"warning: {out} was trained on {earlier['replicas']} replicas, now {replicas}: batch norm "
             "statistics and noise split differently, so the run will not match an uninterrupted one")
    config.save(out)
    record = {"config": config.to_dict(), "options": _jsonable(dataclasses.asdict(options)),
              "source": source, "replicas": replicas,
              "strategy": type(strategy).__name__, "tensorflow": tf.__version__}
    write_json(out / "train.json", record)

    trainer = _Trainer(config, options, strategy)
    resume = latest_step(out)
    if resume:
        trainer.restore(out / "checkpoints" / resume)
        if trainer.step >= options.steps:
            _say(f"{out} is at step {trainer.step}, --steps is {options.steps}: nothing to train")
            return out / "checkpoints" / resume
        _say(f"resuming from step {trainer.step} of {options.steps}")
        if trainer.position is None:
            trainer.position = trainer.step * options.batch_size
            _say(f"warning: checkpoint {resume} predates saved input positions: the data stream restarts "
                 f"at image {trainer.position}, so this run will not match an uninterrupted one")

    keep_until(out, trainer.step)  # the quality rows of steps this call redoes
    if tracker is not None and options.steps // options.quality_every > trainer.step // options.quality_every:
        tracker.prepare()  # an evaluation is due in this call: embed (or load) the training side now, so
        # that too little data or unusable weights stop the call before it trains, not at its first evaluation
    batches = augment_and_batch(dataset, config.image_size, options.batch_size, seed=options.seed,
                                flip=options.flip, jitter=options.jitter, skip=trainer.position)
    iterator = iter(strategy.experimental_distribute_dataset(batches))
    grid_noise = fixed_noise(options.grid_size, config.z_dim, options.seed)
    writer = tf.summary.create_file_writer(str(out / "logs"))
    bar = tqdm(total=options.steps, initial=trainer.step, desc="training", unit="step",
               disable=not progress)
    last = None
    started, first_step = time.perf_counter(), trainer.step
    try:
        while trainer.step < options.steps:
            metrics = trainer.distributed_step(next(iterator))
            trainer.step += 1
            trainer.position += options.batch_size
            bar.update(1)
            if trainer.step % options.log_every == 0 or trainer.step == options.steps:
                values = {k: float(v) for k, v in metrics.items()}
                bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()})
                with writer.as_default(step=trainer.step):
                    for k, v in values.items():
                        tf.summary.scalar(k, v)
                    rate = (trainer.step - first_step) / max(time.perf_counter() - started, 1e-9)
                    tf.summary.scalar("steps_per_second", rate)
            if tracker is not None and trainer.step % options.quality_every == 0:
                quality = tracker.evaluate(trainer.sampler, trainer.step)
                with writer.as_default(step=trainer.step):
                    for name in METRICS:
                        tf.summary.scalar(f"quality/{name}", quality[name])
            if trainer.step % options.checkpoint_every == 0 or trainer.step == options.steps:
                last = trainer.save(out, grid_noise)
    except KeyboardInterrupt:
        if trainer.step != trainer.saved_step:
            trainer.save(out, grid_noise)
        raise
    finally:
        bar.close()
        writer.flush()
    return last


def _say(message: str) -> None:
    """One line for the person at the terminal (stderr, beside the progress bar)."""
    print(message, file=sys.stderr, flush=True)


def _check_dataset(dataset, size: int) -> None:
    """Refuse a dataset whose elements are not single uint8 ``(size, size, 3)`` images, before tracing."""
    spec = getattr(dataset, "element_spec", None)
    shape, dtype = getattr(spec, "shape", None), getattr(spec, "dtype", None)
    if shape is None or dtype is None:
        raise NoveltyError(f"training data must be a tf.data dataset of single images, received {spec!r}")
    if dtype.name != "uint8":
        raise NoveltyError(f"training images must be uint8 (0-255), received {dtype.name}")
    if shape.rank is None:
        return
    dims = tuple(shape.as_list())
    wanted = (size, size, 3)
    if len(dims) != 3 or any(d not in (None, w) for d, w in zip(dims, wanted, strict=True)):
        raise NoveltyError(f"training images must be {wanted} for a {size} px network, received {dims}")


def _shown(value) -> str:
    """A setting as the command line spells it: a list of names comma-separated ('' as none)."""
    return ",".join(value) or "none" if isinstance(value, list) else str(value)


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=list))
