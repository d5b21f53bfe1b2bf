"""How often the GENERATED samples were flagged: the copy rate with two intervals.

The percentile bootstrap (:func:`bootstrap_interval`) shows the sampling spread of the rate; it collapses
to a point when no sample (or every sample) is flagged, so the exact Clopper-Pearson interval
(:func:`clopper_pearson`) is given beside it. The validation harness (:mod:`novelty.judge.validate`)
reports its measured false-positive rates with the exact interval too.
"""

from __future__ import annotations

import numpy as np

from novelty import defaults


def bootstrap_interval(flags: np.ndarray, *, resamples: int = defaults.BOOTSTRAP_RESAMPLES,
                       confidence: float = defaults.CONFIDENCE, seed: int = defaults.SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``(N,)`` 0/1 values, resampling the N samples."""
    x = np.asarray(flags, dtype=np.float64).ravel()
    if len(x) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    counts = rng.binomial(len(x), x.mean(), size=resamples) if np.isin(x, (0, 1)).all() else None
    means = counts / len(x) if counts is not None else \
        x[rng.integers(0, len(x), (resamples, len(x)))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def clopper_pearson(successes: int, n: int, confidence: float = defaults.CONFIDENCE) -> tuple[float, float]:
    """Exact binomial interval for ``successes`` out of ``n``; stays honest at 0 and at n."""
    from scipy.special import betaincinv  # the beta quantile, without importing scipy.stats

    if n == 0:
        return float("nan"), float("nan")
    alpha = 1.0 - confidence
    low = 0.0 if successes == 0 else float(betaincinv(successes, n - successes + 1, alpha / 2))
    high = 1.0 if successes == n else float(betaincinv(successes + 1, n - successes, 1 - alpha / 2))
    return low, high


def copy_rate(is_copy: np.ndarray, *, fpr: float, resamples: int = defaults.BOOTSTRAP_RESAMPLES,
              confidence: float = defaults.CONFIDENCE, seed: int = defaults.SEED) -> dict:
    """Share of GENERATED samples flagged, with a bootstrap and an exact interval (JSON-ready).

    ``expected_false_positives`` = ``fpr * N``: a generator that never copies still gets about this
    many flags. The bootstrap interval collapses to a point when no sample (or every sample) is
    flagged, which is why the exact Clopper-Pearson interval is reported beside it.
    """
    flags = np.asarray(is_copy, dtype=bool).ravel()
    n, count = len(flags), int(flags.sum())
    return {
        "count": count,
        "n": n,
        "rate": float(count / n) if n else None,
        "bootstrap_interval": list(bootstrap_interval(flags, resamples=resamples, confidence=confidence,
                                                      seed=seed)) if n else None,
        "exact_interval": list(clopper_pearson(count, n, confidence)) if n else None,
        "confidence": confidence,
        "resamples": resamples,
        "false_positive_rate": fpr,
        "expected_false_positives": fpr * n,
    }
