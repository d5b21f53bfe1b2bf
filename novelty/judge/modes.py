"""The collection's modes, and which of them the generator reproduces, misses or over-produces.

Method (each step a standard, stated choice; no constant number of modes):
1. Features: ``block5_pool`` (shape), L2-normalised, projected on their first ``MODES_PCA`` principal
   components (scikit-learn PCA fitted on the training set).
2. Modes: a Gaussian mixture with diagonal covariances (scikit-learn ``GaussianMixture``), the number
   of components chosen by the Bayesian information criterion (Schwarz 1978) over ``MODES_GRID``
   (capped so that a mode has ``MODES_MIN_SIZE`` training images on average). Sets larger than
   ``MODES_FIT_MAX`` are fitted on a seeded subsample and then assigned whole. On the 2,989 masks the
   BIC is lowest at 20 to 25 components (20 and 25 within 0.1% of each other); the silhouette of k-means, another common rule, was flat (0.07 to
   0.09 for 2 to 40 clusters: the masks have no crisp clusters, so modes here are a partition of a
   continuum, which is what "which kinds of masks did it learn" needs).
3. Every TRAINING image and every GENERATED sample goes to its most likely mode.
4. Per mode, the generated count is tested against the training share with two one-sided exact
   binomial tests (SciPy), Holm-corrected over the modes for a family-wise error of ``alpha``:
   significantly fewer -> ``missed`` when the generated share is below half the training share,
   else ``under-produced``; significantly more -> ``over-produced``; otherwise ``reproduced``. The
   generated share's 95% Wilson interval is reported beside it. With few samples a mode cannot be
   shown missed (100 samples against a mode of 4% of the set: 1.7% chance of none by luck, not
   enough after correcting for 25 modes); the table says so through the interval, not by guessing.

Cost: the fits run on one thread (threadpoolctl): the arrays are small (a few thousand rows of 32
values), and on a busy machine BLAS and OpenMP threads spinning against other jobs made the 15
fits and the PCA about 8 times slower (masks, fitting and assigning: 9.6 s on one thread against
79.8 s on two, one process, load 12 on 2 cores). The model is the same: 20 modes, identical labels,
BIC within 1e-4 relative.

``effective_modes`` (the exponential of the share entropy, Hill's number of order 1) summarises how
many modes a set spreads over: the 2018 observation that 128 px samples concentrate in fewer modes
than 64 px ones reads directly from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from novelty.errors import NoveltyError

MODES_LAYER = "block5_pool"
MODES_PCA = 32  # 50 chose the same 25 modes on the masks at 3x the fitting time
MODES_GRID: tuple[int, ...] = (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60)
MODES_MIN_SIZE = 40  # at most n / this many modes
MODES_FIT_MAX = 5000  # training images the mixture is fitted on (a seeded subsample beyond)
MODES_ALPHA = 0.05
MISSED_RATIO = 0.5  # significantly under-produced and below this ratio of shares: "missed"
REPRESENTATIVES = 8  # most typical training images (and samples) listed per mode


@dataclass
class ModeModel:
    """The fitted projection and mixture; ``assign`` puts any features of the same layer in a mode."""

    mean: np.ndarray
    components: np.ndarray
    mixture: object
    k: int
    bic: dict[int, float]

    def project(self, features: np.ndarray) -> np.ndarray:
        return (_unit(features) - self.mean) @ self.components.T

    def assign(self, features: np.ndarray, block: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """(mode per row, log-likelihood per row under its mode's component), ``block`` rows at a time
        (a memory-mapped set is never held whole), on one thread (see the module text)."""
        from threadpoolctl import threadpool_limits

        labels, scores = [np.zeros(0, dtype=np.int64)], [np.zeros(0)]
        with threadpool_limits(limits=1):
            for start in range(0, len(features), block):
                z = self.project(features[start:start + block])
                labels.append(self.mixture.predict(z))
                scores.append(_component_log_density(self.mixture, z, labels[-1]))
        return np.concatenate(labels), np.concatenate(scores)


def _unit(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _component_log_density(mixture, z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    means, variances = mixture.means_[labels], mixture.covariances_[labels]
    return -0.5 * np.sum(np.log(2 * np.pi * variances) + (z - means) ** 2 / variances, axis=1)


def candidate_counts(n: int) -> tuple[int, ...]:
    """The numbers of modes tried for a set of ``n`` images."""
    cap = max(2, n // MODES_MIN_SIZE)
    return tuple(k for k in MODES_GRID if k <= cap) or (2,)


def fit_modes(training: np.ndarray, *, seed: int = 0, counts: tuple[int, ...] | None = None) -> ModeModel:
    """Fit the modes of TRAINING features (rows), the number chosen by BIC (see the module text)."""
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    n = len(training)
    if n < 2 * MODES_MIN_SIZE:
        raise NoveltyError(f"modes need at least {2 * MODES_MIN_SIZE} training images; the set has {n}")
    rng = np.random.default_rng(seed)
    fit_rows = np.sort(rng.choice(n, MODES_FIT_MAX, replace=False)) if n > MODES_FIT_MAX else np.arange(n)
    x = _unit(training[fit_rows])  # only the rows fitted on: a whole layer is never copied
    bic, best = {}, None
    with threadpool_limits(limits=1):  # see the module text: one thread is 8x faster on a busy machine
        pca = PCA(min(MODES_PCA, len(fit_rows) - 1, x.shape[1]), random_state=seed).fit(x)
        z = pca.transform(x)
        for k in counts or candidate_counts(n):
            mixture = GaussianMixture(k, covariance_type="diag", reg_covar=1e-5, random_state=seed).fit(z)
            bic[k] = float(mixture.bic(z))
            if best is None or bic[k] < bic[best[0]]:
                best = (k, mixture)
    return ModeModel(pca.mean_.astype(np.float32), pca.components_.astype(np.float32), best[1], best[0], bic)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control, any dependence)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


def compare_shares(training_modes: np.ndarray, generated_modes: np.ndarray, k: int,
                   alpha: float = MODES_ALPHA) -> list[dict]:
    """One row per mode (numbered from 1, as in the ``mode`` columns): counts, shares, their ratio, the generated share's 95% Wilson interval,
    Holm-adjusted one-sided p-values and the status (missed, under-produced, over-produced, reproduced)."""
    from scipy.stats import binomtest

    n_t, n_g = len(training_modes), len(generated_modes)
    t_counts = np.bincount(training_modes, minlength=k)
    g_counts = np.bincount(generated_modes, minlength=k) if n_g else np.zeros(k, dtype=int)
    shares = t_counts / max(1, n_t)
    testable = [bool(n_g) and 0 < share < 1 for share in shares]
    fewer = holm([binomtest(int(g_counts[m]), n_g, float(shares[m]), alternative="less").pvalue
                  if testable[m] else 1.0 for m in range(k)])
    more = holm([binomtest(int(g_counts[m]), n_g, float(shares[m]), alternative="greater").pvalue
                 if testable[m] else 1.0 for m in range(k)])
    rows = []
    for m in range(k):
        g_share = g_counts[m] / n_g if n_g else 0.0
        ratio = g_share / shares[m] if shares[m] else float("nan")
        low, high = binomtest(int(g_counts[m]), n_g, 0.5).proportion_ci(0.95, method="wilson") if n_g else (0.0, 1.0)
        if fewer[m] < alpha:
            status = "missed" if ratio < MISSED_RATIO else "under-produced"
        elif more[m] < alpha:
            status = "over-produced"
        else:
            status = "reproduced"
        rows.append({"mode": m + 1, "training_count": int(t_counts[m]), "training_share": round(float(shares[m]), 6),
                     "generated_count": int(g_counts[m]), "generated_share": round(float(g_share), 6),
                     "ratio": round(float(ratio), 4), "generated_ci": [round(float(low), 6), round(float(high), 6)],
                     "p_fewer": round(float(fewer[m]), 6), "p_more": round(float(more[m]), 6), "status": status})
    return rows


def effective_modes(modes: np.ndarray, k: int) -> float:
    """exp(entropy) of the share of each mode: k for an even spread, 1 for a single mode."""
    shares = np.bincount(modes, minlength=k) / max(1, len(modes))
    shares = shares[shares > 0]
    return float(np.exp(-np.sum(shares * np.log(shares))))


def typical(modes: np.ndarray, scores: np.ndarray, k: int, ids: list[str], count: int = REPRESENTATIVES
            ) -> list[list[str]]:
    """Per mode, the ``count`` ids most typical of it (highest log-density under its component)."""
    out = []
    for m in range(k):
        rows = np.flatnonzero(modes == m)
        out.append([ids[i] for i in rows[np.argsort(-scores[rows], kind="stable")][:count]])
    return out


@dataclass
class ModeReport:
    """Modes of a run: per TRAINING image and GENERATED sample, and the per-mode table."""

    k: int
    bic: dict[int, float]
    training_modes: np.ndarray
    generated_modes: np.ndarray
    table: list[dict]
    effective: dict[str, float]

    def columns(self) -> tuple[list[int], list[int]]:
        """The ``mode`` column of training.csv and of samples.csv (modes numbered from 1)."""
        return (self.training_modes + 1).tolist(), (self.generated_modes + 1).tolist()

    def summary(self) -> dict:
        counts = {status: sum(r["status"] == status for r in self.table)
                  for status in ("reproduced", "missed", "under-produced", "over-produced")}
        n = len(self.generated_modes)
        # a mode with none of n samples is shown missed only when (1 - share)**n < alpha / k (Holm's first step)
        detectable = 1 - (MODES_ALPHA / self.k) ** (1 / n) if n else 1.0
        return {"layer": MODES_LAYER, "k": self.k, "smallest_missable_share": round(float(detectable), 6), "rule": f"Gaussian mixture (diagonal) on PCA-{MODES_PCA} "
                f"of normalised {MODES_LAYER}; number of modes by lowest BIC", "alpha": MODES_ALPHA,
                "test": "one-sided exact binomial per mode, Holm-corrected", "bic": {str(k): round(v, 1)
                for k, v in self.bic.items()}, "effective_modes": self.effective, "counts": counts,
                "modes": self.table}


def find_modes(training: np.ndarray, generated: np.ndarray, training_ids: list[str], generated_ids: list[str],
               *, seed: int = 0) -> ModeReport:
    """Fit the TRAINING modes, place the GENERATED samples, and compare their shares."""
    model = fit_modes(training, seed=seed)
    t_modes, t_scores = model.assign(training)
    g_modes, g_scores = model.assign(generated) if len(generated) else (np.zeros(0, dtype=int), np.zeros(0))
    return mode_report(model.k, model.bic, (t_modes, t_scores, list(training_ids)),
                       (g_modes, g_scores, list(generated_ids)))


def mode_report(k: int, bic: dict[int, float], training: tuple[np.ndarray, np.ndarray, list[str]],
                generated: tuple[np.ndarray, np.ndarray, list[str]]) -> ModeReport:
    """The report of ``k`` modes from (mode, typicality score, id) per TRAINING image and GENERATED sample."""
    (t_modes, t_scores, t_ids), (g_modes, g_scores, g_ids) = training, generated
    table = compare_shares(t_modes, g_modes, k)
    for row, t_typical, g_typical in zip(table, typical(t_modes, t_scores, k, t_ids),
                                         typical(g_modes, g_scores, k, g_ids), strict=True):
        row["training_examples"], row["generated_examples"] = t_typical, g_typical
    effective = {"training": round(effective_modes(t_modes, k), 3),
                 "generated": round(effective_modes(g_modes, k), 3) if len(g_modes) else 0.0}
    return ModeReport(k, bic, t_modes, g_modes, table, effective)


def run_modes(training: dict[str, np.ndarray], generated: dict[str, np.ndarray], training_ids: list[str],
              generated_ids: list[str], *, seed: int = 0) -> tuple[ModeReport | None, str | None]:
    """The run's modes from its per-layer features, or (None, the reason they were skipped)."""
    if MODES_LAYER not in training:
        return None, f"modes off: the run has no {MODES_LAYER} features"
    try:
        return find_modes(training[MODES_LAYER], generated[MODES_LAYER], training_ids, generated_ids, seed=seed), None
    except NoveltyError as exc:
        return None, f"modes off: {exc}"


def add_modes(training_rows: list[dict], sample_rows: list[dict], training: dict[str, np.ndarray],
              generated: dict[str, np.ndarray], training_ids: list[str], generated_ids: list[str], *,
              seed: int = 0) -> tuple[dict, list[str]]:
    """Set the ``mode`` column of the training and sample rows; (summary.json "modes", warnings)."""
    report, warning = run_modes(training, generated, training_ids, generated_ids, seed=seed)
    if report is None:
        for row in (*training_rows, *sample_rows):
            row["mode"] = None
        return {"skipped": warning}, [warning]
    for rows, column in zip((training_rows, sample_rows), report.columns(), strict=True):
        for row, mode in zip(rows, column, strict=True):
            row["mode"] = mode
    return report.summary(), []
