"""pix2pix as a generator family of the shared training loop: options, the training step, held-out pairs.

The networks are :mod:`novelty.gan.pix2pix`'s. The step is the tutorial's: the discriminator's loss is
BCE(real pair -> 1) + BCE(generated pair -> 0), the generator's BCE(generated pair -> 1) + lambda x
mean |target - G(input)| (lambda = ``--l1-lambda``, 100), each averaged over the global batch; Adam
2e-4, beta1 0.5 for both. Besides the loop's files (see :mod:`novelty.gan.loop`) a pix2pix training
folder holds::

    holdout.json    the ids of the pairs kept aside (never trained on) for judging, with the
                    fraction and seed that drew them and the data source
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from novelty import bounds, defaults
from novelty.errors import NoveltyError
from novelty.files import write_json
from novelty.gan.dcgan import DISCRIMINATOR_FILE, GENERATOR_FILE
from novelty.gan.family import (
    GeneratorFamily,
    LoopOptions,
    TrainingHook,
    adam_optimizers,
    check_image_spec,
    load_variables_state,
    to_uint8,
    variables_state,
)
from novelty.gan.pix2pix import ARCHITECTURE, Pix2PixConfig, build_patch_discriminator, build_unet
from novelty.images.decode import grid
from novelty.images.pipeline import augment_pairs_and_batch

HOLDOUT_FILE = "holdout.json"


@dataclass(frozen=True)
class Pix2PixOptions(LoopOptions):
    """How to train pix2pix: the loop's fields, the L1 weight, cross-flip, the held-out share."""

    l1_lambda: float = defaults.L1_LAMBDA
    cross_flip: bool = False
    holdout: float = defaults.PAIR_HOLDOUT
    grid_size: int = defaults.PAIR_GRID_ROWS

    def __post_init__(self) -> None:
        super().__post_init__()
        bounds.check("l1_lambda", self.l1_lambda)
        bounds.check("pair_holdout", self.holdout, "holdout")


class Pix2Pix(GeneratorFamily):
    """The U-Net, the PatchGAN, their optimisers and the compiled distributed step for one training call."""

    name = ARCHITECTURE
    result_options = ("batch_size", "learning_rate", "beta_1", "seed", "l1_lambda", "flip", "jitter", "cross_flip",
                      "holdout")

    def __init__(self, config: Pix2PixConfig, options: Pix2PixOptions, strategy):
        import keras
        import tensorflow as tf

        self.config, self.options, self.strategy = config, options, strategy
        keras.utils.set_random_seed(options.seed)
        with strategy.scope():
            self.generator = build_unet(config)
            self.discriminator = build_patch_discriminator(config)
            self.g_opt, self.d_opt = adam_optimizers(options, self.generator, self.discriminator)
        # dropout's random state: not in the weights files, so saved with the optimisers for exact resume
        self.dropout_states = [layer.seed_generator.state for layer in self.generator.layers
                               if isinstance(layer, keras.layers.Dropout)]
        self.grid_pairs: tuple[np.ndarray, np.ndarray] | None = None
        replica_step = self._replica_step()

        @tf.function
        def step(sources, targets):
            per_replica = strategy.run(replica_step, args=(sources, targets))
            return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}

        self._step = step

    def _replica_step(self):
        import keras
        import tensorflow as tf

        bce = keras.losses.BinaryCrossentropy(from_logits=True, reduction="none")
        global_batch, l1_lambda = self.options.batch_size, self.options.l1_lambda

        def per_example(values):  # (n, ...) -> (n,): the mean over patches or pixels
            return tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)

        def average(values):
            return tf.nn.compute_average_loss(per_example(values), global_batch_size=global_batch)

        def replica_step(sources, targets):
            with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
                generated = self.generator(sources, training=True)
                real_logits = self.discriminator([sources, targets], training=True)
                fake_logits = self.discriminator([sources, generated], training=True)
                d_loss = average(bce(tf.ones_like(real_logits), real_logits)
                                 + bce(tf.zeros_like(fake_logits), fake_logits))
                gan_loss = average(bce(tf.ones_like(fake_logits), fake_logits))
                l1 = average(tf.abs(targets - generated))
                g_loss = gan_loss + l1_lambda * l1
            g_vars, d_vars = self.generator.trainable_variables, self.discriminator.trainable_variables
            self.g_opt.apply_gradients(zip(g_tape.gradient(g_loss, g_vars), g_vars, strict=True))
            self.d_opt.apply_gradients(zip(d_tape.gradient(d_loss, d_vars), d_vars, strict=True))
            return {"d_loss": d_loss, "g_loss": g_loss, "g_gan": gan_loss, "l1": l1}

        return replica_step

    @classmethod
    def check_data(cls, dataset, config: Pix2PixConfig) -> None:
        """Refuse a dataset whose elements are not ``(input, target)`` pairs of uint8 ``(size, size, 3)`` images."""
        size = config.image_size
        spec = getattr(dataset, "element_spec", None)
        if not isinstance(spec, tuple) or len(spec) != 2:
            raise NoveltyError(f"pix2pix trains on (input, target) pairs of images, received {spec!r}")
        for part in spec:
            if getattr(part, "dtype", None) is None or getattr(part, "shape", None) is None:
                raise NoveltyError(f"pix2pix trains on (input, target) pairs of images, received {spec!r}")
            check_image_spec(part, size, "pair images")

    def input_stream(self, dataset, skip: int):
        """Shuffled global batches of ``(inputs, targets)`` in [-1, 1], both halves jittered and flipped alike."""
        options = self.options
        if self.grid_pairs is None:
            first = list(dataset.take(options.grid_size).as_numpy_iterator())
            self.grid_pairs = (np.stack([s for s, _ in first]), np.stack([t for _, t in first]))
        return augment_pairs_and_batch(dataset, self.config.image_size, options.batch_size, seed=options.seed,
                                       flip=options.flip, jitter=options.jitter, cross_flip=options.cross_flip,
                                       skip=skip)

    def distributed_step(self, batch) -> dict:
        return self._step(*batch)

    @property
    def sampler(self):
        return self.generator

    def save_weights(self, folder: Path) -> None:
        self.config.save(folder)
        self.generator.save_weights(folder / GENERATOR_FILE)
        self.discriminator.save_weights(folder / DISCRIMINATOR_FILE)

    def load_weights(self, folder: Path) -> None:
        self.generator.load_weights(folder / GENERATOR_FILE)
        self.discriminator.load_weights(folder / DISCRIMINATOR_FILE)

    def _state_groups(self) -> dict[str, list]:
        return {"g_opt": self.g_opt.variables, "d_opt": self.d_opt.variables, "dropout": self.dropout_states}

    def state_arrays(self) -> dict[str, np.ndarray]:
        return variables_state(self._state_groups())

    def load_state(self, state) -> None:
        load_variables_state(self._state_groups(), state)

    def sample_grid(self) -> np.ndarray:
        """Rows of input | generated | target for the first ``grid_size`` training pairs (not augmented)."""
        sources, targets = self.grid_pairs
        generated = to_uint8(self.generator(sources.astype(np.float32) / 127.5 - 1.0, training=False))
        rows = np.stack([sources, generated, targets], axis=1).reshape(-1, *sources.shape[1:])
        return grid(rows, columns=3)


class HoldoutRecord(TrainingHook):
    """Writes ``holdout.json`` into the training folder when the run starts (after the loop's checks)."""

    def __init__(self, out: Path, held: list[str], options: Pix2PixOptions, source: str):
        self.out, self.held, self.options, self.source = out, held, options, source

    def start(self, step: int, steps: int) -> None:
        if step > 0 and (self.out / HOLDOUT_FILE).is_file() and read_holdout(self.out) != self.held:
            print(f"warning: the pairs held out now differ from those {self.out / HOLDOUT_FILE} recorded (did the "
                  "data change?): some pairs the run trained on may now be held out; the file is rewritten",
                  file=sys.stderr, flush=True)
        write_json(self.out / HOLDOUT_FILE, {"fraction": self.options.holdout, "seed": self.options.seed,
                                             "source": self.source, "count": len(self.held), "ids": self.held})


def read_holdout(out: str | os.PathLike) -> list[str]:
    """The held-out pair ids a pix2pix training folder recorded ([] when it holds none)."""
    from novelty.files import read_json

    path = Path(out) / HOLDOUT_FILE
    try:
        return [str(i) for i in read_json(path)["ids"]]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NoveltyError(f"unreadable {path}: {exc}") from None


def train_pairs(dataset, ids: list[str], out: str | os.PathLike, config: Pix2PixConfig, options: Pix2PixOptions, *,
                source: str = "", progress: bool = True, strategy=None) -> Path:
    """Train pix2pix on ``dataset`` (``(id, input, target)`` uint8, see :func:`novelty.images.pairs.pair_dataset`)
    into folder ``out``, holding out ``options.holdout`` of the pairs by id; resumes a run of the same settings.

    Returns the folder of the last checkpoint.
    """
    from novelty.gan import loop
    from novelty.images.pairs import holdout_ids, without_ids

    held = holdout_ids(ids, options.holdout, options.seed)
    hook = HoldoutRecord(Path(out), held, options, source)
    return loop.train(Pix2Pix, without_ids(dataset, held), out, config, options, source=source,
                      progress=progress, strategy=strategy, hooks=(hook,))
