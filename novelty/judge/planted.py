"""Planted conditional generators, written as output folders (no model): what the conditional verdict
(:mod:`novelty.judge.conditional`) is measured on, in ``tests/test_conditional.py`` and
``benchmarks/bench_conditional.py``.

- *memorising*: for any input, the target of the TRAINING pair whose input is nearest (pixel L2), i.e.
  a generator that looked its input up in the training set instead of translating it; ``noise`` adds
  seeded uniform pixel noise of that amplitude, so that the copy is no longer identical to the file;
- *truthful*: for a held-out input, its own target (a perfect translator).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def edge_pairs(folder: Path, size: int, limit: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(edge maps, images, ids) of the first ``limit`` usable images of ``folder`` at ``size``: each input
    the image's OpenCV Canny edge map (white edges on black, as RGB), each target the image."""
    import cv2

    from novelty.images.decode import find_images, load

    images, ids = [], []
    for path in find_images(folder):
        if len(ids) == limit:
            break
        images.append(load(path, size))
        ids.append(path.name)
    targets = np.stack(images)
    edges = np.stack([cv2.Canny(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), 100, 200) for image in targets])
    return np.repeat(edges[..., None], 3, axis=-1), targets, ids


def nearest_by_input(train_inputs: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``(Q,)`` row of the TRAINING input nearest to each query input (pixel L2)."""
    train = train_inputs.reshape(len(train_inputs), -1).astype(np.float32)
    query = queries.reshape(len(queries), -1).astype(np.float32)
    distances = (query ** 2).sum(1)[:, None] - 2 * query @ train.T + (train ** 2).sum(1)[None]
    return distances.argmin(axis=1)


def write_outputs(out: Path, names: Sequence[str], images: np.ndarray, *, noise: int = 0, seed: int = 0) -> Path:
    """``images`` as PNGs ``out/<name>``, with seeded noise of amplitude ``noise``; returns ``out``."""
    from novelty.images.decode import save_png

    rng = np.random.default_rng(seed)
    for name, image in zip(names, images, strict=True):
        if noise:
            image = np.clip(image.astype(np.int16) + rng.integers(-noise, noise + 1, image.shape), 0, 255)
        save_png(image.astype(np.uint8), Path(out) / name)
    return Path(out)


def memorising(out: Path, names: Sequence[str], queries: np.ndarray, train_inputs: np.ndarray,
               train_targets: np.ndarray, *, noise: int = 0, seed: int = 0) -> Path:
    """The memorising generator's outputs for ``queries`` (inputs), named ``names``."""
    return write_outputs(out, names, train_targets[nearest_by_input(train_inputs, queries)], noise=noise, seed=seed)


def truthful(out: Path, names: Sequence[str], truths: np.ndarray) -> Path:
    """The truthful generator's outputs: each input's own target."""
    return write_outputs(out, names, truths)
