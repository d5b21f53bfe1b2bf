"""Set-level statistics of a verdict: the copy rate with its intervals, signs of mode collapse among the
GENERATED samples, and the data-copying test C_T and PRDC per layer; and ``summary.json``, which
gives them with the calibration and curation sections (:func:`assessment_summary`).

The maths lives below: :mod:`novelty.judge.rates` (copy rate), :mod:`novelty.judge.copying`
(C_T), :mod:`novelty.judge.prdc` and :mod:`novelty.curate.duplicates` (near-duplicate groups,
k-occurrence); here it runs on one verdict's arrays (:func:`novelty.judge.assess.assess`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from novelty import defaults
from novelty.curate import curation
from novelty.judge import calibration, rates
from novelty.judge.copying import data_copying_test
from novelty.judge.evidence import Evidence, Found
from novelty.judge.heldout import TrainingCalibration, calibration_summary
from novelty.judge.prdc import compute_prdc
from novelty.judge.trainingset import curation_summary
from novelty.search.rows import UnitRows

DISTINCT_SUBSETS = 200  # random subsets averaged for the distinct-top-1 comparison
SMALL_COPY_SET = 30  # fewer generated samples than this: the copy rate carries a warning


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = set(a.tolist()), set(b.tolist())
    union = len(sa | sb)
    return len(sa & sb) / union if union else 1.0


def layer_agreement(lists: Mapping[str, np.ndarray]) -> np.ndarray:
    """Mean over layer pairs of the Jaccard index of each GENERATED sample's top-k TRAINING lists.

    ``lists[layer]``: ``(M, k)`` training indices. Returns ``(M,)``; NaN with a single layer.
    """
    layers = list(lists)
    m = len(next(iter(lists.values())))
    if len(layers) < 2:
        return np.full(m, np.nan)
    pairs = list(itertools.combinations(layers, 2))
    return np.array([np.mean([_jaccard(lists[a][i], lists[b][i]) for a, b in pairs]) for i in range(m)])


def _distinct(values: np.ndarray, size: int, rng: np.random.Generator) -> float:
    """Mean number of distinct values in random subsets of ``size`` (all of them when equal)."""
    if size >= len(values):
        return float(len(np.unique(values)))
    return float(np.mean([len(np.unique(rng.choice(values, size, replace=False)))
                          for _ in range(DISTINCT_SUBSETS)]))


@dataclass
class ModeCollapse:
    """Signs of mode collapse: near-duplicate groups among the GENERATED samples, how often each
    TRAINING image is retrieved against chance, and distinct top-1 training images of the samples
    against those of as many held-out images."""

    groups: np.ndarray  # (M,) near-duplicate group number per generated sample, 0: none
    times_retrieved: np.ndarray  # (N,) per training image, over every layer's list
    chance: float  # times a training image is retrieved by chance
    retrieval_score: np.ndarray  # (N,) times_retrieved / chance
    is_retrieval_hub: np.ndarray  # (N,) bool
    distinct: dict  # layer -> {"n", "generated", "heldout"}

    def summary(self, training_ids: Sequence[str], generated_ids: Sequence[str]) -> dict:
        """``summary.json`` "mode_collapse"."""
        hub_order = np.argsort(-self.times_retrieved, kind="stable")
        hubs = [{"id": training_ids[j], "times_retrieved": int(self.times_retrieved[j]),
                 "ratio_to_chance": round(float(self.retrieval_score[j]), 3)}
                for j in hub_order if self.is_retrieval_hub[j]]
        groups: dict[int, list[str]] = {}
        for i, g in enumerate(self.groups):
            if g:
                groups.setdefault(int(g), []).append(generated_ids[i])
        return {"duplicate_groups": len(groups),
                "samples_in_duplicate_groups": int(sum(len(v) for v in groups.values())),
                "groups": [ids for _, ids in sorted(groups.items())],
                "distinct_top1": self.distinct,
                "retrieval_chance": round(self.chance, 6),
                "retrieval_hubs": hubs}


def mode_collapse(generated: Mapping[str, np.ndarray], lists: Mapping[str, np.ndarray],
                  heldout_nearest: Mapping[str, np.ndarray], rule, n: int, *, k: int, seed: int) -> ModeCollapse:
    """:class:`ModeCollapse` of GENERATED ``{layer: (M, D)}`` (rows L2-normalised) with top-k TRAINING
    lists ``{layer: (M, k)}`` among ``n`` training images; ``heldout_nearest[layer]``: ``(H,)`` nearest
    training index of each held-out image; ``rule``: the training set's duplicate rule."""
    layers = tuple(lists)
    m = len(lists[layers[0]])
    if m >= 2:
        gen_nb = {layer: curation.self_neighbours(generated[layer], k, False) for layer in layers}
        components = curation.duplicate_components(generated, gen_nb, rule)
    else:
        components = np.zeros(1, np.int64)
    times_retrieved = np.zeros(n, dtype=np.int64)
    for layer in layers:
        times_retrieved += curation.k_occurrence(lists[layer], n)
    chance = m * lists[layers[0]].shape[1] * len(layers) / n
    rng = np.random.default_rng(seed)
    size = min(m, len(heldout_nearest[layers[0]]))
    distinct = {layer: {"n": size, "generated": _distinct(lists[layer][:, 0], size, rng),
                        "heldout": _distinct(heldout_nearest[layer], size, rng)} for layer in layers}
    return ModeCollapse(curation.group_numbers(components), times_retrieved, chance, times_retrieved / chance,
                        times_retrieved >= defaults.HUB_FACTOR * max(1.0, chance), distinct)


@dataclass
class SetStatistics:
    rate: dict  # novelty.judge.rates.copy_rate
    ct: dict  # layer -> novelty.judge.copying.CopyingTest
    prdc: dict  # layer -> PRDC as a dict (only where both sides are large enough)
    warnings: list[str]


def _prdc(training: np.ndarray, generated: np.ndarray, seed: int) -> dict:
    """PRDC on equal set sizes, as in Naeem et al. (recall and coverage depend on the ratio of the sizes):
    a seeded subsample of the larger side."""
    n, m = len(training), len(generated)
    rng = np.random.default_rng(seed)
    size = min(n, m)
    t_rows = np.sort(rng.choice(n, size, replace=False)) if n > size else slice(None)
    g_rows = np.sort(rng.choice(m, size, replace=False)) if m > size else slice(None)
    return compute_prdc(training[t_rows], generated[g_rows], defaults.PRDC_K).as_dict()


def set_statistics(is_copy: np.ndarray, training: Mapping[str, np.ndarray], generated: Mapping[str, np.ndarray],
                   reference: np.ndarray, heldout: np.ndarray, *, fpr: float, seed: int) -> SetStatistics:
    """The copy rate of the flags ``is_copy`` ``(M,)``, and per layer C_T (REFERENCE training rows
    against HELD-OUT ones and the GENERATED samples) and PRDC (training against generated), with the
    warnings where the sets are too small for them to mean much."""
    n, m = len(next(iter(training.values()))), len(is_copy)
    warnings: list[str] = []
    rate = rates.copy_rate(is_copy, fpr=fpr, seed=seed)
    if m < SMALL_COPY_SET:
        warnings.append(f"copy rate from only {m} generated samples: see its exact interval")
    ct, prdc = {}, {}
    for layer in training:
        reference_rows = (training[layer].subset(reference) if isinstance(training[layer], UnitRows)
                          else training[layer][reference])  # a view: the reference set is most of the set
        ct[layer] = data_copying_test(reference_rows, training[layer][heldout], generated[layer], seed=seed)
        warnings += [f"C_T {layer}: {w}" for w in ct[layer].warnings]
        if min(n, m) > defaults.PRDC_K:
            prdc[layer] = _prdc(training[layer], generated[layer], seed)
    if not prdc:
        warnings.append(f"PRDC skipped: it needs more than {defaults.PRDC_K} samples on each side")
    elif min(n, m) < defaults.MIN_SET_SIZE:
        warnings.append(f"PRDC on {min(n, m)} images per side (a seeded subsample of the larger set) and C_T "
                        f"on {m} generated samples: below {defaults.MIN_SET_SIZE} per side they move by "
                        "several hundredths between runs; compare runs of equal sizes only")
    return SetStatistics(rate, ct, prdc, warnings)


def assessment_summary(kinds_known: Sequence[type[Evidence]], pieces: Sequence[Evidence], found: Mapping[str, Found], verdicts, tc: TrainingCalibration,
             mode: ModeCollapse, stats: SetStatistics, samples: list[dict], *, settings: dict,
             ids: tuple[Sequence[str], Sequence[str]], closest: list[dict], timings: dict) -> dict:
    """``summary.json`` of :func:`novelty.judge.assess.assess`: ``settings`` (its own, before the
    evidence's switches, one per kind of ``kinds_known`` that has one), counts, copies (with a count per
    decisive kind, None where the run has none), the calibration, C_T, PRDC, mode collapse, curation,
    warnings and ``timings``."""
    cal, training_ids, generated_ids = tc.calibration, ids[0], ids[1]
    kinds = {type(piece) for piece in pieces}
    borderline = settings.pop("borderline_rate")
    switches = sorted((kind.setting, kind) for kind in kinds_known if kind.setting)  # by name
    settings |= {setting: kind in kinds for setting, kind in switches}
    settings |= {"borderline_rate": borderline, "duplicate_z": defaults.DUPLICATE_Z,
                 "outlier_z": defaults.OUTLIER_Z, "outlier_scales": list(tc.outliers.scales),
                 "hub_factor": defaults.HUB_FACTOR, "confidence": defaults.CONFIDENCE,
                 "bootstrap_resamples": defaults.BOOTSTRAP_RESAMPLES}
    decisive = {kind.name: (int((found[kind.name].index >= 0).sum()) if kind in kinds else None)
                for kind in kinds_known if kind.decisive}
    not_judged = None if cal.reachable else calibration.too_small_message(
        cal.n_heldout, settings["false_positive_rate"], settings["holdout_fraction"])
    return {
        "settings": settings,
        "counts": {"training": len(training_ids), "reference": len(tc.reference), "heldout": len(tc.heldout),
                   "generated": len(generated_ids)},
        "copies": stats.rate | {"borderline": int(sum(r["verdict"] == "borderline" for r in samples)),
                                "calibrated": int(verdicts.is_copy.sum()), **decisive, "not_judged": not_judged},
        "calibration": calibration_summary(tc, closest, holdout_fraction=settings["holdout_fraction"],
                                           seed=settings["seed"]),
        "copying_test": {layer: ct.as_dict() for layer, ct in stats.ct.items()},
        "prdc": stats.prdc,
        "mode_collapse": mode.summary(training_ids, generated_ids),
        "curation": curation_summary(tc),
        "warnings": list(cal.warnings) + stats.warnings,
        "timings": timings,
    }
