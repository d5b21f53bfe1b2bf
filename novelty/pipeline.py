"""The training input pipeline: tf.data from an image folder or from TFRecord shards.

Both sources end the same way: shuffle, repeat, augment (random flip, random jitter = upscale then
random crop), scale uint8 to [-1, 1], batch by the global batch size, prefetch. Images stay uint8
HWC until the last map, so the layout cannot be transposed on the way.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from novelty import defaults
from novelty.errors import NoveltyError

JITTER_SCALE = 1.125  # jitter upsamples by this factor before a random crop back to size


def augment_and_batch(dataset, size: int, batch_size: int, *, seed: int = defaults.SEED,
                      flip: bool = False, jitter: bool = False, shuffle_buffer: int = 4096):
    """uint8 ``(size, size, 3)`` elements -> float32 batches in [-1, 1], shuffled and repeated."""
    import tensorflow as tf

    dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()

    def transform(image):
        image = tf.cast(image, tf.float32)
        if jitter:
            big = int(round(size * JITTER_SCALE))
            image = tf.image.resize(image, (big, big), method="bilinear")
            image = tf.image.random_crop(image, (size, size, 3))
        if flip:
            image = tf.image.random_flip_left_right(image)
        return image / 127.5 - 1.0

    dataset = dataset.map(transform, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def dataset_from_array(images: np.ndarray):
    """An in-memory ``(N, H, W, 3)`` uint8 array as a tf.data dataset of single images."""
    import tensorflow as tf

    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise NoveltyError(f"expected (N, H, W, 3) uint8 images, received {images.dtype} {images.shape}")
    return tf.data.Dataset.from_tensor_slices(images)


def is_shard_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` is the output of ``novelty prepare`` (a manifest beside TFRecord shards).

    A prepare manifest whose shards are gone still counts, so training reports the missing shard
    instead of trying to decode the manifest as an image.
    """
    from novelty.records import is_prepared

    path = Path(path)
    if not path.is_dir() or not (path / "manifest.json").is_file():
        return False
    return any(path.glob("*.tfrecord")) or is_prepared(path)


def training_images(source: str | os.PathLike, size: int, fit_mode: str = defaults.FIT_MODE,
                    progress: bool = True):
    """An unbatched dataset of uint8 ``(size, size, 3)`` images from a folder or shards, and a description."""
    from novelty.images import load_folder

    source = Path(source)
    if is_shard_folder(source):
        from novelty.records import read_shards

        return read_shards(source, size)
    loaded = load_folder(source, size, fit_mode, progress=progress)
    note = f", {len(loaded.skipped)} files skipped" if loaded.skipped else ""
    return dataset_from_array(loaded.images), f"{len(loaded.ids)} images from {source}{note}"
