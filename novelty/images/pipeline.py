"""The training input pipeline: tf.data from an image folder or from TFRecord shards.

Both sources end the same way: shuffle, repeat, augment (random flip, random jitter = upscale then
random crop), scale uint8 to [-1, 1], batch by the global batch size, prefetch. The stream is
deterministic and can start at any element, which is how a resumed run continues where it stopped. Images stay uint8
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
                      flip: bool = False, jitter: bool = False, shuffle_buffer: int = 4096,
                      skip: int = 0):
    """uint8 ``(size, size, 3)`` elements -> float32 batches in [-1, 1], shuffled and repeated.

    The stream is a pure function of ``seed``, with no random state: each epoch permutes every block
    of ``shuffle_buffer`` images (the whole set when it is smaller) by a permutation drawn from
    ``(seed, epoch, block)``, and element ``k`` of the stream is augmented by stateless random ops
    keyed by ``(seed, k)``. So ``skip=k`` (the images a run has consumed: steps x batch size) gives
    exactly the stream an uninterrupted run sees from its element ``k`` on, at the cost of reading at
    most one epoch of images, whatever the step. Raises :class:`NoveltyError` for empty data.
    """
    import tensorflow as tf

    stream = indexed_stream(dataset, seed=seed, shuffle_buffer=shuffle_buffer, skip=skip)
    augment_seed = tf.constant([seed, 1], tf.int64)
    big = int(round(size * JITTER_SCALE))

    def transform(index, image):
        crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(augment_seed, index), num=2))
        image = _jitter_and_flip(tf.cast(image, tf.float32), size, big, (crop_seed, flip_seed), jitter, flip)
        return image / 127.5 - 1.0

    stream = stream.map(transform, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return stream.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def indexed_stream(dataset, *, seed: int, shuffle_buffer: int = 4096, skip: int = 0):
    """``(k, element)`` for k = ``skip``, ``skip`` + 1, ...: the dataset shuffled and repeated, as a pure
    function of ``seed`` (see :func:`augment_and_batch`). Elements may be tuples (pairs)."""
    import tensorflow as tf

    if skip < 0:
        raise NoveltyError(f"skip must be 0 or more elements, received: {skip}")
    count = _count(dataset, exact=skip > 0)
    epoch, offset = divmod(skip, count) if count else (0, skip)  # None: one endless epoch
    shuffle_seed = tf.constant([seed, 0], tf.int64)

    def one_epoch(e):
        def permute(block_index, block):
            block_seed = tf.random.experimental.stateless_fold_in(
                tf.random.experimental.stateless_fold_in(shuffle_seed, e), block_index)
            keys = tf.random.stateless_uniform(tf.shape(tf.nest.flatten(block)[0])[:1], seed=block_seed)
            order = tf.argsort(keys)
            return tf.nest.map_structure(lambda part: tf.gather(part, order), block)

        return dataset.batch(shuffle_buffer).enumerate().map(permute).unbatch()

    stream = tf.data.Dataset.counter(epoch).flat_map(one_epoch).skip(offset)
    return tf.data.Dataset.zip((tf.data.Dataset.counter(skip), stream))


def augment_pairs_and_batch(dataset, size: int, batch_size: int, *, seed: int = defaults.SEED,
                            flip: bool = False, jitter: bool = False, cross_flip: bool = False,
                            shuffle_buffer: int = 4096, skip: int = 0):
    """uint8 ``(input, target)`` pairs -> float32 batches ``(inputs, targets)`` in [-1, 1], shuffled and
    repeated, a pure function of ``seed`` and ``skip`` as :func:`augment_and_batch` is.

    ``jitter`` resizes both halves to ``defaults.PAIR_JITTER_SCALE`` times the size (286 for 256) and
    crops both at the same random place; ``flip`` flips both halves alike; ``cross_flip`` then flips
    the input alone at random, so a flipped input also meets its unflipped target.
    """
    import tensorflow as tf

    stream = indexed_stream(dataset, seed=seed, shuffle_buffer=shuffle_buffer, skip=skip)
    augment_seed = tf.constant([seed, 1], tf.int64)
    big = int(round(size * defaults.PAIR_JITTER_SCALE))

    def transform(index, pair):
        crop_seed, flip_seed, cross_seed = tf.unstack(tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(augment_seed, index), num=3))
        both = tf.cast(tf.concat(pair, axis=-1), tf.float32)  # (size, size, 6): one crop, one flip for both
        both = _jitter_and_flip(both, size, big, (crop_seed, flip_seed), jitter, flip)
        source, target = both[..., :3], both[..., 3:]
        if cross_flip:
            source = tf.image.stateless_random_flip_left_right(source, seed=cross_seed)
        return source / 127.5 - 1.0, target / 127.5 - 1.0

    stream = stream.map(transform, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return stream.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _jitter_and_flip(image, size: int, big: int, seeds, jitter: bool, flip: bool):
    """float ``(size, size, C)`` -> the same, resized to ``big`` and cropped back at random (``jitter``),
    then flipped left-right at random (``flip``), by stateless ops keyed by ``seeds`` (crop, flip)."""
    import tensorflow as tf

    if jitter:
        image = tf.image.resize(image, (big, big), method="bilinear")
        image = tf.image.stateless_random_crop(image, (size, size, image.shape[-1]), seed=seeds[0])
    if flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
    return image


def _count(dataset, *, exact: bool) -> int | None:
    """Elements of a finite dataset; None when endless, or unknown and not ``exact``.

    A size tf.data does not know (shards) is counted by reading the data once, only when ``exact``.
    Raises :class:`NoveltyError` when the dataset is empty: an endless stream of empty epochs would
    hang rather than end.
    """
    import tensorflow as tf

    known = int(dataset.cardinality())
    if known == tf.data.UNKNOWN_CARDINALITY:
        if exact:
            known = int(dataset.reduce(np.int64(0), lambda n, _: n + 1))
        elif any(True for _ in dataset.take(1)):
            return None
        else:
            known = 0
    if known == 0:
        raise NoveltyError("the training data is empty: no image to train on")
    return None if known == tf.data.INFINITE_CARDINALITY else known


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
    from novelty.images.records import is_prepared

    path = Path(path)
    if not path.is_dir() or not (path / "manifest.json").is_file():
        return False
    return any(path.glob("*.tfrecord")) or is_prepared(path)


def training_images(source: str | os.PathLike, size: int, fit_mode: str = defaults.FIT_MODE,
                    progress: bool = True):
    """An unbatched dataset of uint8 ``(size, size, 3)`` images from a folder or shards, and a description."""
    from novelty.images.decode import load_folder

    source = Path(source)
    if is_shard_folder(source):
        from novelty.images.records import read_shards

        return read_shards(source, size)
    loaded = load_folder(source, size, fit_mode, progress=progress)
    note = f", {len(loaded.skipped)} files skipped" if loaded.skipped else ""
    return dataset_from_array(loaded.images), f"{len(loaded.ids)} images from {source}{note}"
