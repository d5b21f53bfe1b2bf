"""Calibrated copy verdicts: how close does a GENERATED sample come to the training set, compared with
how close genuinely unseen real images come?

A raw cosine similarity means little on its own (VGG features are non-negative, so every top-1
similarity on the masks lies between 0.77 and 0.95). The yardstick is a HELD-OUT part of the
training set: a seeded, group-aware split (:func:`holdout_split`, default 10%) picks the calibration
images; the rest is the REFERENCE part (also the training side of the C_T test).

The null distribution. Each held-out image is compared with every training image OUTSIDE its own
near-duplicate group (:func:`leave_group_out_nearest`): an index that has never seen it nor any copy
of it, and of almost the same size as the full training set a generated sample is compared with
(so no correction for index size is needed). Its best similarity, per layer, is "how close an unseen
real image comes".

Honest calibration. A held-out image with a near-duplicate elsewhere in the training set is not
unseen: its near-1 similarity would push the threshold up to where nothing is ever flagged (on the
masks, 15% of images have a near-duplicate and a plain split puts the 1% threshold at cosine 1.000).
So (a) the split is made by duplicate GROUP (:mod:`novelty.curate.curation` finds the groups): a group lies
wholly on one side; and (b) a held-out image's own group is left out of its search.

Mirror search (on by default in :func:`novelty.judge.verdicts.judge_run`): a GAN trained with flip
augmentation can reproduce a training image mirrored, which the spatial VGG features barely
recognise (on the masks 35% of mirrored copies were caught without it, 100% with it). Each sample is
then also embedded flipped left-right and its similarity is the better of the two; held-out images
get exactly the same treatment, so the calibration stays honest, and a held-out image's mirrored
search also skips the training images that are near-duplicates of its mirror image (collections
hold mirrored duplicates too: on the masks, two held-out images at cosine 0.99 otherwise).

Per layer, for a GENERATED sample with nearest-training similarity ``s``:

- ``c`` = number of held-out images whose similarity is ``>= s``;
- ``heldout_share = c / H`` (0: closer than every unseen real image);
- ``p_value = (1 + c) / (1 + H)``, the conformal p-value of that layer alone.

Layer combination (one verdict from several layers): min-count, calibrated on the held-out set.
A "layer" is any piece of evidence with one similarity per image: the VGG layers and the aligned
pixel match (:mod:`novelty.judge.alignment`, named ``aligned``) are treated alike.
A sample's statistic is ``t = min over layers of c`` (it looks like a copy if ANY layer says so: a
flip fools the spatial block1_pool more than block5_pool, a colour jitter the reverse). The same
statistic is computed for every held-out image, counting among the other held-out images and the
sample itself (full conformal: sample and held-out images are treated alike), and

- ``copy_p_value = (1 + #{held-out j: t_j < t, or t_j = t and z_j >= z}) / (1 + H)``,
  ``copy_score = 1 - copy_p_value``, where ``z`` breaks ties: the largest over layers of the robust
  z-score ``(s - median) / MAD`` of the similarity among the held-out images and the sample. Without
  it, a sample beyond every held-out image in one layer would tie with the top held-out image of
  each other layer, and with three pieces of evidence and 269 held-out images (the masks) the
  smallest p-value would be 3/270, above a 1% rate;
- ``is_copy = copy_p_value <= fpr``.

Because it is a conformal p-value of the combined statistic, the share of genuinely unseen real
images flagged is at most ``fpr`` whatever the correlation between layers, with no Bonferroni split
(which would be conservative when the layers agree, as they mostly do). The validation harness
(:mod:`novelty.judge.validate`) measures it. For display, :attr:`Calibration.thresholds` gives per layer
the similarity above which a sample is a copy on that layer ALONE (the plots draw it): a sample above
any layer's line is a copy; one just under the lines of several layers can be one too.

With ``H`` held-out images the smallest p-value is ``1 / (1 + H)``: below ``H = 1 / fpr - 1`` no
sample can be flagged, and :attr:`Calibration.warnings` says so and what size would do. The rate is
kept as asked rather than raised to the best reachable one: a flag then always means what the user
asked it to mean, and a rate as loose as ``1 / (1 + H)`` (0.2 with 4 held-out images) would flag
ordinary samples. Identical copies are still caught, by :mod:`novelty.judge.identical`, which needs no
calibration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    return _exceedance(np.asarray(generated_similarity, dtype=np.float64), held) / len(held)


def conformal_p_value(generated_similarity: np.ndarray, heldout_similarity: np.ndarray) -> np.ndarray:
    """``(1 + #{held-out >= s}) / (1 + H)`` for each GENERATED similarity ``s``: ``(N,)`` float64."""
    held = np.sort(np.asarray(heldout_similarity, dtype=np.float64))
    return (1.0 + _exceedance(np.asarray(generated_similarity, dtype=np.float64), held)) / (1.0 + len(held))


def _exceedance(similarity: np.ndarray, heldout_sorted: np.ndarray) -> np.ndarray:
    """Number of held-out values ``>=`` each similarity (``heldout_sorted`` ascending): ``(N,)`` int64."""
    return (len(heldout_sorted) - np.searchsorted(heldout_sorted, similarity, side="left")).astype(np.int64)


def leave_group_out_nearest(heldout_features: np.ndarray, training_features: np.ndarray,
                            heldout_index: np.ndarray, components: np.ndarray, *,
                            exclude: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                            extra: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Nearest TRAINING image of each held-out image outside its own duplicate group.

    ``heldout_features`` ``(H, D)`` belong to training rows ``heldout_index`` of
    ``training_features`` ``(N, D)``; ``components`` ``(N,)`` labels the duplicate groups.
    ``exclude(rows, cols)``, when given, marks further (held-out row, training index) pairs to skip
    (each held-out image looks ``extra`` places further down its list for them). Returns (training
    indices ``(H,)`` int64, cosine similarities ``(H,)`` float32).
    """
    idx, sims = leave_group_out_neighbours(heldout_features, training_features, heldout_index, components,
                                           count=1, exclude=exclude, extra=extra)
    return idx[:, 0], sims[:, 0]


def leave_group_out_neighbours(heldout_features: np.ndarray, training_features: np.ndarray,
                               heldout_index: np.ndarray, components: np.ndarray, *, count: int,
                               exclude: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                               extra: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` nearest TRAINING images of each held-out image outside its own duplicate group,
    best first, as :func:`leave_group_out_nearest` finds the first: (indices ``(H, C)`` int64, -1
    where fewer are usable; similarities ``(H, C)`` float32, -inf there), ``C = min(count, N)``."""
    from novelty.search.neighbors import top_k

    components = np.asarray(components)
    own = components[np.asarray(heldout_index)]
    sizes = np.bincount(components)
    width = int(min(len(training_features), sizes[own].max() + count + (extra if exclude is not None else 0)))
    idx, sims = top_k(heldout_features, training_features, width)
    usable = components[idx] != own[:, None]
    if exclude is not None:
        rows = np.repeat(np.arange(len(idx)), width)
        usable &= ~np.asarray(exclude(rows, idx.ravel()), dtype=bool).reshape(idx.shape)
    if not usable.any(axis=1).all():
        raise NoveltyError("a held-out image has no training image outside its own duplicate group")
    order = np.argsort(~usable, axis=1, kind="stable")[:, :count]  # usable places first, in list order
    rows = np.arange(len(idx))[:, None]
    taken = usable[rows, order]
    return np.where(taken, idx[rows, order], -1), np.where(taken, sims[rows, order], -np.inf).astype(np.float32)


@dataclass
class Calibration:
    """The null distribution of nearest-training similarity, per layer, and the combined rule."""

    layers: tuple[str, ...]
    heldout_similarity: dict[str, np.ndarray]  # layer -> (H,), row j = held-out image j in every layer
    fpr: float
    thresholds: dict[str, float]  # layer -> a sample above this in this layer alone is a copy (inf: never)
    warnings: list[str] = field(default_factory=list)
    _sorted: np.ndarray = field(init=False, repr=False)  # (L, H) ascending similarities per layer
    _others: np.ndarray = field(init=False, repr=False)  # (H, L) count among the OTHER held-out images

    def __post_init__(self) -> None:
        sims = np.stack([self.heldout_similarity[layer] for layer in self.layers])  # (L, H)
        self._sorted = np.sort(sims, axis=1)
        self._others = np.stack([_exceedance(sims[i], self._sorted[i]) - 1 for i in range(len(self.layers))], axis=1)

    @property
    def n_heldout(self) -> int:
        return self._others.shape[0]

    @property
    def reachable(self) -> bool:
        """Whether the smallest possible p-value, ``1 / (1 + H)``, reaches the rate: else nothing is flagged."""
        return 1.0 / (1 + self.n_heldout) <= self.fpr + 1e-12

    def counts(self, generated_similarity: np.ndarray) -> np.ndarray:
        """Exceedance counts ``(N, L)`` of GENERATED similarities ``(N, L)`` (layers in ``self.layers`` order)."""
        return np.stack([_exceedance(generated_similarity[:, i], self._sorted[i])
                         for i in range(len(self.layers))], axis=1)

    def copy_p_values(self, generated_similarity: np.ndarray, block: int = 256) -> np.ndarray:
        """Full-conformal p-values ``(N,)`` of GENERATED similarities ``(N, L)``.

        Each held-out image's count is taken among the other held-out images AND the sample, so the
        sample and the held-out images are treated alike (exchangeable under the null). Equal counts
        are ordered by the tie-break (:func:`_robust_z`): without it a sample beyond every held-out image
        in one layer would tie with the top held-out image of each other layer.
        """
        gen = np.asarray(generated_similarity, dtype=np.float64)
        t_gen = self.counts(gen).min(axis=1)  # (N,)
        held = np.stack([self.heldout_similarity[layer] for layer in self.layers], axis=1)  # (H, L)
        out = np.empty(len(gen), dtype=np.float64)
        for start in range(0, len(gen), block):
            g = gen[start:start + block]
            t_held = (self._others[None] + (g[:, None, :] >= held[None])).min(axis=2)  # (B, H)
            z_held, z_gen = _robust_z(held, g)
            t = t_gen[start:start + block, None]
            beaten = (t_held < t) | ((t_held == t) & (z_held.max(axis=2) >= z_gen.max(axis=1)[:, None]))
            out[start:start + block] = 1.0 + beaten.sum(axis=1)
        return out / (1.0 + self.n_heldout)

    def summary(self) -> dict:
        """JSON-ready description: rule, rate and per-layer thresholds."""
        return {
            "rule": "any layer: min over layers of the held-out exceedance count, full-conformal p-value "
                    "against held-out images",
            "false_positive_rate": self.fpr,
            "n_heldout": self.n_heldout,
            "reachable": self.reachable,
            "heldout_needed": heldout_needed(self.fpr),
            "lowest_reachable_rate": 1.0 / (1 + self.n_heldout),
            "thresholds": {layer: _finite_or_none(t) for layer, t in self.thresholds.items()},
            "warnings": list(self.warnings),
        }


def _robust_z(held: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tie-break of the combined rule: per layer, how far a similarity lies above the typical one,
    in robust units, ``(s - median) / MAD`` over the held-out images AND the sample (so the two are
    treated alike). ``held`` ``(H, L)``, ``generated`` ``(B, L)``; returns (held-out ``(B, H, L)``,
    samples ``(B, L)``)."""
    pooled = np.concatenate([np.broadcast_to(held[None], (len(generated), *held.shape)), generated[:, None]],
                            axis=1)  # (B, H + 1, L)
    with np.errstate(invalid="ignore"):  # -inf similarities (a probe with one layer only) stay -inf
        centre = np.median(pooled, axis=1, keepdims=True)  # (B, 1, L)
        spread = np.median(np.abs(pooled - centre), axis=1, keepdims=True)
        z = (pooled - centre) / np.maximum(spread, 1e-12)
    z = np.nan_to_num(z, nan=-np.inf)
    return z[:, :-1], z[:, -1]


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _alone_threshold(calibration: Calibration, layer_index: int) -> float:
    """Lowest similarity above which a sample is a copy on this layer alone (others at -inf)."""
    descending = calibration._sorted[layer_index][::-1]
    n_layers = len(calibration.layers)

    def flagged(position: int) -> bool:
        probe = np.full((1, n_layers), -np.inf)
        probe[0, layer_index] = np.nextafter(descending[position], np.inf)
        return bool(calibration.copy_p_values(probe)[0] <= calibration.fpr)

    if not flagged(0):
        return float("inf")
    low, high = 0, len(descending) - 1  # flagged(low) holds; flagged is monotone in position
    if flagged(high):
        return float("-inf") if calibration.copy_p_values(np.full((1, n_layers), -np.inf))[0] <= calibration.fpr \
            else float(descending[high])
    while high - low > 1:
        mid = (low + high) // 2
        if flagged(mid):
            low = mid
        else:
            high = mid
    return float(descending[low])


def heldout_needed(fpr: float) -> int:
    """The fewest held-out images whose smallest conformal p-value, ``1 / (1 + H)``, reaches ``fpr``."""
    return int(np.ceil(1.0 / fpr - 1e-9)) - 1


def too_small_message(n_heldout: int, fpr: float, holdout_fraction: float | None = None) -> str:
    """What to tell a user whose ``n_heldout`` images cannot reach ``fpr``, and what size would."""
    needed = heldout_needed(fpr)
    size = (f" (about {int(np.ceil(needed / holdout_fraction))} training images at --holdout {holdout_fraction:g})"
            if holdout_fraction else "")
    return (f"too few held-out images to judge at a false positive rate of {fpr:g}: {n_heldout} held out, "
            f"at least {needed} needed{size}; the smallest reachable rate is {1 / (1 + n_heldout):.3g} "
            f"(--fpr), so the calibrated rule flags nothing and only identical copies are called copies")


def calibrate(heldout_similarity: Mapping[str, np.ndarray], *,
              fpr: float = defaults.FALSE_POSITIVE_RATE, holdout_fraction: float | None = None) -> Calibration:
    """Build the combined copy rule from each layer's held-out nearest-training similarities ``(H,)``.

    Row j of every layer is the same held-out image. ``holdout_fraction`` (the split's, when known)
    only words the warning of a held-out set too small for ``fpr``: how many training images would do.
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
    calibration = Calibration(layers=layers, heldout_similarity=held, fpr=float(fpr), thresholds={})
    calibration.thresholds = {layer: _alone_threshold(calibration, i) for i, layer in enumerate(layers)}
    if not calibration.reachable:
        calibration.warnings.append(too_small_message(n_held, fpr, holdout_fraction))
    elif n_held * fpr < TAIL_IMAGES:
        calibration.warnings.append(
            f"the copy threshold rests on about {n_held * fpr:.1f} held-out images ({n_held} held out at "
            f"a false positive rate of {fpr}): treat it as rough; {int(np.ceil(TAIL_IMAGES / fpr))} "
            f"held-out images would give {TAIL_IMAGES}")
    return calibration


@dataclass
class Verdicts:
    """Per GENERATED sample: per-layer evidence and the combined verdict, arrays of length N."""

    heldout_share: dict[str, np.ndarray]  # layer -> share of held-out images that come as close
    p_value: dict[str, np.ndarray]  # layer -> conformal p-value of that layer alone
    copy_p_value: np.ndarray
    copy_score: np.ndarray  # 1 - copy_p_value
    is_copy: np.ndarray  # bool


def judge(calibration: Calibration, generated_similarity: Mapping[str, np.ndarray]) -> Verdicts:
    """Apply the combined rule to each layer's GENERATED nearest-training similarities ``(N,)``."""
    missing = [layer for layer in calibration.layers if layer not in generated_similarity]
    if missing:
        raise NoveltyError(f"generated similarities missing for layers {missing}; calibrated on "
                           f"{list(calibration.layers)}")
    columns = [np.asarray(generated_similarity[layer], dtype=np.float64).ravel() for layer in calibration.layers]
    if len({len(c) for c in columns}) != 1:
        raise NoveltyError("every layer needs one similarity per generated sample")
    gen = np.stack(columns, axis=1)
    n_held = calibration.n_heldout
    counts = calibration.counts(gen)
    copy_p = calibration.copy_p_values(gen)
    return Verdicts(heldout_share={layer: counts[:, i] / n_held for i, layer in enumerate(calibration.layers)},
                    p_value={layer: (1.0 + counts[:, i]) / (1.0 + n_held) for i, layer in enumerate(calibration.layers)},
                    copy_p_value=copy_p, copy_score=1.0 - copy_p, is_copy=copy_p <= calibration.fpr + 1e-12)
