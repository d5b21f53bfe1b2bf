"""Training-set curation: near-duplicate groups, outliers, hubs and pixel-level flags.

All rules work on any image collection; the numbers quoted are from the 2,989 masks thumbnails
(VGG16 ImageNet weights, block1_pool and block5_pool, 64 px, caffe preprocessing).

Near-duplicates (the duplicate rule). Each training image's distance to its nearest other training
image, ``d = 1 - cosine``, is spread over orders of magnitude: re-encoded copies of one picture sit
at 1e-6..1e-3, distinct pictures at 0.05..0.5. On a log scale the distinct pictures form the bulk,
and near-duplicates are its far low tail. Per layer, a pair's robust z-score is

    z = (log d - median(log d_nn)) / (1.4826 * MAD(log d_nn))

(median and MAD over the images' nearest-neighbour distances: robust as long as fewer than half of
the images have a duplicate). A pair is a near-duplicate when the MEAN of its z over the layers is
at most ``-DUPLICATE_Z = -3.5``, each layer's z counting at most ``2 * DUPLICATE_Z`` (so with two
layers, a pixel-identical match at one layer still needs the other layer at least as close as a
typical nearest neighbour). A near-exact copy that one layer sees a little less sharply (a colour
re-grade, a slight re-crop) still counts; two pictures of one style that only the deep layer finds
alike do not. Groups are the connected
components of those pairs. ``summary.json`` gives per layer the similarity at which that layer
alone reaches z = -3.5 (masks: 0.965 at block1_pool, 0.919 at block5_pool). On the masks the rule
groups 465 images (16%), including all 431 whose 16 x 16 thumbnails differ by less than 3 grey
levels (RMS): the "about 15% near-exact duplicates" of the published thumbnails.

Outliers (the batch-aware outlier rule). Junk comes in batches (a folder of logos, a run of
catalogue pages): 30 alike images are each other's nearest neighbours, so a score at one small k
misses them (1 of 30 planted catalogue pages in the top 30 at k = 5). The score looks at several
scales, as Breunig et al. (2000, LOF) advise: take the largest score over a range of k whose top
end is the largest group that should still count as outlying. Per layer and per k of
``OUTLIER_SCALES`` (5, 10, ... 160; those up to ``OUTLIER_MAX_SHARE`` = 10% of the set, at least
the first: kinds of junk alike enough to merge into one larger group still fit), ``d_k`` = cosine
distance to the k-th nearest training image outside the image's own duplicate group (the k-th-neighbour distance of Ramaswamy et al., 2000; a junk image saved twice is
still an outlier), and its modified z-score ``(log d_k - median) / (1.4826 MAD)`` over the set
(Iglewicz and Hoaglin, 1993; logs because distances are skewed). ``outlier_score`` = the largest
z over layers and scales: a lone outlier is far at k = 5, a batch of 30 at k = 40 and above, and
whichever layer sees the junk (block1_pool for flat colours and noise, block5_pool for text pages
and drawings, which block1_pool finds close to masks on white) decides. A group larger than the top
scale is a mode of the collection, not junk. ``is_outlier`` when the score exceeds ``OUTLIER_Z =
2.5`` (the largest of several z-scores runs higher than one): the stated rate is at most about 2.5%
of a collection without junk (measured: 0.8% of the masks; 2 to 2.5% of a Gaussian blob, whose
log distances have a long upper tail, tests/test_curation.py), and on the masks with 1% planted
junk of each kind it flags most of it (``benchmarks/bench_junk.py``, :mod:`novelty.curate.junk`). Measured
there (30 of a kind among 2,989): precision at N 0.97 catalogue pages, 0.87 logos, 0.97 drawings,
0.90 noise; unseen while choosing: 0.97 screenshots, 0.70 product renders; all six mixed 0.93
(per kind within the mix 0.80 to 0.93, product renders 0.63); genuine images flagged 0.4 to 0.8%.
The score adds 0.1 s to the duplicate search it shares (about 25 s for the masks, two layers).

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
    from novelty.search.neighbors import top_k

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


@dataclass(frozen=True)
class DuplicateRule:
    """The near-duplicate rule learnt from a TRAINING set: per layer, the median and robust scale of
    the log distance from each image to its nearest other image, and the cut ``z``."""

    median: dict[str, float]
    scale: dict[str, float]
    z: float = defaults.DUPLICATE_Z

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.median)

    def layer_z(self, layer: str, similarity: np.ndarray) -> np.ndarray:
        """Robust z-score of the log distance ``1 - similarity`` at ``layer`` (negative: closer than usual)."""
        return (_log_distance(similarity) - self.median[layer]) / self.scale[layer]

    def is_duplicate(self, similarity: Mapping[str, np.ndarray]) -> np.ndarray:
        """Pairs whose mean over layers of :meth:`layer_z` (each floored at ``-2 z``) is ``<= -z``: ``(P,)`` bool."""
        zs = [np.maximum(self.layer_z(layer, similarity[layer]), -2.0 * self.z) for layer in self.layers]
        return np.mean(zs, axis=0) <= -self.z

    def thresholds(self) -> dict[str, float]:
        """Per layer, the similarity at which that layer alone reaches ``-z`` (a pair must pass at
        least one of them to be a duplicate; one that passes all of them is one)."""
        return {layer: float(1.0 - np.exp(self.median[layer] - self.z * self.scale[layer])) for layer in self.layers}


def duplicate_rule(nearest_similarity: Mapping[str, np.ndarray], z: float = defaults.DUPLICATE_Z) -> DuplicateRule:
    """The rule from each TRAINING image's similarity to its nearest other image, ``{layer: (N,)}``."""
    median, scale = {}, {}
    for layer, sims in nearest_similarity.items():
        logs = _log_distance(sims)
        median[layer] = float(np.median(logs))
        spread = 1.4826 * np.median(np.abs(logs - median[layer]))
        if spread == 0:
            spread = 1.2533 * np.mean(np.abs(logs - median[layer]))
        scale[layer] = float(max(spread, 1e-6))
    return DuplicateRule(median, scale, float(z))


def pair_similarity(features_a: np.ndarray, features_b: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                    chunk: int = 2048) -> np.ndarray:
    """Cosine similarity of ``features_a[rows[p]]`` and ``features_b[cols[p]]`` for each pair p: ``(P,)`` float32.

    Rows are L2-normalised already (:func:`novelty.search.neighbors.normalize`), as everywhere in curation:
    normalising the gathered rows again cost 8 s of a masks verdict stage at ``block1_pool``.
    """
    out = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), chunk):
        a = np.asarray(features_a[rows[start:start + chunk]], dtype=np.float32)
        b = np.asarray(features_b[cols[start:start + chunk]], dtype=np.float32)
        out[start:start + chunk] = np.clip(np.einsum("ij,ij->i", a, b), -1.0, 1.0)
    return out


def duplicate_components(features: Mapping[str, np.ndarray],
                         neighbours: Mapping[str, tuple[np.ndarray, np.ndarray]],
                         rule: DuplicateRule) -> np.ndarray:
    """Connected components of the near-duplicate graph: ``(N,)`` int64, equal labels = one group.

    ``features[layer]``: ``(N, D)`` rows of one set, L2-normalised; ``neighbours[layer]``: its
    :func:`self_neighbours`.
    Candidate pairs are list entries past a layer's single-layer threshold (a pair below all of them
    cannot pass); each is kept when ``rule`` says so on its similarities at every layer.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    thresholds = rule.thresholds()
    n = len(next(iter(neighbours.values()))[0])
    rows_all, cols_all = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for layer in rule.layers:
        idx, sims = neighbours[layer]
        r, c = np.nonzero(sims >= thresholds[layer])
        rows_all.append(r)
        cols_all.append(idx[r, c])
    rows, cols = np.concatenate(rows_all), np.concatenate(cols_all)
    pairs = np.unique(np.stack([np.minimum(rows, cols), np.maximum(rows, cols)], axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    if len(pairs):
        sims = {layer: pair_similarity(features[layer], features[layer], pairs[:, 0], pairs[:, 1])
                for layer in rule.layers}
        pairs = pairs[rule.is_duplicate(sims)]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1].astype(np.int64)


def duplicate_groups(features: Mapping[str, np.ndarray], k: int = defaults.TOP_K, progress: bool = False,
                     depth: int = 0) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], DuplicateRule, np.ndarray]:
    """The near-duplicate groups of one set ``{layer: (N, D)}`` (rows L2-normalised), from scratch:
    (its :func:`self_neighbours` per layer, ``max(k, depth)`` deep, the :func:`duplicate_rule` and the
    :func:`duplicate_components` labels ``(N,)``, both from the first ``k`` of each list). One search
    serves the outlier score too (``depth``: :func:`outlier_depth`)."""
    self_nb = {layer: self_neighbours(x, max(k, depth), progress) for layer, x in features.items()}
    first = {layer: (idx[:, :k], sims[:, :k]) for layer, (idx, sims) in self_nb.items()}
    rule = duplicate_rule({layer: nb[1][:, 0] for layer, nb in first.items()})
    return self_nb, rule, duplicate_components(features, first, rule)


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


def outlier_scales(n: int) -> tuple[int, ...]:
    """The k of :data:`novelty.defaults.OUTLIER_SCALES` used for a set of ``n`` TRAINING images: those
    up to ``OUTLIER_MAX_SHARE * n`` (at least the smallest), none above ``n - 1``."""
    top = max(defaults.OUTLIER_SCALES[0], defaults.OUTLIER_MAX_SHARE * n)
    return tuple(sorted({min(k, max(1, n - 1)) for k in defaults.OUTLIER_SCALES if k <= top}))


def outlier_depth(n: int) -> int:
    """How many self-neighbours per image the outlier score needs, with room for a duplicate group."""
    return min(max(1, n - 1), 2 * max(outlier_scales(n)))


def outlier_distance(neighbour_idx: np.ndarray, neighbour_sims: np.ndarray, components: np.ndarray,
                     k: int = defaults.OUTLIER_K) -> np.ndarray:
    """Cosine distance to the ``k``-th nearest neighbour outside the image's own duplicate group: ``(N,)``.

    ``neighbour_idx``, ``neighbour_sims``: ``(N, K)`` best-first lists (:func:`self_neighbours`).
    An image with fewer than ``k`` such neighbours listed falls back to its farthest listed neighbour.
    """
    idx = np.asarray(neighbour_idx)
    dist = 1.0 - np.asarray(neighbour_sims, dtype=np.float64)
    components = np.asarray(components)
    other = components[idx] != components[:, None]
    hit = other & (np.cumsum(other, axis=1) == k)
    found = hit.any(axis=1)
    return np.where(found, dist[np.arange(len(dist)), hit.argmax(axis=1)], dist[:, -1])


def outlier_scores(distances: Mapping[object, np.ndarray]) -> np.ndarray:
    """``outlier_score``: the largest over ``distances`` (``{(layer, k): (N,)}``, any keys) of the robust
    z-score of the log distance: ``(N,)`` float64."""
    return np.max([robust_z(np.log(np.maximum(d, MIN_DISTANCE))) for d in distances.values()], axis=0)


@dataclass(frozen=True)
class Outliers:
    """The outlier stage of one TRAINING set: ``score`` and ``is_outlier`` ``(N,)``, the scales used, the cut."""

    score: np.ndarray
    is_outlier: np.ndarray
    scales: tuple[int, ...]
    cut: float = defaults.OUTLIER_Z

    def rule(self) -> str:
        """The rule in words, for the summary, the terminal and the web page."""
        return (f"largest robust z of log distance to the k-th nearest distinct training image, over layers "
                f"and k = {', '.join(map(str, self.scales))}, above {self.cut:g} "
                f"(at most about 2.5% of a collection without junk)")


def batch_outliers(neighbours: Mapping[str, tuple[np.ndarray, np.ndarray]], components: np.ndarray,
                   cut: float = defaults.OUTLIER_Z) -> Outliers:
    """:class:`Outliers` from each layer's :func:`self_neighbours` lists (at least :func:`outlier_depth`
    deep for full strength) and the duplicate-group labels ``(N,)``."""
    n = len(components)
    scales = outlier_scales(n)
    distances = {(layer, k): outlier_distance(idx, sims, components, k)
                 for layer, (idx, sims) in neighbours.items() for k in scales}
    score = outlier_scores(distances)
    return Outliers(score, score > cut, scales, float(cut))


def outlier_stage(features: Mapping[str, np.ndarray], k: int = defaults.TOP_K, progress: bool = False) -> Outliers:
    """:class:`Outliers` of one TRAINING set ``{layer: (N, D)}`` (rows L2-normalised), from scratch: one
    neighbour search per layer, its duplicate groups, :func:`batch_outliers`."""
    neighbours, _, components = duplicate_groups(features, k, progress,
                                                 depth=outlier_depth(len(next(iter(features.values())))))
    return batch_outliers(neighbours, components)


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
    Raises :class:`novelty.images.decode.ImageError` with a reason for unreadable files.
    """
    from PIL import Image

    from novelty.images.decode import ImageError, decode

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
