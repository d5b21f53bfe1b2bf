"""Near-duplicate groups of a training set, and its hubs.

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

The search behind both (and the outlier score). A layer longer than ``CURATION_SKETCH`` = 4,096
values (block1_pool: 65,536 at 64 px) is searched on its sketch to 4,096 values (signed feature
hashing, :func:`novelty.embed.features.sketch`, as ``--block1-reduce sketch:4096``): the exact
search of block1_pool was 97 of the 120 s that duplicates and outliers took on the masks (load
10-12 on 2 cores); on the sketch the whole stage took 15 s against 84 s exact in one process.
Where a list decides something about duplicates, exact cosines decide: the rule's nearest-neighbour
distance is the exact one to the nearest image found in the sketch, and a list
entry within ``CURATION_SLACK`` = 2 times the layer's threshold distance is a candidate whose exact
cosines at every layer then decide (on the masks the sketch's log-distance error near the threshold
is at most 0.13, against the slack's 0.69). The masks' 465 grouped images come out the same. The
outlier score's k-th distances and the hubs read the sketch's lists as they are (log k-th distances
correlate 0.999 with the exact ones; top-24 lists keep 0.87 of their entries). ``summary.json``
"curation" says which layer was searched how (``self_search``).

Hubs. ``hub_score`` = how often an image appears in the other training images' top-k lists,
divided by k (1 on average), mean over layers; ``is_hub`` at ``HUB_FACTOR`` or more. High-dimensional
features make a few images near to everything; a hub answers many queries without resembling them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from novelty import defaults
from novelty.errors import NoveltyError
from novelty.search.neighbors import top_k

MIN_DISTANCE = 1e-7  # floor on 1 - cosine before taking logs (identical images give 0)
PAIR_GATHER_BYTES = 16 * 1024 * 1024  # pair_similarity: rows gathered at a time, per side


def self_neighbours(features: np.ndarray, k: int = defaults.TOP_K, progress: bool = False
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Each TRAINING row's ``k`` most cosine-similar OTHER rows: ``(indices int64 (N, k), sims float32 (N, k))``.

    The row itself is removed by index (not by position: an exact duplicate can tie with it).
    ``k`` is reduced to ``N - 1`` when the set is smaller.
    """
    n = len(features)
    if n < 2:
        raise NoveltyError(f"neighbours within a set need at least 2 images, received {n}")
    k = min(k, n - 1)
    idx, sims = top_k(features, features, k + 1, progress=progress)
    # the row itself goes in place, a block of rows at a time: the lists are not copied whole (at a
    # million rows 321 deep that copy was 3.9 GB); what is returned are views of the first k columns
    block = max(1, defaults.TOPK_BLOCK_BYTES // (16 * (k + 1)))
    for start in range(0, n, block):
        rows_idx, rows_sims = idx[start:start + block], sims[start:start + block]
        is_self = rows_idx == np.arange(start, start + len(rows_idx))[:, None]
        drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)  # no self in the list: drop the last
        keep = np.ones_like(is_self)
        keep[np.arange(len(rows_idx)), drop] = False
        rows_idx[:, :k] = rows_idx[keep].reshape(-1, k)
        rows_sims[:, :k] = rows_sims[keep].reshape(-1, k)
    return idx[:, :k], sims[:, :k]


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
    views: dict[str, str] = field(default_factory=dict)  # layer -> how its lists were searched (curation_views)

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


def duplicate_rule(nearest_similarity: Mapping[str, np.ndarray], z: float = defaults.DUPLICATE_Z,
                   views: Mapping[str, str] | None = None) -> DuplicateRule:
    """The rule from each TRAINING image's similarity to its nearest other image, ``{layer: (N,)}``
    (``views``: how the lists were searched, recorded with it)."""
    median, scale = {}, {}
    for layer, sims in nearest_similarity.items():
        logs = _log_distance(sims)
        median[layer] = float(np.median(logs))
        spread = 1.4826 * np.median(np.abs(logs - median[layer]))
        if spread == 0:
            spread = 1.2533 * np.mean(np.abs(logs - median[layer]))
        scale[layer] = float(max(spread, 1e-6))
    return DuplicateRule(median, scale, float(z), dict(views or {}))


def pair_similarity(features_a: np.ndarray, features_b: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                    chunk: int | None = None) -> np.ndarray:
    """Cosine similarity of ``features_a[rows[p]]`` and ``features_b[cols[p]]`` for each pair p: ``(P,)`` float32.

    Rows are L2-normalised already (:func:`novelty.search.neighbors.normalize`), as everywhere in curation:
    normalising the gathered rows again cost 8 s of a masks verdict stage at ``block1_pool``.
    ``chunk``: pairs gathered at a time (None: 2,048, fewer for long rows, so a gather stays near 16 MiB).
    """
    chunk = chunk or max(1, min(2048, PAIR_GATHER_BYTES // (4 * max(1, np.shape(features_a)[1]))))
    out = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), chunk):
        a = np.asarray(features_a[rows[start:start + chunk]], dtype=np.float32)
        b = np.asarray(features_b[cols[start:start + chunk]], dtype=np.float32)
        out[start:start + chunk] = np.clip(np.einsum("ij,ij->i", a, b), -1.0, 1.0)
    return out


def duplicate_components(features: Mapping[str, np.ndarray],
                         neighbours: Mapping[str, tuple[np.ndarray, np.ndarray]],
                         rule: DuplicateRule, slack: Mapping[str, float] | None = None) -> np.ndarray:
    """Connected components of the near-duplicate graph: ``(N,)`` int64, equal labels = one group.

    ``features[layer]``: ``(N, D)`` rows of one set, L2-normalised; ``neighbours[layer]``: its
    :func:`self_neighbours` (of the layer's curation view).
    Candidate pairs are list entries past a layer's single-layer threshold (a pair below all of them
    cannot pass), or within ``slack[layer]`` times its threshold distance where the lists' similarities
    are approximate; each is kept when ``rule`` says so on its exact similarities at every layer.
    """
    from scipy.sparse import coo_matrix  # scipy.sparse costs import time; only this stage needs it
    from scipy.sparse.csgraph import connected_components

    slack = slack or {}
    thresholds = {layer: 1.0 - slack.get(layer, 1.0) * (1.0 - t) for layer, t in rule.thresholds().items()}
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


def curation_views(features: Mapping[str, np.ndarray], sketch: int = defaults.CURATION_SKETCH) -> dict[str, str]:
    """How the curation self-search reads each layer of ``{layer: (N, D)}``: ``"exact"``, or
    ``"sketch:<sketch>"`` for a layer longer than ``sketch`` values (0: every layer exact)."""
    return {layer: f"sketch:{sketch}" if sketch and np.shape(x)[1] > sketch else "exact"
            for layer, x in features.items()}


def curation_view(features: np.ndarray, view: str) -> np.ndarray:
    """The ``(N, D)`` L2-normalised rows as :func:`curation_views` names them: themselves, or their
    sketch (:func:`novelty.embed.features.sketch`), L2-normalised again: float32 ``(N, dim)``."""
    if view == "exact":
        return features
    from novelty.embed.features import sketch
    from novelty.search.neighbors import normalize

    return normalize(sketch(features, int(view.partition(":")[2])))


def nearest_similarity(features: Mapping[str, np.ndarray], neighbours: Mapping[str, tuple[np.ndarray, np.ndarray]],
                       views: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Each image's similarity to the first image of its list, ``{layer: (N,)}``: exact, recomputed
    from ``features`` where the list was searched on a sketch (``views``)."""
    out = {}
    for layer, (idx, sims) in neighbours.items():
        x = features[layer]
        out[layer] = sims[:, 0] if views.get(layer, "exact") == "exact" else pair_similarity(
            x, x, np.arange(len(idx)), idx[:, 0])
    return out


def duplicate_groups(features: Mapping[str, np.ndarray], k: int = defaults.TOP_K, progress: bool = False,
                     depth: int = 0, sketch: int = defaults.CURATION_SKETCH
                     ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], DuplicateRule, np.ndarray]:
    """The near-duplicate groups of one set ``{layer: (N, D)}`` (rows L2-normalised), from scratch:
    (its :func:`self_neighbours` per layer, ``max(k, depth)`` deep, on each layer's
    :func:`curation_views` (``sketch``), the :func:`duplicate_rule` and the :func:`duplicate_components`
    labels ``(N,)``, both from the first ``k`` of each list, with exact cosines where a list was
    sketched). One search serves the outlier score too (``depth``: :func:`outlier_depth`)."""
    views = curation_views(features, sketch)
    self_nb = {layer: self_neighbours(curation_view(x, views[layer]), max(k, depth), progress)
               for layer, x in features.items()}
    first = {layer: (idx[:, :k], sims[:, :k]) for layer, (idx, sims) in self_nb.items()}
    rule = duplicate_rule(nearest_similarity(features, first, views), views=views)
    slack = {layer: defaults.CURATION_SLACK for layer, view in views.items() if view != "exact"}
    return self_nb, rule, duplicate_components(features, first, rule, slack)


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


def k_occurrence(neighbour_idx: np.ndarray, n: int) -> np.ndarray:
    """How many of the ``(N_query, k)`` lists hold each of ``n`` indexed images: ``(n,)`` int64."""
    return np.bincount(np.asarray(neighbour_idx).ravel(), minlength=n).astype(np.int64)
