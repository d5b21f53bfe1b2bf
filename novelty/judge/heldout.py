"""The yardstick: what the TRAINING set alone decides. Near-duplicate groups, the group-aware held-out
split, each held-out image's evidence against the training images outside its own group, and the
calibrated copy rule (:mod:`novelty.judge.calibration`); with the held-out images that come closest
to a training image (the rule's upper end) and the ``summary.json`` "calibration" section.
:func:`novelty.judge.assess.assess` and the validation harness share this one path;
:func:`nearest_training` gives the harness the same evidence for its probes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from novelty import defaults
from novelty.curate import curation
from novelty.judge import calibration
from novelty.judge.alignment import ALIGNED, AlignedMatch
from novelty.judge.evidence import (
    Evidence,
    Found,
    LayerCosine,
    calibrated,
    depth,
    find,
    heldout_queries,
    sample_queries,
)


@dataclass
class TrainingCalibration:
    """What the training set alone decides: duplicate groups, the held-out split, the copy rule."""

    self_neighbours: dict[str, tuple[np.ndarray, np.ndarray]]  # layer -> (N, k) other training images
    outliers: object  # novelty.curate.curation.Outliers, from the same search (deeper lists)
    duplicate_rule: object  # novelty.curate.curation.DuplicateRule
    components: np.ndarray  # (N,) duplicate-group labels (singletons have their own)
    reference: np.ndarray  # training indices
    heldout: np.ndarray  # training indices
    heldout_nearest: dict[str, tuple[np.ndarray, np.ndarray]]  # evidence name -> (H,) index, similarity
    calibration: object  # novelty.judge.calibration.Calibration


def calibrate_training(training: Mapping[str, np.ndarray], *, k: int = defaults.TOP_K,
                       holdout_fraction: float = defaults.HOLDOUT_FRACTION,
                       fpr: float = defaults.FALSE_POSITIVE_RATE, seed: int = defaults.SEED,
                       mirrored: Callable[[np.ndarray], Mapping[str, np.ndarray]] | None = None,
                       pixels: Callable[[np.ndarray], object] | None = None,
                       evidence: Sequence[Evidence] | None = None, progress: bool = False) -> TrainingCalibration:
    """Duplicate groups, group-aware held-out split and calibrated copy rule from TRAINING ``{layer: (N, D)}``
    (rows L2-normalised).

    ``mirrored(indices)``: features ``{layer: (len(indices), D)}`` of those training images flipped
    left-right; given, a held-out image's similarity is the better of itself and its mirror image
    (as for generated samples). ``evidence``: the pieces to calibrate (:mod:`novelty.judge.evidence`;
    decisive ones are skipped); None: one :class:`~novelty.judge.evidence.LayerCosine` per layer and,
    with ``pixels(indices)`` (:func:`novelty.judge.alignment.grey` images of those training images),
    the aligned pixel match, named ``aligned``.
    """
    if evidence is None:
        evidence = [LayerCosine(layer) for layer in training] + ([AlignedMatch(pixels)] if pixels is not None else [])
    n = len(next(iter(training.values())))
    deep, rule, components = curation.duplicate_groups(training, k, progress, depth=curation.outlier_depth(n))
    self_nb = {layer: (idx[:, :k], sims[:, :k]) for layer, (idx, sims) in deep.items()}
    outliers = curation.batch_outliers(training, deep, components)
    reference, heldout = calibration.holdout_split(n, holdout_fraction, seed, groups=components)
    queries = heldout_queries(training, heldout, components, count=depth(evidence), mirrored=mirrored,
                              is_duplicate=rule.is_duplicate, progress=progress)
    found = find(calibrated(evidence), queries)
    nearest = {name: (f.index, f.score) for name, f in found.items()}
    cal = calibration.calibrate({name: sims for name, (_, sims) in nearest.items()}, fpr=fpr,
                                holdout_fraction=holdout_fraction)
    return TrainingCalibration(self_nb, outliers, rule, components, reference, heldout, nearest, cal)


def closest_heldout(tc: TrainingCalibration, training_ids: Sequence[str],
                    count: int = defaults.CLOSEST_HELDOUT) -> list[dict]:
    """The held-out images that come closest to a training image outside their own duplicate group,
    most copy-like first (the combined rule's p-value): the yardstick's upper end, which sets the
    copy threshold. Each: held-out id, its nearest training id at the layer that says most, and the
    similarity per layer."""
    cal, heldout_nearest, heldout = tc.calibration, tc.heldout_nearest, tc.heldout
    held_sims = {layer: heldout_nearest[layer][1] for layer in cal.layers}
    judged = calibration.judge(cal, held_sims)
    order = np.lexsort((-np.max([held_sims[layer] for layer in cal.layers], axis=0), judged.copy_p_value))
    pairs = []
    for i in order[:count]:
        layer = min(cal.layers, key=lambda name: (judged.p_value[name][i], -held_sims[name][i]))
        pairs.append({"heldout_id": training_ids[heldout[i]],
                      "nearest_id": training_ids[heldout_nearest[layer][0][i]], "layer": layer,
                      "similarity": {name: round(float(held_sims[name][i]), 6) for name in cal.layers},
                      "copy_p_value": round(float(judged.copy_p_value[i]), 6)})
    return pairs


def calibration_summary(tc: TrainingCalibration, closest: list[dict], *, holdout_fraction: float,
                        seed: int) -> dict:
    """``summary.json`` "calibration": the rule, per piece of evidence its threshold and the held-out
    similarities' percentiles, the split, and the ``closest`` held-out pairs."""
    out = tc.calibration.summary()
    for name in tc.calibration.layers:
        out[name] = {"threshold": out["thresholds"][name],
                     "quantiles": [round(float(q), 6) for q in
                                   np.quantile(tc.heldout_nearest[name][1], np.linspace(0, 1, 101))]}
    out |= {"holdout_fraction": holdout_fraction, "seed": seed, "n_reference": len(tc.reference),
            "split": "by near-duplicate group: no group straddles reference and held-out"}
    out["closest_heldout"] = closest
    return out


def nearest_training(queries: Mapping[str, np.ndarray], training: Mapping[str, np.ndarray],
                     neighbours: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None, *,
                     mirrored: Mapping[str, np.ndarray] | None = None, query_pixels=None,
                     training_pixels: Callable[[np.ndarray], object] | None = None, progress: bool = False,
                     desc: str = "aligning generated samples") -> tuple[dict[str, Found], list | None]:
    """Each query's nearest TRAINING image, per piece of evidence: every layer, and ``aligned`` when
    ``query_pixels`` (:func:`novelty.judge.alignment.grey` images ``(M, S, S)``) and ``training_pixels(indices)``
    (those of training images) are given.

    ``queries`` / ``training``: ``{layer: (M, D)}`` / ``{layer: (N, D)}``, rows L2-normalised;
    ``neighbours[layer]`` = the queries' lists ``(indices (M, k), similarities (M, k))`` best first
    (None: searched here); ``mirrored`` ``{layer: (M, D)}``: the queries flipped left-right,
    normalised (None: no mirror search; given, a query's nearest is the better of itself and its
    mirror image). Returns ({name: :class:`novelty.judge.evidence.Found` (index, similarity, mirrored)},
    the :class:`novelty.judge.alignment.Match` of each query, or None without alignment).
    """
    pieces: list[Evidence] = [LayerCosine(layer) for layer in training]
    if query_pixels is not None:
        pieces.append(AlignedMatch(training_pixels, query_pixels))
    found = find(pieces, sample_queries(queries, training, neighbours, count=depth(pieces), mirrored=mirrored,
                                        progress=progress, desc=desc))
    return found, found[ALIGNED].detail if ALIGNED in found else None
