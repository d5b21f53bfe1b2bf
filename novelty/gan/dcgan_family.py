"""DCGAN as a generator family of the shared training loop: its networks, optimisers and training step.

The networks are :mod:`novelty.gan.dcgan`'s; the recipe options (DiffAugment, the generator's moving
average, one-sided label smoothing) are :mod:`novelty.gan.recipe`'s. With ``--ema`` a checkpoint's
``generator.weights.h5`` holds the averaged generator (what is sampled and loaded by ``generate`` and
``analyze``) and ``generator.training.weights.h5`` the one trained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from novelty.errors import NoveltyError
from novelty.gan.dcgan import (
    ARCHITECTURE,
    DISCRIMINATOR_FILE,
    GENERATOR_FILE,
    GanConfig,
    build_discriminator,
    build_generator,
)
from novelty.gan.family import (
    GeneratorFamily,
    adam_optimizers,
    check_image_spec,
    load_variables_state,
    to_uint8,
    variables_state,
)
from novelty.gan.recipe import diff_augment, ema_decay, update_ema
from novelty.images.decode import grid
from novelty.images.pipeline import augment_and_batch

TRAINING_GENERATOR_FILE = "generator.training.weights.h5"  # with --ema: the generator being trained


def fixed_noise(n: int, z_dim: int, seed: int) -> np.ndarray:
    """The seeded latent vectors used for grids and generation: ``(n, z_dim)`` float32."""
    return np.random.default_rng(seed).standard_normal((n, z_dim)).astype(np.float32)


class DCGAN(GeneratorFamily):
    """Holds the DCGAN's models, optimisers and the compiled distributed step for one training call.

    ``options`` is a :class:`novelty.gan.training.TrainOptions`.
    """

    name = ARCHITECTURE
    result_options = ("batch_size", "learning_rate", "beta_1", "seed", "flip", "jitter", "ema", "diffaugment",
                      "label_smoothing")

    def __init__(self, config: GanConfig, options, strategy):
        import keras
        import tensorflow as tf

        self.config, self.options, self.strategy = config, options, strategy
        keras.utils.set_random_seed(options.seed)
        with strategy.scope():
            self.generator = build_generator(config)
            self.discriminator = build_discriminator(config)
            self.g_opt, self.d_opt = adam_optimizers(options, self.generator, self.discriminator)
            self.rng = tf.random.Generator.from_seed(options.seed)
            self.ema_generator = None  # the averaged generator, sampled and saved, under --ema
            if options.ema:
                self.ema_generator = build_generator(config)
                self.ema_generator.set_weights(self.generator.get_weights())
        self.grid_noise = fixed_noise(options.grid_size, config.z_dim, options.seed)
        replica_step = self._replica_step()

        @tf.function
        def step(batch):
            per_replica = strategy.run(replica_step, args=(batch,))
            if self.ema_generator is not None:  # cross-replica context: every copy gets the same update
                update_ema(self.ema_generator.variables, self.generator.variables,
                           ema_decay(options.ema, self.g_opt.iterations))
            return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                    for k, v in per_replica.items()}

        self._step = step

    def _replica_step(self):
        """The step on one replica's share of the batch: the discriminator's update, then the generator's."""
        import keras
        import tensorflow as tf

        options = self.options
        bce = keras.losses.BinaryCrossentropy(from_logits=True, reduction="none")
        global_batch, z_dim = options.batch_size, self.config.z_dim
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

        return replica_step

    @classmethod
    def check_data(cls, dataset, config: GanConfig) -> None:
        """Refuse a dataset whose elements are not single uint8 ``(size, size, 3)`` images, before tracing."""
        size = config.image_size
        spec = getattr(dataset, "element_spec", None)
        shape, dtype = getattr(spec, "shape", None), getattr(spec, "dtype", None)
        if shape is None or dtype is None:
            raise NoveltyError(f"training data must be a tf.data dataset of single images, received {spec!r}")
        check_image_spec(spec, size, "training images")

    def input_stream(self, dataset, skip: int):
        """Shuffled, augmented global batches of ``[-1, 1]`` images from image ``skip`` on."""
        options = self.options
        return augment_and_batch(dataset, self.config.image_size, options.batch_size, seed=options.seed,
                                 flip=options.flip, jitter=options.jitter, skip=skip)

    def distributed_step(self, batch) -> dict:
        return self._step(batch)

    @property
    def sampler(self):
        """The generator that is sampled and saved: the averaged one under --ema, else the trained one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def save_weights(self, folder: Path) -> None:
        self.config.save(folder)
        self.sampler.save_weights(folder / GENERATOR_FILE)
        if self.ema_generator is not None:
            self.generator.save_weights(folder / TRAINING_GENERATOR_FILE)
        self.discriminator.save_weights(folder / DISCRIMINATOR_FILE)

    def load_weights(self, folder: Path) -> None:
        trained = folder / TRAINING_GENERATOR_FILE
        self.generator.load_weights(trained if self.ema_generator is not None and trained.is_file()
                                    else folder / GENERATOR_FILE)
        if self.ema_generator is not None:
            self.ema_generator.load_weights(folder / GENERATOR_FILE)
        self.discriminator.load_weights(folder / DISCRIMINATOR_FILE)

    def state_arrays(self) -> dict[str, np.ndarray]:
        state = variables_state({"g_opt": self.g_opt.variables, "d_opt": self.d_opt.variables})
        state["rng"] = self.rng.state.numpy()
        return state

    def load_state(self, state) -> None:
        load_variables_state({"g_opt": self.g_opt.variables, "d_opt": self.d_opt.variables}, state)
        self.rng.reset(state["rng"])

    def sample_grid(self) -> np.ndarray:
        """The sampled generator's images of the fixed ``--grid-size`` noise, tiled."""
        return grid(to_uint8(self.sampler(self.grid_noise, training=False)))
