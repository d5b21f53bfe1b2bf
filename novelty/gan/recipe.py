"""Training-recipe options beyond Radford et al.'s DCGAN, as TensorFlow ops for the training step.

- DiffAugment (Zhao et al., 2020, "Differentiable Augmentation for Data-Efficient GAN Training"):
  colour, translation and cutout applied to real AND generated images before the discriminator, in
  both the discriminator's and the generator's step, as differentiable ops, so the generator is not
  taught to produce augmented images. The parameters follow the authors' ``DiffAugment_tf.py``
  (brightness +-0.5, saturation x[0, 2], contrast x[0.5, 1.5]; translation by up to 1/8 of the side,
  zero fill; cutout of a square half the side, zero fill). The randomness is drawn from the trainer's
  saved ``tf.random.Generator``, so a resumed run draws the same augmentations.
- An exponential moving average of the generator's variables (Yazici et al., 2019, "The Unusual
  Effectiveness of Averaging in GAN Training"; Karras et al.'s progressive GAN and StyleGAN sample from
  it): the averaged generator is the one sampled and saved as ``generator.weights.h5``. Its decay
  warms up with the step count (:func:`ema_decay`).
- One-sided label smoothing (Salimans et al., 2016, "Improved Techniques for Training GANs"): the
  discriminator's target for real images is ``1 - s``; generated images keep target 0.
"""

from __future__ import annotations

from novelty.errors import NoveltyError

DIFFAUGMENT_POLICIES: tuple[str, ...] = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_diffaugment(spec: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """``"color,translation"`` (or a sequence of names) -> ``("color", "translation")``; "" / None -> ()."""
    if spec is None:
        return ()
    parts = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec)]
    parts = [p for p in parts if p and p != "none"]
    unknown = [p for p in parts if p not in DIFFAUGMENT_POLICIES]
    if unknown:
        raise NoveltyError(f"unknown DiffAugment policy {unknown[0]!r}; must be a comma-separated list of: "
                           f"{', '.join(DIFFAUGMENT_POLICIES)} (or none)")
    if len(set(parts)) != len(parts):
        raise NoveltyError(f"DiffAugment policy named twice: {','.join(parts)}")
    return tuple(p for p in DIFFAUGMENT_POLICIES if p in parts)  # applied in the paper's order


def diff_augment(images, policies: tuple[str, ...], rng):
    """Augment a batch ``(N, H, W, 3)`` float in [-1, 1] by ``policies``, differentiably in ``images``.

    ``rng`` is a ``tf.random.Generator``; every random number comes from it.
    """
    import tensorflow as tf

    x = images
    n = tf.shape(x)[0]
    if "color" in policies:
        x = x + (rng.uniform([n, 1, 1, 1]) - 0.5)  # brightness
        mean = tf.reduce_mean(x, axis=3, keepdims=True)
        x = (x - mean) * (rng.uniform([n, 1, 1, 1]) * 2.0) + mean  # saturation
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        x = (x - mean) * (rng.uniform([n, 1, 1, 1]) + 0.5) + mean  # contrast
    if "translation" in policies:
        x = _translate(x, rng)
    if "cutout" in policies:
        x = _cutout(x, rng)
    return x


def _translate(x, rng):
    """Shift each image by whole pixels, up to 1/8 of its side in each direction; zeros move in."""
    import tensorflow as tf

    n, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    for axis, side in ((1, h), (2, w)):
        limit = int(side * TRANSLATION_RATIO + 0.5)
        shift = rng.uniform_full_int([n, 1], dtype=tf.int32) % (2 * limit + 1) - limit
        source = tf.range(side)[None, :] - shift  # (n, side): where each output row/column comes from
        valid = tf.cast((source >= 0) & (source < side), x.dtype)
        x = tf.gather(x, tf.clip_by_value(source, 0, side - 1), axis=axis, batch_dims=1)
        x = x * (valid[:, :, None, None] if axis == 1 else valid[:, None, :, None])
    return x


def _cutout(x, rng):
    """Zero one square, half the side, at a random centre of each image (it may cross the border)."""
    import tensorflow as tf

    n, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    size_h, size_w = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    centre_y = rng.uniform_full_int([n, 1, 1], dtype=tf.int32) % (h + 1 - size_h % 2)
    centre_x = rng.uniform_full_int([n, 1, 1], dtype=tf.int32) % (w + 1 - size_w % 2)
    rows = tf.range(h)[None, :, None] - (centre_y - size_h // 2)
    cols = tf.range(w)[None, None, :] - (centre_x - size_w // 2)
    inside = (rows >= 0) & (rows < size_h) & (cols >= 0) & (cols < size_w)
    return x * tf.cast(~inside, x.dtype)[..., None]


def ema_decay(decay: float, updates):
    """The decay of update number ``updates`` (1, 2, ...): ``min(decay, (1 + updates) / (10 + updates))``,
    as ``tf.train.ExponentialMovingAverage`` does with ``num_updates``, so that early on the average
    follows the generator instead of staying at its random initialisation (0.999 reaches full
    strength after about 9,000 steps; 0.999**300 would still weigh the initial weights by 0.74)."""
    import tensorflow as tf

    updates = tf.cast(updates, tf.float32)
    return tf.minimum(tf.constant(decay, tf.float32), (1.0 + updates) / (10.0 + updates))


def update_ema(averaged, live, decay) -> None:
    """``averaged <- decay * averaged + (1 - decay) * live`` for paired lists of float variables."""
    for target, source in zip(averaged, live, strict=True):
        target.assign(decay * target + (1.0 - decay) * source)
