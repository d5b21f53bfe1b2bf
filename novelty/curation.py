"""Training-set curation: near-duplicate groups, outliers, hubs and pixel-level flags.

All rules work on any image collection; the numbers quoted are from the 2,989 masks thumbnails
(VGG16 ImageNet weights, block1_pool and block5_pool, 64 px, caffe preprocessing).

Near-duplicates (the duplicate threshold). Each training image's distance to its nearest other
training image, ``d = 1 - cosine``, is spread over orders of magnitude: re-encoded copies of one
picture sit at 1e-6..1e-3, distinct pictures at 0.05..0.5. On a log scale the distinct pictures form
the bulk, and near-duplicates are its far low tail. Per layer the threshold is

    log d_dup = median(log d) - DUPLICATE_Z * 1.4826 * MAD(log d),   DUPLICATE_Z = 3.5

(robust: median and MAD ignore the duplicates as long as fewer than half of the images have one).
A pair is a near-duplicate when its similarity passes the threshold at EVERY layer (a near-exact
copy looks the same at every depth; two pictures of one style only at the deep layers), and groups
are the connected components of those pairs. On the masks the thresholds come out at cosine 0.965
(block1_pool) and 0.919 (block5_pool) and group 456 images (15%) into 212 groups, in line with the
15% of near-exact duplicates a pixel comparison finds.

Outliers (the robust outlier rule). Per layer, ``d_k`` = mean cosine distance to the ``OUTLIER_K``
nearest training images outside the image's own duplicate group (so a junk image that was saved
twice is still an outlier). ``outlier_score`` = mean over layers of the modified z-score of
``log d_k``: ``(x - median) / (1.4826 MAD)`` (Iglewicz and Hoaglin, 1993). ``is_outlier`` when the
score exceeds ``OUTLIER_Z = 3.5``, their recommended cut. Logs because distances are skewed.

Hubs. ``hub_score`` = how often an image appears in the other training images' top-k lists,
divided by k (1 on average), mean over layers; ``is_hub`` at ``HUB_FACTOR`` or more. High-dimensional
features make a few images near to everything; a hub answers many queries without resembling them.

Pixel flags, on the image reduced to at most 64 px (each score in [0, 1], higher = worse, flagged at
``QUALITY_THRESHOLDS``):

- ``near_blank``: ``1 - (largest 1st-to-99th percentile range over R, G, B) / 255``; flagged at 0.95
  (all pixels within about 13 levels);
- ``very_dark``: ``1 - (99th percentile of luminance) / 255``; flagged at 0.75 (even the brightest
  pixels below 64);
- ``low_information``: ``1 - (entropy of the 256-level luminance histogram) / 8 bits``; flagged at
  0.75 (2 bits or less: a few flat colours);
- ``odd_aspect_ratio``: ``1 - short side / long side`` of the original file; flagged at 0.5 (2:1 or
  longer: the centre crop used for training keeps half of it or less).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from novelty import defaults
from novelty.errors import NoveltyError

MIN_DISTANCE = 1e-7  # floor on 1 - cosine before taking logs (identical images give 0)
THUMBNAIL = 64  # pixel flags are computed on images reduced to at most this many pixels a side


def self_neighbours(features: np.ndarray, k: int = defaults.TOP_K, progress: bool = False
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Each TRAINING row's ``k`` most cosine-similar OTHER rows: ``(indices int64 (N, k), sims float32 (N, k))``.

    The row itself is removed by index (not by position: an exact duplicate can tie with it).
    ``k`` is reduced to ``N - 1`` when the set is smaller.
    """
    from novelty.neighbors import top_k

    n = len(features)
    if n < 2:
        raise NoveltyError(f"neighbours within a set need at least 2 images, received {n}")
    k = min(k, n - 1)
    idx, sims = top_k(features, features, k + 1, progress=progress)
    is_self = idx == np.arange(n)[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)  # no self in the list: drop the last
    keep = np.ones_like(is_self)
    keep[np.arange(n), drop] = False
    return idx[keep].reshape(n, k), sims[keep].reshape(n, k)


def robust_z(values: np.ndarray) -> np.ndarray:
    """Modified z-scores ``(x - median) / (1.4826 MAD)`` of ``(N,)`` values (float64).

    When the MAD is 0 (more than half the values equal), the mean absolute deviation times 1.2533
    is used instead; when that is 0 too, every score is 0.
    """
    x = np.asarray(values, dtype=np.float64)
    med = np.median(x)
    scale = 1.4826 * np.median(np.abs(x - med))
    if scale == 0:
        scale = 1.2533 * np.mean(np.abs(x - med))
    if scale == 0:
        return np.zeros_like(x)
    return (x - med) / scale


def _log_distance(similarity: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(1.0 - np.asarray(similarity, dtype=np.float64), MIN_DISTANCE))


def duplicate_threshold(nearest_similarity: np.ndarray, z: float = defaults.DUPLICATE_Z) -> float:
    """Cosine similarity above which two images of one layer are near-duplicates.

    ``nearest_similarity``: ``(N,)`` each TRAINING image's similarity to its nearest other one.
    The threshold sits ``z`` robust standard deviations below the typical log nearest-distance.
    """
    logs = _log_distance(nearest_similarity)
    med = np.median(logs)
    scale = 1.4826 * np.median(np.abs(logs - med))
    return float(1.0 - np.exp(med - z * scale))


def pair_similarity(features_a: np.ndarray, features_b: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                    chunk: int = 2048) -> np.ndarray:
    """Cosine similarity of ``features_a[rows[p]]`` and ``features_b[cols[p]]`` for each pair p: ``(P,)`` float32."""
    from novelty.neighbors import normalize

    out = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), chunk):
        a = normalize(features_a[rows[start:start + chunk]])
        b = normalize(features_b[cols[start:start + chunk]])
        out[start:start + chunk] = np.einsum("ij,ij->i", a, b)
    return out


def duplicate_components(features: Mapping[str, np.ndarray],
                         neighbours: Mapping[str, tuple[np.ndarray, np.ndarray]],
                         thresholds: Mapping[str, float]) -> np.ndarray:
    """Connected components of the near-duplicate graph: ``(N,)`` int64, equal labels = one group.

    ``features[layer]``: ``(N, D)`` rows of one set; ``neighbours[layer]``: its :func:`self_neighbours`;
    candidate pairs are list entries at or above the layer's threshold, kept when every layer's
    similarity (computed exactly) passes that layer's threshold.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    layers = list(thresholds)
    n = len(next(iter(neighbours.values()))[0])
    rows_all, cols_all = [], []
    for layer in layers:
        idx, sims = neighbours[layer]
        r, c = np.nonzero(sims >= thresholds[layer])
        rows_all.append(r)
        cols_all.append(idx[r, c])
    rows = np.concatenate(rows_all) if rows_all else np.empty(0, np.int64)
    cols = np.concatenate(cols_all) if cols_all else np.empty(0, np.int64)
    pairs = np.unique(np.stack([np.minimum(rows, cols), np.maximum(rows, cols)], axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    keep = np.ones(len(pairs), dtype=bool)
    for layer in layers:
        if len(pairs):
            keep &= pair_similarity(features[layer], features[layer], pairs[:, 0], pairs[:, 1]) >= thresholds[layer]
    pairs = pairs[keep]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def group_numbers(components: np.ndarray) -> np.ndarray:
    """Group number per image: 0 for an image without duplicates, else 1..G, numbered by first member."""
    components = np.asarray(components)
    sizes = np.bincount(components)
    numbers = np.zeros(len(components), dtype=np.int64)
    next_number = 1
    assigned: dict[int, int] = {}
    for i, comp in enumerate(components):
        if sizes[comp] > 1:
            if comp not in assigned:
                assigned[comp] = next_number
                next_number += 1
            numbers[i] = assigned[comp]
    return numbers


def outlier_distance(neighbour_idx: np.ndarray, neighbour_sims: np.ndarray, components: np.ndarray,
                     k: int = defaults.OUTLIER_K) -> np.ndarray:
    """Mean cosine distance to the ``k`` nearest neighbours outside the image's own duplicate group: ``(N,)``.

    ``neighbour_idx``, ``neighbour_sims``: ``(N, K)`` best-first lists (:func:`self_neighbours`).
    An image whose whole list is its own group falls back to its farthest listed neighbour.
    """
    idx = np.asarray(neighbour_idx)
    dist = 1.0 - np.asarray(neighbour_sims, dtype=np.float64)
    components = np.asarray(components)
    other = components[idx] != components[:, None]
    rank = np.cumsum(other, axis=1)
    use = other & (rank <= k)
    counts = use.sum(axis=1)
    out = np.where(counts > 0, (dist * use).sum(axis=1) / np.maximum(counts, 1), dist[:, -1])
    return out


def outlier_scores(distances: Mapping[str, np.ndarray]) -> np.ndarray:
    """``outlier_score``: mean over layers of the robust z-score of log distance ``(N,)`` per layer."""
    return np.mean([robust_z(np.log(np.maximum(d, MIN_DISTANCE))) for d in distances.values()], axis=0)


def k_occurrence(neighbour_idx: np.ndarray, n: int) -> np.ndarray:
    """How many of the ``(N_query, k)`` lists hold each of ``n`` indexed images: ``(n,)`` int64."""
    return np.bincount(np.asarray(neighbour_idx).ravel(), minlength=n).astype(np.int64)


# ---- pixel-level flags ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PixelScores:
    near_blank: float
    very_dark: float
    low_information: float


def pixel_scores(image: np.ndarray) -> PixelScores:
    """Scores of an RGB uint8 ``(H, W, 3)`` image (ideally small); each in [0, 1], higher = worse."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.size == 0:
        raise NoveltyError(f"expected an RGB image (H, W, 3), received shape {arr.shape}")
    pixels = arr.reshape(-1, 3).astype(np.float64)
    spread = np.percentile(pixels, 99, axis=0) - np.percentile(pixels, 1, axis=0)
    luminance = pixels @ np.array([0.299, 0.587, 0.114])
    hist = np.bincount(np.clip(np.rint(luminance), 0, 255).astype(np.int64), minlength=256) / len(luminance)
    hist = hist[hist > 0]
    entropy = float(-(hist * np.log2(hist)).sum())
    return PixelScores(
        near_blank=float(1.0 - spread.max() / 255.0),
        very_dark=float(1.0 - np.percentile(luminance, 99) / 255.0),
        low_information=float(max(0.0, 1.0 - entropy / 8.0)),
    )


def aspect_ratio_score(width: int, height: int) -> float:
    """``1 - short side / long side``: 0 for a square, 0.5 for 2:1."""
    if width < 1 or height < 1:
        raise NoveltyError(f"image size must be positive, received {width}x{height}")
    return 1.0 - min(width, height) / max(width, height)


def thumbnail(path: str | os.PathLike, size: int = THUMBNAIL) -> tuple[np.ndarray, tuple[int, int]]:
    """A file decoded to RGB uint8 at most ``size`` px a side, and its original (width, height).

    JPEGs are decoded at reduced scale (Pillow's draft mode), so large photos cost little.
    Raises :class:`novelty.images.ImageError` with a reason for unreadable files.
    """
    from PIL import Image

    from novelty.images import ImageError, decode

    try:
        with Image.open(path) as img:
            original = img.size
            if img.format == "JPEG":
                img.draft("RGB", (size, size))
                img.thumbnail((size, size))
                small = np.asarray(img.convert("RGB"), dtype=np.uint8)
                return small, original
    except Exception:
        pass  # anything unusual goes through the careful decoder below
    arr, info = decode(path)
    img = Image.fromarray(arr)
    img.thumbnail((size, size))
    small = np.asarray(img, dtype=np.uint8)
    if small.ndim != 3:
        raise ImageError(f"unexpected decoded shape {small.shape}")
    return small, info.original_size


QUALITY_FLAGS: tuple[str, ...] = ("near_blank", "very_dark", "low_information", "odd_aspect_ratio")


def quality_flags(scores: Mapping[str, float], thresholds: Mapping[str, float] = defaults.QUALITY_THRESHOLDS
                  ) -> dict[str, bool]:
    """``{flag: score >= threshold}`` for every flag of ``QUALITY_FLAGS`` present in ``scores``."""
    return {name: bool(scores[name] >= thresholds[name]) for name in QUALITY_FLAGS if name in scores}
