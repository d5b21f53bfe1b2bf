"""The data-copying test C_T of Meehan, Chaudhuri and Dasgupta (2020, "A Non-Parametric Test to
Detect Data-Copying in Generative Models", AISTATS), on ``(N, D)`` feature arrays.

Three sets: TRAINING points ``T`` (what the generator learnt from), HELD-OUT real points ``P``
(same distribution, not in ``T``) and GENERATED points ``Q``. Every held-out and generated point
gets ``L(x)`` = distance to its nearest training point. If the generator copies, its samples sit
closer to ``T`` than fresh real data does.

1. Cells: k-means (seeded) on the training points partitions the space; held-out and generated
   points go to the cell of their nearest centroid. Distances ``L`` are taken to training points of
   the same cell, as in the authors' code. Very wide features (block1_pool is 65,536 values) are first
   projected on their leading principal components (fitted on TRAINING only) for the clustering;
   distances always use the full features.
2. Per cell, the Mann-Whitney U statistic of ``L(Q)`` against ``L(P)`` (ties counted half) is turned
   into a z-score under the null of equal distributions:
   ``Z = (U - m n / 2) / sqrt(m n (m + n + 1) / 12)``. ``Z << 0``: generated samples in that cell are
   closer to training than real data is (copying); ``Z >> 0``: they stay far (underfitting).
3. ``C_T`` = average of the cell scores weighted by each cell's share of held-out points, over the
   cells holding at least ``min_cell_samples`` generated AND held-out points (the paper's tau rule; its
   code uses 20 generated samples per cell). Skipped cells are listed, never silently dropped.
   With no usable cell ``C_T`` is NaN and a warning says why.

The authors' rule of thumb: ``C_T`` below about -3 is strong evidence of copying.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from novelty import defaults
from novelty.errors import NoveltyError

PCA_DIMENSIONS = 64  # clustering happens in this many principal components when features are wider


@dataclass(frozen=True)
class CellScore:
    cell: int
    n_training: int
    n_heldout: int
    n_generated: int
    z: float | None  # None when the cell was skipped
    used: bool


@dataclass(frozen=True)
class CopyingTest:
    c_t: float  # NaN when no cell was usable
    cells: list[CellScore]
    n_cells: int
    min_cell_samples: int
    heldout_share_used: float  # share of held-out points in the cells that count
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["c_t"] = None if np.isnan(self.c_t) else float(self.c_t)
        return out


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (scipy's ``rankdata``, without scipy.stats)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def mann_whitney_z(generated_distances: np.ndarray, heldout_distances: np.ndarray) -> float:
    """Z-score of the Mann-Whitney U of GENERATED vs HELD-OUT distances (negative: generated smaller).

    Ties are ranked by their average rank (counted half). Both inputs are 1-D and non-empty.
    """
    q = np.asarray(generated_distances, dtype=np.float64).ravel()
    p = np.asarray(heldout_distances, dtype=np.float64).ravel()
    m, n = len(q), len(p)
    if m == 0 or n == 0:
        raise NoveltyError(f"Mann-Whitney needs points on both sides, received {m} generated and {n} held-out")
    ranks = _average_ranks(np.concatenate([q, p]))
    u = ranks[:m].sum() - m * (m + 1) / 2.0  # pairs where the generated distance is the larger
    return float((u - m * n / 2.0) / np.sqrt(m * n * (m + n + 1) / 12.0))


def _nearest_distances(points: np.ndarray, training: np.ndarray) -> np.ndarray:
    """Euclidean distance from each row of ``points`` to its nearest row of ``training``."""
    p_sq = np.einsum("ij,ij->i", points, points)
    t_sq = np.einsum("ij,ij->i", training, training)
    best = np.full(len(points), np.inf, dtype=np.float64)
    for start in range(0, len(training), 4096):
        block = training[start:start + 4096]
        d2 = p_sq[:, None] + t_sq[None, start:start + 4096] - 2.0 * (points @ block.T)
        np.minimum(best, d2.min(axis=1), out=best)
    return np.sqrt(np.maximum(best, 0.0))


def _cluster_space(training, others: list[np.ndarray], seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The space k-means runs in: the features, or past ``4 * PCA_DIMENSIONS`` values their principal
    components (fitted on at most ``defaults.PCA_FIT_MAX`` seeded TRAINING rows, applied a block at a time)."""
    from novelty.search.rows import fit_rows, transform

    if training.shape[1] <= 4 * PCA_DIMENSIONS:
        return np.asarray(training, dtype=np.float32), others
    from sklearn.decomposition import PCA

    pca = PCA(n_components=min(PCA_DIMENSIONS, len(training) - 1), svd_solver="randomized", random_state=seed)
    rows = fit_rows(len(training), seed=seed)
    if isinstance(rows, slice) and isinstance(training, np.ndarray):
        return pca.fit_transform(training), [pca.transform(o) for o in others]
    pca.fit(np.asarray(training[rows], dtype=np.float32))
    return transform(pca, training), [pca.transform(o) for o in others]


def data_copying_test(training: np.ndarray, heldout: np.ndarray, generated: np.ndarray, *,
                      n_cells: int | None = None,
                      min_cell_samples: int = defaults.CT_MIN_CELL_SAMPLES,
                      seed: int = defaults.SEED) -> CopyingTest:
    """C_T of GENERATED ``(M, D)`` against TRAINING ``(N, D)``, with HELD-OUT real ``(H, D)`` as reference.

    ``n_cells`` defaults to ``min(CT_MAX_CELLS, M // min_cell_samples, H // min_cell_samples)``, at least 1,
    so that a typical cell can hold enough points. Features are float arrays of one width; TRAINING may
    be a :class:`novelty.search.rows.UnitRows` view, read a block (or a cell) at a time.
    """
    from novelty.search.rows import UnitRows

    t = training if isinstance(training, UnitRows) else np.asarray(training, dtype=np.float32)
    p = np.asarray(heldout, dtype=np.float32)
    q = np.asarray(generated, dtype=np.float32)
    for name, arr in (("training", t), ("held-out", p), ("generated", q)):
        if arr.ndim != 2 or len(arr) == 0:
            raise NoveltyError(f"{name} features must be a non-empty (N, D) array, received shape {arr.shape}")
    if not t.shape[1] == p.shape[1] == q.shape[1]:
        raise NoveltyError(f"feature widths differ: training {t.shape[1]}, held-out {p.shape[1]}, generated {q.shape[1]}")
    if min_cell_samples < 1:
        raise NoveltyError(f"min_cell_samples must be at least 1, received {min_cell_samples}")
    if n_cells is None:
        n_cells = max(1, min(defaults.CT_MAX_CELLS, len(q) // min_cell_samples, len(p) // min_cell_samples))
    if not 1 <= n_cells <= len(t):
        raise NoveltyError(f"n_cells must be between 1 and {len(t)} (training points), received {n_cells}")

    warnings: list[str] = []
    if n_cells == 1:
        t_cells = np.zeros(len(t), dtype=np.int64)
        p_cells = np.zeros(len(p), dtype=np.int64)
        q_cells = np.zeros(len(q), dtype=np.int64)
    else:
        from sklearn.cluster import KMeans
        from threadpoolctl import threadpool_limits

        t_space, (p_space, q_space) = _cluster_space(t, [p, q], seed)
        # one OpenMP thread: k-means on a few thousand points gains nothing from more, and on a busy
        # machine spinning threads made it 20 times slower
        with threadpool_limits(limits=1, user_api="openmp"):
            kmeans = KMeans(n_clusters=n_cells, n_init=3, random_state=seed).fit(t_space)
            t_cells = kmeans.labels_.astype(np.int64)
            p_cells = kmeans.predict(p_space).astype(np.int64)
            q_cells = kmeans.predict(q_space).astype(np.int64)

    cells: list[CellScore] = []
    weights, scores = [], []
    for cell in range(n_cells):
        in_t, in_p, in_q = t_cells == cell, p_cells == cell, q_cells == cell
        n_p, n_q = int(in_p.sum()), int(in_q.sum())
        if n_p < min_cell_samples or n_q < min_cell_samples:
            cells.append(CellScore(cell, int(in_t.sum()), n_p, n_q, None, False))
            continue
        cell_t = t[in_t]
        z = mann_whitney_z(_nearest_distances(q[in_q], cell_t), _nearest_distances(p[in_p], cell_t))
        cells.append(CellScore(cell, int(in_t.sum()), n_p, n_q, z, True))
        weights.append(n_p / len(p))
        scores.append(z)
    if weights:
        c_t = float(np.dot(weights, scores) / np.sum(weights))
    else:
        c_t = float("nan")
        warnings.append(f"C_T undefined: no cell holds {min_cell_samples} generated and {min_cell_samples} "
                        f"held-out points ({len(q)} generated, {len(p)} held-out in {n_cells} cells)")
    share = float(np.sum(weights)) if weights else 0.0
    if weights and share < 0.5:
        warnings.append(f"C_T rests on cells holding only {share:.0%} of the held-out points")
    return CopyingTest(c_t=c_t, cells=cells, n_cells=n_cells, min_cell_samples=min_cell_samples,
                       heldout_share_used=share, warnings=warnings)
