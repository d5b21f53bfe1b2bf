"""Calibrated copy verdicts: how close does a GENERATED sample come to the training set, compared with
how close genuinely unseen real images come?

A raw cosine similarity means little on its own (VGG features are non-negative, so every top-1
similarity on the masks lies between 0.77 and 0.95). The yardstick here is a HELD-OUT part of the
training set: a seeded, group-aware split (:func:`holdout_split`) sets ``fraction`` of the training
images aside; the rest is the REFERENCE part. For each held-out image and each layer we take its
nearest-reference similarity: the distribution of "how close an unseen real image comes".

Per layer, a generated sample with nearest-training similarity ``s`` gets

- ``heldout_share`` = share of held-out images whose nearest-reference similarity is ``>= s``
  (0: closer than every unseen real image);
- a conformal p-value ``p = (1 + #{h >= s}) / (1 + H)``, valid for any distribution;
- a size correction: generated samples are compared with ALL ``|T|`` training images, held-out ones
  only with the ``|R|`` reference images, and the nearest of more images is a little closer. Treating
  the extra images as independent draws, ``p_T = 1 - (1 - p) ** (|T| / |R|)``. Without it the false
  positive rate would run about 10% (relative) above the nominal one at the default 10% held out.

Honest calibration: a held-out image with a near-duplicate in the reference part is not unseen; it
would inflate the null and hide real copies. The split is therefore made by duplicate GROUP
(:mod:`novelty.curation` finds the groups): a group goes wholly to one side, so no held-out image
has its own duplicate among the reference images.

Layer combination (one verdict from several layers): the min-p rule, calibrated on the held-out set.
A sample's statistic is ``m = min over layers of p_T``: it looks like a copy if ANY layer says so
(a flip fools the spatial block1_pool but not always block5_pool; a colour jitter the reverse).
Instead of a Bonferroni split of the false-positive rate (conservative when the layers agree, as
they do), the null distribution of ``m`` is read off the held-out images themselves (each one's
per-layer p-values computed leave-one-out against the other held-out images), so the correlation of
the layers is accounted for exactly:

- ``copy_p_value = (1 + #{held-out m_j <= m}) / (1 + H)``, ``copy_score = 1 - copy_p_value``;
- ``is_copy = copy_p_value <= fpr``; equivalently, ``is_copy`` when ANY layer's similarity exceeds
  that layer's threshold in ``Calibration.thresholds`` (which the plots draw).

With ``H`` held-out images the smallest possible p-value is ``1 / (1 + H)``: when it exceeds the
chosen rate no sample can be flagged, and :attr:`Calibration.warnings` says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from novelty import defaults
from novelty.errors import NoveltyError

TAIL_IMAGES = 5  # warn when fewer held-out images than this are expected beyond the threshold


def holdout_split(n: int, fraction: float = defaults.HOLDOUT_FRACTION, seed: int = defaults.SEED,
                  groups: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split ``n`` TRAINING images into (reference indices, held-out indices), both sorted int64.

    ``groups`` (length ``n``) labels near-duplicate groups; images with equal labels always land on
    the same side. Groups are visited in a seeded random order and put in the held-out part while
    they fit, so the held-out part has ``round(fraction * n)`` images (at least 1) unless the group
    sizes make that impossible. At least one image stays in the reference part.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
        raise NoveltyError(f"a held-out split needs at least 2 training images, received {n}")
    if not 0.0 < fraction < 1.0:
        raise NoveltyError(f"held-out fraction must be between 0 and 1 (exclusive), received {fraction}")
    labels = np.arange(n) if groups is None else np.asarray(groups)
    if labels.shape != (n,):
        raise NoveltyError(f"groups must have one label per training image ({n}), received shape {labels.shape}")
    target = min(n - 1, max(1, int(round(fraction * n))))
    unique, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(unique))
    chosen = np.zeros(len(unique), dtype=bool)
    taken = 0
    for g in order:
        if taken + sizes[g] <= target:
            chosen[g] = True
            taken += int(sizes[g])
            if taken == target:
                break
    if taken == 0:  # every group is larger than the target: take the smallest one that leaves a reference
        small = [g for g in order if sizes[g] < n]
        if not small:
            raise NoveltyError("cannot hold images out: all training images form one duplicate group")
        chosen[min(small, key=lambda g: sizes[g])] = True
    held = chosen[inverse]
    return np.flatnonzero(~held).astype(np.int64), np.flatnonzero(held).astype(np.int64)


def heldout_share(generated_similarity: np.ndarray, heldout_similarity: np.ndarray) -> np.ndarray:
    """Share of held-out similarities ``>=`` each GENERATED similarity: ``(N,)`` float64 in [0, 1]."""
    held = np.sort(np.asarray(heldout_similarity, dtype=np.float64))
    gen = np.asarray(generated_similarity, dtype=np.float64)
    return (len(held) - np.searchsorted(held, gen, side="left")) / len(held)


def conformal_p_value(generated_similarity: np.ndarray, heldout_similarity: np.ndarray) -> np.ndarray:
    """``(1 + #{held-out >= s}) / (1 + H)`` for each GENERATED similarity ``s``: ``(N,)`` float64."""
    held = np.sort(np.asarray(heldout_similarity, dtype=np.float64))
    gen = np.asarray(generated_similarity, dtype=np.float64)
    return (1.0 + len(held) - np.searchsorted(held, gen, side="left")) / (1.0 + len(held))


def size_corrected(p_value: np.ndarray, size_ratio: float) -> np.ndarray:
    """p-value against ``size_ratio`` times as many training images: ``1 - (1 - p) ** size_ratio``."""
    return 1.0 - (1.0 - np.asarray(p_value, dtype=np.float64)) ** size_ratio


def _leave_one_out_p(heldout_similarity: np.ndarray) -> np.ndarray:
    """Each held-out value's conformal p-value against the OTHER held-out values: ``(H,)``."""
    held = np.asarray(heldout_similarity, dtype=np.float64)
    ordered = np.sort(held)
    at_least = len(held) - np.searchsorted(ordered, held, side="left")  # includes the value itself
    return at_least / len(held)  # (1 + (at_least - 1)) / (1 + (H - 1))


@dataclass
class Calibration:
    """The null distribution of nearest-training similarity, per layer, and the combined rule."""

    layers: tuple[str, ...]
    heldout_similarity: dict[str, np.ndarray]  # layer -> (H,) nearest-reference similarity of held-out images
    fpr: float
    size_ratio: float  # |training| / |reference|
    heldout_min_p: np.ndarray  # (H,) min over layers of leave-one-out p-values
    min_p_cutoff: float  # is_copy when a sample's min-p is strictly below this (0: never)
    thresholds: dict[str, float]  # layer -> flag when similarity > this (inf: never)
    warnings: list[str] = field(default_factory=list)

    @property
    def n_heldout(self) -> int:
        return len(self.heldout_min_p)

    def summary(self) -> dict:
        """JSON-ready description: rule, rate, thresholds and the held-out distribution per layer."""
        return {
            "rule": "min-p over layers, calibrated on held-out images",
            "false_positive_rate": self.fpr,
            "n_heldout": self.n_heldout,
            "size_ratio": self.size_ratio,
            "min_p_cutoff": self.min_p_cutoff,
            "thresholds": {layer: _finite_or_none(t) for layer, t in self.thresholds.items()},
            "heldout_similarity": {
                layer: {q: float(np.quantile(h, float(q))) for q in ("0.5", "0.9", "0.95", "0.99")}
                | {"max": float(h.max())} for layer, h in self.heldout_similarity.items()
            },
            "warnings": list(self.warnings),
        }


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def calibrate(heldout_similarity: Mapping[str, np.ndarray], *, fpr: float = defaults.FALSE_POSITIVE_RATE,
              n_training: int | None = None, n_reference: int | None = None) -> Calibration:
    """Build the combined copy rule from each layer's held-out nearest-reference similarities ``(H,)``.

    ``n_training`` / ``n_reference`` give the size correction (both None: no correction).
    """
    if not 0.0 < fpr < 1.0:
        raise NoveltyError(f"false positive rate must be between 0 and 1 (exclusive), received {fpr}")
    if not heldout_similarity:
        raise NoveltyError("calibration needs at least one layer")
    layers = tuple(heldout_similarity)
    held = {layer: np.asarray(heldout_similarity[layer], dtype=np.float64).ravel() for layer in layers}
    sizes = {len(h) for h in held.values()}
    if len(sizes) != 1 or 0 in sizes:
        raise NoveltyError(f"every layer needs the same non-zero number of held-out images, received "
                           f"{ {layer: len(h) for layer, h in held.items()} }")
    if any(not np.isfinite(h).all() for h in held.values()):
        raise NoveltyError("held-out similarities contain NaN or infinite values")
    n_held = sizes.pop()
    if (n_training is None) != (n_reference is None):
        raise NoveltyError("give both n_training and n_reference, or neither")
    ratio = 1.0 if n_training is None else float(n_training) / float(n_reference)
    if ratio < 1.0:
        raise NoveltyError(f"n_training ({n_training}) must be at least n_reference ({n_reference})")

    min_p = np.min([_leave_one_out_p(h) for h in held.values()], axis=0)
    warnings: list[str] = []
    k = int(np.floor(fpr * (1 + n_held) + 1e-9)) - 1  # largest count of held-out min-p <= m allowed
    if k < 0:
        cutoff = 0.0
        warnings.append(f"{n_held} held-out images cannot support a false positive rate of {fpr}: the "
                        f"smallest possible p-value is {1 / (1 + n_held):.3g}; no sample is flagged "
                        f"(hold out at least {int(np.ceil(1 / fpr)) - 1} images or raise the rate)")
    else:
        cutoff = float(np.sort(min_p)[k])
    if k >= 0 and n_held * fpr < TAIL_IMAGES:
        warnings.append(f"the copy threshold rests on about {n_held * fpr:.1f} held-out images "
                        f"({n_held} held out at a false positive rate of {fpr}): treat it as rough; "
                        f"{int(np.ceil(TAIL_IMAGES / fpr))} held-out images would give {TAIL_IMAGES}")
    thresholds = {}
    counts = np.arange(n_held + 1)  # number of held-out similarities >= s
    for layer, h in held.items():
        p_at = size_corrected((1.0 + counts) / (1.0 + n_held), ratio)
        allowed = int(np.sum(p_at < cutoff)) - 1  # flag when at most this many held-out come as close
        if allowed < 0:
            thresholds[layer] = float("inf")
        elif allowed >= n_held:
            thresholds[layer] = float("-inf")
        else:
            thresholds[layer] = float(np.sort(h)[::-1][allowed])
    return Calibration(layers=layers, heldout_similarity=held, fpr=float(fpr), size_ratio=ratio,
                       heldout_min_p=min_p, min_p_cutoff=cutoff, thresholds=thresholds, warnings=warnings)


@dataclass
class Verdicts:
    """Per GENERATED sample: per-layer evidence and the combined verdict, arrays of length N."""

    heldout_share: dict[str, np.ndarray]  # layer -> share of held-out images that come as close
    p_value: dict[str, np.ndarray]  # layer -> size-corrected conformal p-value
    copy_p_value: np.ndarray
    copy_score: np.ndarray  # 1 - copy_p_value
    is_copy: np.ndarray  # bool


def judge(calibration: Calibration, generated_similarity: Mapping[str, np.ndarray]) -> Verdicts:
    """Apply the combined rule to each layer's GENERATED nearest-training similarities ``(N,)``."""
    missing = [layer for layer in calibration.layers if layer not in generated_similarity]
    if missing:
        raise NoveltyError(f"generated similarities missing for layers {missing}; calibrated on "
                           f"{list(calibration.layers)}")
    gen = {layer: np.asarray(generated_similarity[layer], dtype=np.float64).ravel() for layer in calibration.layers}
    if len({len(g) for g in gen.values()}) != 1:
        raise NoveltyError("every layer needs one similarity per generated sample")
    shares = {layer: heldout_share(gen[layer], calibration.heldout_similarity[layer]) for layer in gen}
    p = {layer: size_corrected(conformal_p_value(gen[layer], calibration.heldout_similarity[layer]),
                               calibration.size_ratio) for layer in gen}
    min_p = np.min(list(p.values()), axis=0)
    ordered = np.sort(calibration.heldout_min_p)
    copy_p = (1.0 + np.searchsorted(ordered, min_p, side="right")) / (1.0 + len(ordered))
    is_copy = min_p < calibration.min_p_cutoff
    return Verdicts(heldout_share=shares, p_value=p, copy_p_value=copy_p, copy_score=1.0 - copy_p,
                    is_copy=is_copy)


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
    from scipy.stats import beta

    if n == 0:
        return float("nan"), float("nan")
    alpha = 1.0 - confidence
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
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
