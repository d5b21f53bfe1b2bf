"""Outliers of a training set: the batch-aware outlier rule.

All rules work on any image collection; the numbers quoted are from the 2,989 masks thumbnails
(VGG16 ImageNet weights, block1_pool and block5_pool, 64 px, caffe preprocessing).

Outliers (the batch-aware outlier rule). Junk comes in batches (a folder of logos, a run of
catalogue pages): 30 alike images are each other's nearest neighbours, so a score at one small k
misses them (1 of 30 planted catalogue pages in the top 30 at k = 5). The score looks at several
scales, as Breunig et al. (2000, LOF) advise: take the largest score over a range of k whose top
end is the largest group that should still count as outlying. Per layer and per k of
``OUTLIER_SCALES`` (5, 10, ... 160; those up to ``OUTLIER_MAX_SHARE`` = 10% of the set, at least
the first: kinds of junk alike enough to merge into one larger group still fit), ``d_k`` = cosine
distance to the k-th nearest training image outside the image's own duplicate group (the k-th-neighbour distance of Ramaswamy et al., 2000; a junk image saved twice is
still an outlier), and its modified z-score ``(log d_k - median) / (1.4826 MAD)`` over the set
(Iglewicz and Hoaglin, 1993; logs because distances are skewed). The local view ``z_knn`` = the
largest z over layers and scales: a lone outlier is far at k = 5, a batch of 30 at k = 40 and above, and
whichever layer sees the junk (block1_pool for flat colours and noise, block5_pool for text pages
and drawings, which block1_pool finds close to masks on white) decides. A group larger than the top
scale is a mode of the collection, not junk.

A second, global view catches what sits at the edge of the collection's
main directions of variation without being far from any one image: a batch of product renders on
white that both layers find close to masks on white (k-th distances just under the genuine tail).
On the deepest layer (the last given; ``block5_pool``'s 2,048 values, where a global model is cheap),
Hotelling's T^2 on the first ``OUTLIER_PCA`` = 32 principal components (the squared Mahalanobis
distance within the principal subspace, Jackson 1991; 32 as for the modes), and its robust z of the
log. The views are combined as a maximum of averages (Aggarwal and Sathe 2015, outlier ensembles):
``outlier_score = max(z_knn, (z_knn + z_T2) / 2)``, so the global view lifts an image the local one
already finds somewhat far, and an image only T^2 finds unusual (a genuine image at the edge of a
principal axis) gets half its z. Taking the plain maximum instead flagged more genuine images and
dropped logos to 0.77; an isolation forest (Liu et al. 2008) on 32 principal components of either
layer, LOF at the same k (the masks' near-duplicates make local densities infinite: 15% of
genuine images flagged) and the PCA residual (SPE) did worse
(measured on the masks, ``benchmarks/bench_junk.py``). The component count matters: 16 lost the
product renders (0.70), 64 lost logos (0.77).

``is_outlier`` when the score exceeds ``OUTLIER_Z = 2.5`` (the largest of several z-scores runs
higher than one): the stated rate is about 1% of a real collection without junk (measured: 0.9%
of the masks) and up to about 5.5% of a featureless Gaussian blob, whose log distances and log T^2
have long upper tails and agree (3.5 to 5.4% over the blobs of tests/test_curation.py and
tests/test_junk.py; 2 to 2.5% there with the local view alone), and on the masks with 1% planted junk of each kind it flags most of it
(``benchmarks/bench_junk.py``, :mod:`novelty.curate.junk`; figures in the README's Measured table).
The global view adds 1 to 3.5 s (a PCA of one 2,048-value layer, on one thread) to the duplicate
search the local view shares (block1_pool on its sketch: :mod:`novelty.curate.duplicates`).
Tried on the masks with block1_pool on its sketch, and not kept: the PCA refitted on the images a
first pass does not flag (product renders 0.87 -> 0.70 alone, 0.70 -> 0.53 in the eight-kind mix);
T^2 on both layers (the sketch of block1_pool too) taking the larger z (logos 0.87 -> 0.93 alone,
0.63 -> 0.67 in the mix, nothing else changed: one image in 30, within noise, the mix goal still missed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from novelty import defaults
from novelty.curate.duplicates import MIN_DISTANCE, duplicate_groups, robust_z


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
    """The local view ``z_knn``: the largest over ``distances`` (``{(layer, k): (N,)}``, any keys) of the
    robust z-score of the log distance: ``(N,)`` float64."""
    return np.max([robust_z(np.log(np.maximum(d, MIN_DISTANCE))) for d in distances.values()], axis=0)


def hotelling_z(features: np.ndarray, components: int = defaults.OUTLIER_PCA, seed: int = defaults.SEED) -> np.ndarray:
    """The global view ``z_T2``: robust z of log Hotelling T^2 on the first ``components`` principal
    components of ``(N, D)`` features (an array or a :class:`novelty.search.rows.UnitRows` view;
    scikit-learn PCA, fitted on at most ``defaults.PCA_FIT_MAX`` seeded rows, applied a block at a
    time); zeros when the set is too small for it."""
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    from novelty.search.rows import fit_rows, transform

    n = len(features)
    d = min(components, n - 2, features.shape[1])
    if d < 1:
        return np.zeros(n)
    with threadpool_limits(limits=1):  # a small fit: on a busy machine, spinning BLAS threads made it 5-15x slower
        pca = PCA(d, svd_solver="randomized", random_state=seed).fit(
            np.asarray(features[fit_rows(n, seed=seed)], dtype=np.float32))
    keep = pca.explained_variance_ > 1e-12 * max(float(pca.explained_variance_[0]), 1e-30)
    if not keep.any():
        return np.zeros(n)
    t = transform(pca, features)[:, keep]
    return robust_z(np.log(np.maximum(np.sum(t * t / pca.explained_variance_[keep], axis=1), MIN_DISTANCE)))


def combined_score(z_knn: np.ndarray, z_global: np.ndarray) -> np.ndarray:
    """``outlier_score = max(z_knn, (z_knn + z_global) / 2)``: the maximum of averages of the two views."""
    return np.maximum(z_knn, (z_knn + z_global) / 2.0)


@dataclass(frozen=True)
class Outliers:
    """The outlier stage of one TRAINING set: ``score`` and ``is_outlier`` ``(N,)``, the scales used, the cut."""

    score: np.ndarray
    is_outlier: np.ndarray
    scales: tuple[int, ...]
    cut: float = defaults.OUTLIER_Z

    def rule(self) -> str:
        """The rule in words, for the summary, the terminal and the web page."""
        return (f"max(z_knn, (z_knn + z_T2) / 2) above {self.cut:g}, where z_knn = largest robust z of log "
                f"distance to the k-th nearest distinct training image, over layers and k = "
                f"{', '.join(map(str, self.scales))}, and z_T2 = robust z of log Hotelling T^2 on "
                f"{defaults.OUTLIER_PCA} principal components of the deepest layer "
                f"(about 1% of the masks; up to about 5.5% of a featureless Gaussian blob)")


def batch_outliers(features: Mapping[str, np.ndarray], neighbours: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   components: np.ndarray, cut: float = defaults.OUTLIER_Z) -> Outliers:
    """:class:`Outliers` of one TRAINING set ``{layer: (N, D)}`` (rows L2-normalised; the last layer is
    the deepest) from each layer's :func:`self_neighbours` lists (at least :func:`outlier_depth` deep
    for full strength) and the duplicate-group labels ``(N,)``."""
    n = len(components)
    scales = outlier_scales(n)
    distances = {(layer, k): outlier_distance(idx, sims, components, k)
                 for layer, (idx, sims) in neighbours.items() for k in scales}
    score = combined_score(outlier_scores(distances), hotelling_z(features[list(features)[-1]]))
    return Outliers(score, score > cut, scales, float(cut))


def outlier_stage(features: Mapping[str, np.ndarray], k: int = defaults.TOP_K, progress: bool = False,
                  sketch: int = defaults.CURATION_SKETCH) -> Outliers:
    """:class:`Outliers` of one TRAINING set ``{layer: (N, D)}`` (rows L2-normalised), from scratch: one
    neighbour search per layer (a layer longer than ``sketch`` on its sketch), its duplicate groups,
    :func:`batch_outliers`."""
    neighbours, _, components = duplicate_groups(features, k, progress, sketch=sketch,
                                                 depth=outlier_depth(len(next(iter(features.values())))))
    return batch_outliers(features, neighbours, components)
