"""Verdicts and curation of a run folder: reads its features and neighbour lists, writes
``samples.csv``, ``training.csv``, ``evidence.json``, ``summary.json`` and ``plots/*.png``.

Layers, from the bottom: the maths lives in :mod:`novelty.judge.calibration` (held-out split, calibrated
copy rule, copy-rate intervals), :mod:`novelty.judge.copying` (C_T), :mod:`novelty.judge.prdc` and
:mod:`novelty.curate.curation` (duplicates, outliers, hubs, pixel flags). :func:`assess` runs them on
loaded arrays; :func:`judge_run` loads a run folder, calls :func:`assess` and writes the files.

What a run gets (see the README for the columns):

- per GENERATED sample: nearest training image, similarity (the better of the sample and its mirror
  image, ``<layer>_mirrored`` saying which), share of held-out images that come as close and
  p-value per layer, and the same for the aligned pixel match (``aligned_*``, :mod:`novelty.judge.alignment`:
  the best-aligned training image among the nearest, with the crop's scale and side); the combined
  ``copy_score`` / ``copy_p_value`` / ``is_copy`` (any piece of evidence, calibrated on held-out
  images, see :mod:`novelty.judge.calibration`, or identical to a training image, :mod:`novelty.judge.identical`,
  which holds whatever the held-out set's size); a ``verdict`` word
  (``copy``; ``borderline`` when not a copy but ``copy_p_value <= BORDERLINE_RATE``; ``novel``);
  ``layer_agreement`` (mean Jaccard index of the layers' top-k lists); its near-duplicate group
  among the generated samples;
- per TRAINING image: outlier score and flag, duplicate group, hub score and flag, how often the
  generated samples retrieve it, pixel flags;
- set level: the copy rate with intervals, C_T per layer, PRDC per layer, signs of mode collapse
  (near-duplicate groups among samples, distinct top-1 training images against unseen real images,
  retrieval hubs), and warnings where the numbers are too few to mean much (``copies.not_judged``:
  too few held-out images for the rate, and what size would do); ``overlap``: generated files that
  are training files;
- the calibration's upper end: the held-out images that come closest to a training image outside
  their own duplicate group, listed in ``summary.json`` and shown side by side in
  ``plots/closest_heldout_pairs.png`` (when such a pair is a re-framing of one picture, the copy
  threshold rises to pass it: the plot shows why).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from novelty import bounds, defaults
from novelty.errors import NoveltyError
from novelty.files import read_json, write_json
from novelty.judge.identical import training_overlap
from novelty.run import tables
from novelty.run.folder import RunFolder
from novelty.stopwatch import Stopwatch

EVIDENCE_FILE = "evidence.json"
DISTINCT_SUBSETS = 200  # random subsets averaged for the distinct-top-1 comparison
CROP_SIDE = {"query": "sample", "candidate": "training"}  # aligned match: which image is the crop of the other
SMALL_COPY_SET = 30  # fewer generated samples than this: the copy rate carries a warning


@dataclass
class Assessment:
    """Everything :func:`assess` found; arrays are row-aligned with the ids given to it."""

    samples: list[dict]  # one row per GENERATED sample (samples.csv)
    training: list[dict]  # one row per TRAINING image (training.csv), pixel flags added later
    evidence: dict  # per GENERATED sample: grouped neighbour lists, layer agreement
    summary: dict
    plot_data: dict = field(default_factory=dict)


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


def grouped_list(indices: np.ndarray, scores: np.ndarray, components: np.ndarray,
                 group_size: np.ndarray, training_ids: Sequence[str]) -> list[dict]:
    """A best-first neighbour list with near-duplicate TRAINING images shown once, with a count."""
    out: list[dict] = []
    seen: dict[int, dict] = {}
    for j, s in zip(indices.tolist(), scores.tolist(), strict=True):
        comp = int(components[j])
        if group_size[j] > 1 and comp in seen:
            seen[comp]["count"] += 1
            seen[comp]["duplicates"].append(training_ids[j])
            continue
        entry = {"id": training_ids[j], "score": round(float(s), 6), "count": 1, "duplicates": [],
                 "group_size": int(group_size[j])}
        out.append(entry)
        if group_size[j] > 1:
            seen[comp] = entry
    return out


def _match_evidence(found, row: Mapping) -> dict:
    """The aligned pixel match of one GENERATED sample for ``evidence.json``: which training image,
    how well, and how the two line up (:class:`novelty.judge.alignment.Match`)."""
    return {"id": row["aligned_nearest_id"] or None, "score": row["aligned_similarity"],
            "mirrored": row["aligned_mirrored"], "scale": found.scale, "crop": CROP_SIDE[found.inside],
            "offset": list(found.offset)}


def _distinct(values: np.ndarray, size: int, rng: np.random.Generator) -> float:
    """Mean number of distinct values in random subsets of ``size`` (all of them when equal)."""
    if size >= len(values):
        return float(len(np.unique(values)))
    return float(np.mean([len(np.unique(rng.choice(values, size, replace=False)))
                          for _ in range(DISTINCT_SUBSETS)]))


@dataclass
class TrainingCalibration:
    """What the training set alone decides: duplicate groups, the held-out split, the copy rule."""

    self_neighbours: dict[str, tuple[np.ndarray, np.ndarray]]  # layer -> (N, k) other training images
    outliers: object  # novelty.curate.curation.Outliers, from the same search (deeper lists)
    duplicate_rule: object  # novelty.curate.curation.DuplicateRule
    components: np.ndarray  # (N,) duplicate-group labels (singletons have their own)
    reference: np.ndarray  # training indices
    heldout: np.ndarray  # training indices
    heldout_nearest: dict[str, tuple[np.ndarray, np.ndarray]]  # layer -> (H,) index, similarity
    calibration: object  # novelty.judge.calibration.Calibration


def calibrate_training(training: Mapping[str, np.ndarray], *, k: int = defaults.TOP_K,
                       holdout_fraction: float = defaults.HOLDOUT_FRACTION,
                       fpr: float = defaults.FALSE_POSITIVE_RATE, seed: int = defaults.SEED,
                       mirrored: Callable[[np.ndarray], Mapping[str, np.ndarray]] | None = None,
                       pixels: Callable[[np.ndarray], object] | None = None,
                       progress: bool = False) -> TrainingCalibration:
    """Duplicate groups, group-aware held-out split and calibrated copy rule from TRAINING ``{layer: (N, D)}``
    (rows L2-normalised). :func:`assess` and the validation harness share this one path.

    ``mirrored(indices)``: features ``{layer: (len(indices), D)}`` of those training images flipped
    left-right; given, a held-out image's similarity is the better of itself and its mirror image
    (as for generated samples, see :func:`nearest_training`).
    ``pixels(indices)``: :func:`novelty.judge.alignment.grey` images of those training images; given, the aligned
    pixel match (:mod:`novelty.judge.alignment`) is one more piece of evidence, named ``aligned``, and a
    held-out image is scored against its nearest training images outside its own group.
    """
    from novelty.curate import curation
    from novelty.judge import alignment, calibration

    layers = tuple(training)
    n = len(training[layers[0]])
    deep, rule, components = curation.duplicate_groups(training, k, progress, depth=curation.outlier_depth(n))
    self_nb = {layer: (idx[:, :k], sims[:, :k]) for layer, (idx, sims) in deep.items()}
    outliers = curation.batch_outliers(deep, components)
    reference, heldout = calibration.holdout_split(n, holdout_fraction, seed, groups=components)
    depth = alignment.ALIGN_CANDIDATES if pixels is not None else 1
    near = {layer: calibration.leave_group_out_neighbours(training[layer][heldout], training[layer], heldout,
                                                          components, count=depth) for layer in layers}
    nearest = {layer: (idx[:, 0], sims[:, 0]) for layer, (idx, sims) in near.items()}
    mirror_near = None
    if mirrored is not None:
        flipped = _normalized(mirrored(heldout))

        def mirror_duplicate(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
            # a training image that is a near-duplicate of the held-out image's MIRROR is its own copy too
            return rule.is_duplicate({layer: curation.pair_similarity(flipped[layer], training[layer], rows, cols)
                                      for layer in layers})

        mirror_near = {layer: calibration.leave_group_out_neighbours(
            flipped[layer], training[layer], heldout, components, count=depth, exclude=mirror_duplicate)
            for layer in layers}
        for layer in layers:
            alt = mirror_near[layer][0][:, 0], mirror_near[layer][1][:, 0]
            nearest[layer] = _better_of(nearest[layer], alt)[:2]
    if pixels is not None:
        found = alignment.best_match(
            pixels(heldout), np.concatenate([near[layer][0] for layer in layers], axis=1), pixels,
            None if mirror_near is None else np.concatenate([mirror_near[layer][0] for layer in layers], axis=1),
            progress=progress, desc="aligning held-out images")
        nearest[alignment.ALIGNED] = found[:2]
    cal = calibration.calibrate({name: sims for name, (_, sims) in nearest.items()}, fpr=fpr,
                                holdout_fraction=holdout_fraction)
    return TrainingCalibration(self_nb, outliers, rule, components, reference, heldout, nearest, cal)


def nearest_training(queries: Mapping[str, np.ndarray], training: Mapping[str, np.ndarray],
                     neighbours: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None, *,
                     mirrored: Mapping[str, np.ndarray] | None = None, query_pixels=None,
                     training_pixels: Callable[[np.ndarray], object] | None = None, progress: bool = False,
                     desc: str = "aligning generated samples") -> tuple[dict[str, tuple], list | None]:
    """Each query's nearest TRAINING image, per piece of evidence: every layer, and ``aligned`` when
    ``query_pixels`` (:func:`novelty.judge.alignment.grey` images ``(M, S, S)``) and ``training_pixels(indices)``
    (those of training images) are given.

    ``queries`` / ``training``: ``{layer: (M, D)}`` / ``{layer: (N, D)}``, rows L2-normalised;
    ``neighbours[layer]`` = the queries' lists ``(indices (M, k), similarities (M, k))`` best first
    (None: searched here); ``mirrored`` ``{layer: (M, D)}``: the queries flipped left-right,
    normalised (None: no mirror search; given, a query's nearest is the better of itself and its
    mirror image). Returns ({name: (indices (M,), similarities (M,), mirrored (M,) bool)}, the
    :class:`novelty.judge.alignment.Match` of each query, or None without alignment).
    """
    from novelty.judge import alignment
    from novelty.search.neighbors import top_k

    depth = alignment.ALIGN_CANDIDATES if query_pixels is not None else 1
    out: dict[str, tuple] = {}
    plain, flipped = [], []
    for layer in training:
        idx, sims = neighbours[layer] if neighbours is not None else top_k(queries[layer], training[layer], depth)
        idx, sims = np.asarray(idx), np.asarray(sims, dtype=np.float64)
        best = idx[:, 0], sims[:, 0], np.zeros(len(idx), dtype=bool)
        plain.append(idx[:, :depth])
        if mirrored is not None:
            m_idx, m_sims = top_k(mirrored[layer], training[layer], depth)
            best = _better_of(best[:2], (m_idx[:, 0], m_sims[:, 0]))
            flipped.append(m_idx)
        out[layer] = best
    if query_pixels is None:
        return out, None
    a_idx, a_score, a_mirrored, matches = alignment.best_match(
        query_pixels, np.concatenate(plain, axis=1), training_pixels,
        np.concatenate(flipped, axis=1) if mirrored is not None else None, progress=progress, desc=desc)
    out[alignment.ALIGNED] = a_idx, a_score, a_mirrored
    return out, matches


def _better_of(plain: tuple[np.ndarray, np.ndarray], mirrored: tuple[np.ndarray, np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the (index, similarity) pair with the higher similarity, and whether it is the mirrored one."""
    better = mirrored[1] > plain[1]
    return np.where(better, mirrored[0], plain[0]), np.where(better, mirrored[1], plain[1]), better


def _normalized(features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    from novelty.search.neighbors import normalize

    return {layer: normalize(x) for layer, x in features.items()}


def _closest_heldout(cal, heldout_nearest: Mapping[str, tuple[np.ndarray, np.ndarray]], heldout: np.ndarray,
                     training_ids: Sequence[str], count: int = defaults.CLOSEST_HELDOUT) -> list[dict]:
    """The held-out images that come closest to a training image outside their own duplicate group,
    most copy-like first (the combined rule's p-value): the yardstick's upper end, which sets the
    copy threshold. Each: held-out id, its nearest training id at the layer that says most, and the
    similarity per layer."""
    from novelty.judge import calibration

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


def assess(training: Mapping[str, np.ndarray], generated: Mapping[str, np.ndarray],
           training_ids: Sequence[str], generated_ids: Sequence[str],
           generated_neighbours: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None, *,
           k: int = defaults.TOP_K, holdout_fraction: float = defaults.HOLDOUT_FRACTION,
           fpr: float = defaults.FALSE_POSITIVE_RATE, seed: int = defaults.SEED,
           generated_mirrored: Mapping[str, np.ndarray] | None = None,
           training_mirrored: Callable[[np.ndarray], Mapping[str, np.ndarray]] | None = None,
           generated_pixels=None, training_pixels: Callable[[np.ndarray], object] | None = None,
           identical: Callable[[np.ndarray], tuple[np.ndarray, list[str]]] | None = None,
           progress: bool = False) -> Assessment:
    """Verdicts for GENERATED ``{layer: (M, D)}`` against TRAINING ``{layer: (N, D)}`` features.

    ``generated_neighbours[layer]`` = ``(indices (M, k), similarities (M, k))`` into TRAINING rows,
    best first (as written to ``neighbors/<layer>.json``); None computes them.
    ``generated_mirrored`` (features of the samples flipped left-right) and ``training_mirrored``
    (a function giving those of training images by index) turn on the mirror search: each sample,
    and each held-out image alike, is judged by the better of itself and its mirror image, so a
    mirrored copy is caught like a plain one. Give both or neither.
    ``generated_pixels`` (:func:`novelty.judge.alignment.grey` images of the samples) and ``training_pixels`` (a
    function giving those of training images by index) add the aligned pixel match
    (:mod:`novelty.judge.alignment`): a crop or rescale of a training image is caught by its pixels, which
    the pooled features miss. Give both or neither.
    ``identical(candidates)``: given ``(M, C)`` training indices per sample (its nearest at each layer,
    plain and mirrored), the training image each sample is identical to and how
    (:func:`novelty.judge.identical.identical_matches`); such a sample is a copy whatever the calibration
    can say, which matters where too few images are held out for ``fpr``.
    """
    from novelty.curate import curation
    from novelty.judge import calibration
    from novelty.judge.copying import data_copying_test
    from novelty.judge.prdc import compute_prdc
    from novelty.search.neighbors import top_k

    layers = tuple(training)
    if not layers or set(layers) != set(generated):
        raise NoveltyError(f"training and generated features must cover the same layers, received "
                           f"{sorted(training)} and {sorted(generated)}")
    n, m = len(training_ids), len(generated_ids)
    for layer in layers:
        if len(training[layer]) != n or len(generated[layer]) != m:
            raise NoveltyError(f"{layer}: {len(training[layer])} training rows for {n} ids and "
                               f"{len(generated[layer])} generated rows for {m} ids")
    if n < 4:
        raise NoveltyError(f"verdicts need at least 4 training images, received {n}")
    if m < 1:
        raise NoveltyError("verdicts need at least 1 generated sample")
    watch = Stopwatch()
    lap, timings = watch.lap, watch.timings

    if (generated_mirrored is None) != (training_mirrored is None):
        raise NoveltyError("mirror search needs both generated_mirrored and training_mirrored, or neither")
    if (generated_pixels is None) != (training_pixels is None):
        raise NoveltyError("the aligned pixel match needs both generated_pixels and training_pixels, or neither")
    warnings: list[str] = []
    train = _normalized(training)
    gen = _normalized(generated)
    k = min(k, n)
    if generated_neighbours is None:
        generated_neighbours = {layer: top_k(gen[layer], train[layer], k) for layer in layers}
    gen_idx = {layer: np.asarray(generated_neighbours[layer][0]) for layer in layers}
    gen_sims = {layer: np.asarray(generated_neighbours[layer][1], dtype=np.float64) for layer in layers}
    lap("load")

    # ---- curation and calibration: neighbours within the training set, duplicates, held-out split
    tc = calibrate_training(train, k=k, holdout_fraction=holdout_fraction, fpr=fpr, seed=seed,
                            mirrored=training_mirrored, pixels=training_pixels, progress=progress)
    self_nb, dup_rule, components = tc.self_neighbours, tc.duplicate_rule, tc.components
    reference, heldout, held_top, cal = tc.reference, tc.heldout, tc.heldout_nearest, tc.calibration
    names = cal.layers  # the layers, then "aligned" with the pixel match
    held_sims = {name: held_top[name][1] for name in names}
    group_no = curation.group_numbers(components)
    group_size = np.bincount(components)[components]
    outlier_score, is_outlier = tc.outliers.score, tc.outliers.is_outlier
    k_self = self_nb[layers[0]][0].shape[1]
    hub_score = np.mean([curation.k_occurrence(self_nb[layer][0], n) for layer in layers], axis=0) / k_self
    is_hub = hub_score >= defaults.HUB_FACTOR
    warnings += cal.warnings
    closest_heldout = _closest_heldout(cal, held_top, heldout, training_ids)
    lap("curation_calibration")

    best, matches = nearest_training(
        gen, train, {layer: (gen_idx[layer], gen_sims[layer]) for layer in layers},
        mirrored=_normalized(generated_mirrored) if generated_mirrored is not None else None,
        query_pixels=generated_pixels, training_pixels=training_pixels, progress=progress)
    verdicts = calibration.judge(cal, {name: best[name][1] for name in names})
    same, same_kind = None, None
    if identical is not None:
        same, same_kind = identical(np.column_stack([gen_idx[layer][:, 0] for layer in layers]
                                                    + [best[layer][0] for layer in layers]))
    is_copy = verdicts.is_copy | (same >= 0 if same is not None else False)
    agreement = layer_agreement(gen_idx)
    lap("verdicts")

    # ---- mode collapse among the generated samples
    if m >= 2:
        gen_nb = {layer: curation.self_neighbours(gen[layer], k, False) for layer in layers}
        gen_components = curation.duplicate_components(gen, gen_nb, dup_rule)
    else:
        gen_components = np.zeros(1, np.int64)
    gen_group = curation.group_numbers(gen_components)
    times_retrieved = np.zeros(n, dtype=np.int64)
    for layer in layers:
        times_retrieved += curation.k_occurrence(gen_idx[layer], n)
    chance = m * gen_idx[layers[0]].shape[1] * len(layers) / n
    retrieval_score = times_retrieved / chance
    is_retrieval_hub = times_retrieved >= defaults.HUB_FACTOR * max(1.0, chance)
    rng = np.random.default_rng(seed)
    size = min(m, len(heldout))
    distinct = {
        layer: {"n": size,
                "generated": _distinct(gen_idx[layer][:, 0], size, rng),
                "heldout": _distinct(held_top[layer][0], size, rng)}
        for layer in layers
    }
    lap("mode_collapse")

    # ---- set-level statistics
    rate = calibration.copy_rate(is_copy, fpr=fpr, seed=seed)
    if m < SMALL_COPY_SET:
        warnings.append(f"copy rate from only {m} generated samples: see its exact interval")
    ct = {}
    prdc = {}
    for layer in layers:
        ct[layer] = data_copying_test(train[layer][reference], train[layer][heldout], gen[layer], seed=seed)
        warnings += [f"C_T {layer}: {w}" for w in ct[layer].warnings]
        if min(n, m) > defaults.PRDC_K:
            # equal set sizes, as in Naeem et al.: recall and coverage depend on the ratio of the sizes
            prdc_rng = np.random.default_rng(seed)
            size = min(n, m)
            t_rows = np.sort(prdc_rng.choice(n, size, replace=False)) if n > size else slice(None)
            g_rows = np.sort(prdc_rng.choice(m, size, replace=False)) if m > size else slice(None)
            prdc[layer] = compute_prdc(train[layer][t_rows], gen[layer][g_rows], defaults.PRDC_K).as_dict()
    if not prdc:
        warnings.append(f"PRDC skipped: it needs more than {defaults.PRDC_K} samples on each side")
    elif min(n, m) < defaults.MIN_SET_SIZE:
        warnings.append(f"PRDC on {min(n, m)} images per side (a seeded subsample of the larger set) and C_T "
                        f"on {m} generated samples: below {defaults.MIN_SET_SIZE} per side they move by "
                        "several hundredths between runs; compare runs of equal sizes only")
    lap("statistics")

    # ---- per-sample rows and evidence
    borderline = max(defaults.BORDERLINE_RATE, fpr)
    samples = []
    evidence = {}
    for i, gid in enumerate(generated_ids):
        copy_p = float(verdicts.copy_p_value[i])
        word = "copy" if is_copy[i] else ("borderline" if copy_p <= borderline else "novel")
        row = {"id": gid, "verdict": word, "copy_score": round(float(verdicts.copy_score[i]), 6),
               "is_copy": bool(is_copy[i]), "copy_p_value": round(copy_p, 6),
               "layer_agreement": "" if np.isnan(agreement[i]) else round(float(agreement[i]), 6),
               "duplicate_group": int(gen_group[i]) or ""}
        for name in names:
            j = int(best[name][0][i])
            row[f"{name}_nearest_id"] = training_ids[j] if j >= 0 else ""
            row[f"{name}_similarity"] = round(float(best[name][1][i]), 6)
            row[f"{name}_mirrored"] = bool(best[name][2][i])
            row[f"{name}_heldout_share"] = round(float(verdicts.heldout_share[name][i]), 6)
            row[f"{name}_p_value"] = round(float(verdicts.p_value[name][i]), 6)
        if same is not None:
            row["identical_id"] = training_ids[same[i]] if same[i] >= 0 else ""
            row["identical_kind"] = same_kind[i]
        samples.append(row)
        evidence[gid] = {
            "layer_agreement": row["layer_agreement"] if row["layer_agreement"] != "" else None,
            "neighbors": {layer: grouped_list(gen_idx[layer][i], gen_sims[layer][i], components, group_size,
                                              training_ids) for layer in layers},
        }
        if matches is not None:
            row["aligned_scale"], row["aligned_crop"] = matches[i].scale, CROP_SIDE[matches[i].inside]
            evidence[gid]["aligned"] = _match_evidence(matches[i], row)

    held_set = np.zeros(n, dtype=bool)
    held_set[heldout] = True
    training_rows = []
    for j, tid in enumerate(training_ids):
        training_rows.append({
            "id": tid,
            "outlier_score": round(float(outlier_score[j]), 6),
            "is_outlier": bool(is_outlier[j]),
            "duplicate_group": int(group_no[j]) or "",
            "duplicate_count": int(group_size[j]) if group_size[j] > 1 else "",
            "hub_score": round(float(hub_score[j]), 6),
            "is_hub": bool(is_hub[j]),
            "times_retrieved": int(times_retrieved[j]),
            "retrieval_hub_score": round(float(retrieval_score[j]), 6),
            "is_retrieval_hub": bool(is_retrieval_hub[j]),
            "split": "heldout" if held_set[j] else "reference",
        })

    calib_summary = cal.summary()
    for name in names:
        calib_summary[name] = {
            "threshold": calib_summary["thresholds"][name],
            "quantiles": [round(float(q), 6) for q in np.quantile(held_sims[name], np.linspace(0, 1, 101))],
        }
    calib_summary |= {"holdout_fraction": holdout_fraction, "seed": seed, "n_reference": len(reference),
                      "split": "by near-duplicate group: no group straddles reference and held-out"}
    hub_order = np.argsort(-times_retrieved, kind="stable")
    retrieval_hubs = [{"id": training_ids[j], "times_retrieved": int(times_retrieved[j]),
                       "ratio_to_chance": round(float(retrieval_score[j]), 3)}
                      for j in hub_order if is_retrieval_hub[j]]
    gen_groups = {}
    for i, g in enumerate(gen_group):
        if g:
            gen_groups.setdefault(int(g), []).append(generated_ids[i])
    summary = {
        "settings": {"holdout_fraction": holdout_fraction, "false_positive_rate": fpr, "seed": seed,
                     "layers": list(layers), "k": int(gen_idx[layers[0]].shape[1]), "prdc_k": defaults.PRDC_K,
                     "mirror_search": generated_mirrored is not None,
                     "aligned_pixel_match": generated_pixels is not None,
                     "identical_check": identical is not None,
                     "borderline_rate": borderline, "duplicate_z": defaults.DUPLICATE_Z,
                     "outlier_z": defaults.OUTLIER_Z, "outlier_scales": list(tc.outliers.scales),
                     "hub_factor": defaults.HUB_FACTOR, "confidence": defaults.CONFIDENCE,
                     "bootstrap_resamples": defaults.BOOTSTRAP_RESAMPLES},
        "counts": {"training": n, "reference": len(reference), "heldout": len(heldout), "generated": m},
        "copies": rate | {"borderline": int(sum(r["verdict"] == "borderline" for r in samples)),
                          "calibrated": int(verdicts.is_copy.sum()),
                          "identical": None if same is None else int((same >= 0).sum()),
                          "not_judged": None if cal.reachable else
                          calibration.too_small_message(cal.n_heldout, fpr, holdout_fraction)},
        "calibration": calib_summary,
        "copying_test": {layer: ct[layer].as_dict() for layer in layers},
        "prdc": prdc,
        "mode_collapse": {
            "duplicate_groups": len(gen_groups),
            "samples_in_duplicate_groups": int(sum(len(v) for v in gen_groups.values())),
            "groups": [ids for _, ids in sorted(gen_groups.items())],
            "distinct_top1": distinct,
            "retrieval_chance": round(chance, 6),
            "retrieval_hubs": retrieval_hubs,
        },
        "curation": {
            "duplicate_thresholds": {layer: round(t, 6) for layer, t in dup_rule.thresholds().items()},
            "duplicate_rule": "mean over layers of the robust z of log(1 - cosine) <= -duplicate_z",
            "duplicate_groups": int(group_no.max()),
            "images_in_duplicate_groups": int((group_size > 1).sum()),
            "outliers": int(is_outlier.sum()),
            "outlier_rule": tc.outliers.rule(),
            "hubs": int(is_hub.sum()),
        },
        "warnings": warnings,
        "timings": timings,
    }
    summary["calibration"]["closest_heldout"] = closest_heldout
    plot_data = {"held_sims": held_sims, "gen_sims": {name: best[name][1] for name in names},
                 "closest_heldout": closest_heldout,
                 "thresholds": cal.thresholds, "outlier_score": outlier_score, "rate": rate,
                 "ct": ct}
    return Assessment(samples, training_rows, evidence, summary, plot_data)


# ---- run folder: load, write ---------------------------------------------------------------------

def _neighbours_from_file(run: RunFolder, layer: str, generated_ids: Sequence[str],
                          training_index: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """``neighbors/<layer>.json`` as index arrays, or None when absent or out of step with the features."""
    from novelty.search.neighbors import load_neighbors

    if not run.neighbors(layer).is_file():
        return None
    table = load_neighbors(run.neighbors(layer))
    try:
        lists = [table[g] for g in generated_ids]
        width = len(lists[0])
        if width == 0 or any(len(entries) != width for entries in lists):
            return None
        idx = np.array([[training_index[e["id"]] for e in entries] for entries in lists], np.int64)
    except (KeyError, IndexError):
        return None
    sims = np.array([[e["score"] for e in entries] for entries in lists], np.float64)
    return idx, sims


def pixel_rows(train_dir: Path | None, training_ids: Sequence[str], progress: bool = True
               ) -> tuple[list[dict], list[str]]:
    """Pixel flag columns per TRAINING id, read from the files in ``train_dir``; and warnings."""
    from tqdm.auto import tqdm

    from novelty.curate import curation
    from novelty.images.decode import ImageError

    names = curation.QUALITY_FLAGS
    empty = {col: "" for name in names for col in (f"{name}_score", f"is_{name}")}
    if train_dir is None or not train_dir.is_dir():
        return [dict(empty) for _ in training_ids], [f"pixel flags skipped: training folder not found ({train_dir})"]
    rows, failed = [], 0
    for tid in tqdm(training_ids, desc="pixel flags", unit="img", disable=not progress):
        try:
            small, (width, height) = curation.thumbnail(train_dir / tid)
        except (ImageError, OSError):
            rows.append(dict(empty))
            failed += 1
            continue
        px = curation.pixel_scores(small)
        scores = {"near_blank": px.near_blank, "very_dark": px.very_dark,
                  "low_information": px.low_information,
                  "odd_aspect_ratio": curation.aspect_ratio_score(width, height)}
        flags = curation.quality_flags(scores)
        row = {}
        for name in names:
            row[f"{name}_score"] = round(scores[name], 6)
            row[f"is_{name}"] = flags[name]
        rows.append(row)
    warnings = [f"pixel flags missing for {failed} training images that could not be read again"] if failed else []
    return rows, warnings


@dataclass
class JudgeResult:
    run: Path
    summary: dict
    files: list[Path]
    cached: bool = False  # True: the files were already up to date and nothing was recomputed


def _build_extractor(manifest: dict, layers: Sequence[str]):
    """The extractor a run's features were made with, rebuilt from ``run.json``."""
    from novelty.embed.features import Extractor

    weights = manifest.get("weights") or {}
    return Extractor(weights=weights.get("requested", defaults.WEIGHTS),
                     preprocess=manifest.get("preprocess", defaults.PREPROCESS),
                     input_size=manifest.get("input_size", defaults.INPUT_SIZE), layers=layers,
                     block1_reduce=(manifest.get("features") or {}).get("block1_reduce", defaults.BLOCK1_REDUCE),
                     seed=int(weights.get("seed", manifest.get("seed", defaults.SEED))),
                     fit_mode=manifest.get("fit", defaults.FIT_MODE))


def _mirror_search(manifest: dict, store, layers: Sequence[str], training_ids: Sequence[str],
                   generated_ids: Sequence[str], extractor, progress: bool):
    """(generated mirrored features, training mirrored function) for :func:`assess`: the run's images
    flipped left-right, embedded with the run's own extractor and cached in its feature store (sets
    ``<set>_mirrored``, keyed by file content like the plain ones). Raises NoveltyError when that cannot
    be done faithfully (images moved, other extractor settings)."""
    from novelty.embed.features import MirroredExtractor

    size = int(manifest.get("input_size") or defaults.INPUT_SIZE)
    read = _folder_reader(manifest)
    if extractor is None:
        extractor = _build_extractor(manifest, layers)
    hashes = {}
    for set_name in ("training", "generated"):
        metas = [store.meta(set_name, layer) or {} for layer in layers]
        for layer, meta in zip(layers, metas, strict=True):
            if meta.get("params") != extractor.params(layer):
                raise NoveltyError(f"the {set_name} {layer} features were made with other extractor settings")
        hashes[set_name] = dict(zip(metas[0].get("ids") or [], metas[0].get("sha256") or [], strict=False))
    mirror = MirroredExtractor(extractor)

    def embed_flipped(set_name: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        mirror_set = f"{set_name}_mirrored"
        shas = [hashes[set_name].get(ident) or "" for ident in ids]

        def cached() -> list[tuple[dict[str, int], np.ndarray | None]]:
            return [store.cached_rows(mirror_set, layer, mirror.params(layer)) for layer in layers]

        found = cached()
        if not all(sha and sha in rows for rows, _ in found for sha in shas):
            store.update(mirror_set, list(ids), shas, read(set_name, ids, size), mirror, progress=progress)
            found = cached()
        return {layer: np.asarray(feats[[rows[sha] for sha in shas]], np.float32)
                for layer, (rows, feats) in zip(layers, found, strict=True)}

    return (embed_flipped("generated", generated_ids),
            lambda indices: embed_flipped("training", [training_ids[i] for i in indices]))


class FolderReadError(NoveltyError):
    """A run's image could not be read again (moved, deleted or damaged since ``novelty analyze``)."""


def _folder_reader(manifest: dict) -> Callable[[str, Sequence[str], int], np.ndarray]:
    """``read(set_name, ids, size)``: a run's "training" or "generated" images by id, fitted as the run
    fitted them to ``size`` px, RGB uint8 ``(len(ids), size, size, 3)``. Raises NoveltyError when the
    folders are gone or an image cannot be read again."""
    from novelty.images.decode import ImageError, load

    fit_mode = manifest.get("fit", defaults.FIT_MODE)
    folders = {"training": manifest.get("train_dir"), "generated": manifest.get("generated_dir")}
    if not all(folders.values()) or not all(Path(f).is_dir() for f in folders.values()):
        raise FolderReadError(f"image folders not found ({folders['training']}, {folders['generated']})")
    prepared: dict[int, dict[str, np.ndarray]] = {}  # size -> id -> image of a prepared training set

    def read(set_name: str, ids: Sequence[str], size: int) -> np.ndarray:
        if set_name == "training" and manifest.get("train_prepared"):  # the pixels analyze embedded
            if size not in prepared:
                from novelty.images.records import load_prepared

                try:
                    loaded = load_prepared(manifest["train_prepared"], size, fit_mode)
                except NoveltyError as exc:
                    raise FolderReadError(f"cannot re-read the prepared training images: {exc}") from None
                prepared[size] = dict(zip((e["id"] for e in loaded.entries), loaded.images, strict=True))
            try:
                return np.stack([prepared[size][ident] for ident in ids])
            except KeyError as exc:
                raise FolderReadError(f"{manifest['train_prepared']} no longer holds training image {exc}") from None
        try:
            return np.stack([load(Path(folders[set_name]) / ident, size, fit_mode) for ident in ids])
        except (ImageError, OSError) as exc:
            raise FolderReadError(f"cannot re-read a {set_name} image: {exc}") from None

    return read


def _file_hashes(store, set_name: str, layer: str, ids: Sequence[str]) -> list[str]:
    """The sha256 of each image file of a set, as its feature rows recorded them ("" where unknown)."""
    meta = store.meta(set_name, layer) or {}
    known = dict(zip(meta.get("ids") or [], meta.get("sha256") or [], strict=False))
    return [known.get(ident) or "" for ident in ids]


def _identical_check(manifest: dict, training_ids: Sequence[str], generated_ids: Sequence[str],
                     hashes: Mapping[str, Sequence[str]]) -> tuple[Callable, list[str]]:
    """``identical(candidates)`` for :func:`assess` (:func:`novelty.judge.identical.identical_matches` on the
    run's images fitted to its input size, and their file hashes), and warnings it adds to: where the
    images cannot be read again only the file hashes are compared."""
    from novelty.judge.identical import identical_matches

    size = int(manifest.get("input_size") or defaults.INPUT_SIZE)
    warnings: list[str] = []
    try:
        read = _folder_reader(manifest)
        samples = read("generated", generated_ids, size)
    except NoveltyError as exc:
        read, samples = None, None
        warnings.append(f"identical copies found by file hash only: {exc}")

    def identical(candidates: np.ndarray) -> tuple[np.ndarray, list[str]]:
        by_hash = {"generated_sha": hashes["generated"], "training_sha": hashes["training"]}
        if read is not None:
            try:
                return identical_matches(samples, candidates,
                                         lambda idx: read("training", [training_ids[j] for j in idx], size),
                                         **by_hash)
            except FolderReadError as exc:
                warnings.append(f"identical copies found by file hash only: {exc}")
        return identical_matches(None, candidates, None, **by_hash)

    return identical, warnings


def _run_pixels(manifest: dict, training_ids: Sequence[str], generated_ids: Sequence[str]):
    """(grey images of the generated samples, those of training images by index): the aligned pixel
    match's input to :func:`assess`."""
    from novelty.judge.alignment import ALIGN_SIZE, TrainingPixels, grey

    read = _folder_reader(manifest)
    generated = grey(read("generated", generated_ids, ALIGN_SIZE))
    return generated, TrainingPixels(lambda indices: read("training", [training_ids[i] for i in indices],
                                                       ALIGN_SIZE))


VERDICTS_FORMAT = 4  # bump when what judge_run computes changes: older cached verdicts are then recomputed


def _cache_key(run: RunFolder, manifest: dict, store, layers: Sequence[str], settings: dict, extractor) -> str:
    """What the verdict files of a run depend on, hashed: the feature rows (ids, file hashes, data file
    and extractor settings of every set and layer), the neighbour lists, the image folders, the
    settings and the code's version. The same key means :func:`judge_run` would write the same files."""
    import hashlib
    import json

    from novelty import __version__
    from novelty.files import sha256_file

    features = {}
    for set_name in ("training", "generated"):
        for layer in layers:
            meta = store.meta(set_name, layer) or {}
            features[f"{set_name}/{layer}"] = [meta.get(key) for key in ("params", "data", "ids", "sha256")]
    neighbours = {layer: sha256_file(run.neighbors(layer)) if run.neighbors(layer).is_file() else None
                  for layer in layers}
    parts = {"novelty": __version__, "format": VERDICTS_FORMAT, "settings": settings, "features": features,
             "neighbors": neighbours, "folders": [manifest.get("train_dir"), manifest.get("generated_dir")],
             "extractor": None if extractor is None else [extractor.params(layer) for layer in layers]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _cached_result(run: RunFolder, key: str) -> JudgeResult | None:
    """The verdicts already written with cache key ``key``, when every file is still there."""
    try:
        summary = read_json(run.summary_json)
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("cache_key") != key:
        return None
    files = [run.samples_csv, run.training_csv, run.root / EVIDENCE_FILE, run.summary_json]
    files += [run.plots_dir / name for name in summary.get("plots") or []]
    if not all(path.is_file() for path in files) or run.table_problems(summary):
        return None
    return JudgeResult(run.root, summary, files, cached=True)


def judge_run(run_dir: str | os.PathLike, *, holdout_fraction: float = defaults.HOLDOUT_FRACTION,
              fpr: float = defaults.FALSE_POSITIVE_RATE, seed: int | None = None, mirror: bool = True,
              align: bool = True, extractor=None, pixel_flags: bool = True, plots: bool = True, progress: bool = True,
              cache: bool = True) -> JudgeResult:
    """Judge a run folder written by ``novelty analyze`` and write its verdict and curation files.

    ``seed`` None uses the run's seed (``run.json`` "seed", else ``defaults.SEED``). ``mirror``: also
    search with each generated sample (and held-out image) flipped left-right, embedded with
    ``extractor`` (None: rebuilt from ``run.json``) and cached in the run's feature store; when that is
    impossible the run is judged without it and a warning says why. ``align``: add the aligned pixel
    match (:mod:`novelty.judge.alignment`), read from the run's image folders; likewise skipped with a
    warning when they are gone.

    ``cache``: when the files were already written from the same features, neighbour lists, folders
    and settings by this version (``summary.json`` "cache_key", see :func:`_cache_key`), return them
    as they are (``JudgeResult.cached``) instead of recomputing.
    """
    from novelty import plots as plotting
    from novelty.embed.featurestore import FeatureStore

    run = RunFolder(run_dir).require()
    try:
        manifest = read_json(run.run_json)
    except (OSError, ValueError) as exc:
        raise NoveltyError(f"cannot read {run.run_json}: {exc}") from None
    layers = list(manifest.get("layers") or [])
    if not layers:
        raise NoveltyError(f"{run.run_json} names no layers; re-run `novelty analyze`")
    if seed is None:
        seed = int(manifest.get("seed", defaults.SEED))
    bounds.check_all(("holdout_fraction", "holdout_fraction", holdout_fraction),
                     ("false_positive_rate", "fpr", fpr), ("seed", "seed", seed))
    k = int(manifest.get("k") or defaults.TOP_K)
    store = FeatureStore(run.features_dir)
    settings = {"holdout_fraction": holdout_fraction, "fpr": fpr, "seed": seed, "mirror": mirror, "k": k,
                "align": align,
                "pixel_flags": pixel_flags, "plots": plots}
    key = _cache_key(run, manifest, store, layers, settings, extractor)
    if cache and (previous := _cached_result(run, key)) is not None:
        return previous
    training_ids, training = store.load_layers("training", layers)
    generated_ids, generated = store.load_layers("generated", layers)
    neighbours = {}
    index = {tid: j for j, tid in enumerate(training_ids)}
    for layer in layers:
        neighbours[layer] = _neighbours_from_file(run, layer, generated_ids, index)
    if any(v is None for v in neighbours.values()):
        neighbours = None

    watch = Stopwatch()
    mirrored, mirror_warning = (None, None), None
    if mirror:
        try:
            mirrored = _mirror_search(manifest, store, layers, training_ids, generated_ids, extractor, progress)
        except NoveltyError as exc:
            mirror_warning = f"mirror search off: {exc}"
    mirror_seconds = watch.lap("mirror_search")
    pixels, align_warning = (None, None), None
    if align:
        try:
            pixels = _run_pixels(manifest, training_ids, generated_ids)
        except NoveltyError as exc:
            align_warning = f"aligned pixel match off: {exc}"

    hashes = {set_name: _file_hashes(store, set_name, layers[0], ids)
              for set_name, ids in (("training", training_ids), ("generated", generated_ids))}
    identical, identical_warnings = _identical_check(manifest, training_ids, generated_ids, hashes)

    def run_assess(pixels: tuple) -> Assessment:
        return assess(training, generated, training_ids, generated_ids, neighbours, k=k,
                      holdout_fraction=holdout_fraction, fpr=fpr, seed=seed, generated_mirrored=mirrored[0],
                      training_mirrored=mirrored[1], generated_pixels=pixels[0], training_pixels=pixels[1],
                      identical=identical, progress=progress)

    try:
        result = run_assess(pixels)
    except FolderReadError as exc:  # a training image went missing since analyze: judge without pixels
        align_warning = f"aligned pixel match off: {exc}"
        result = run_assess((None, None))
    watch.lap("assess")
    summary = result.summary
    summary["timings"]["mirror_search_embedding"] = mirror_seconds
    summary["warnings"] += [w for w in (mirror_warning, align_warning, *dict.fromkeys(identical_warnings)) if w]
    summary["overlap"] = training_overlap(manifest.get("train_dir"), manifest.get("generated_dir"),
                                 hashes["training"], hashes["generated"])
    if summary["overlap"]["warning"]:
        summary["warnings"].insert(0, summary["overlap"]["warning"])
    train_dir = Path(manifest["train_dir"]) if manifest.get("train_dir") else None
    if pixel_flags:
        rows, warns = pixel_rows(train_dir, training_ids, progress)
        for row, extra in zip(result.training, rows, strict=True):
            row.update(extra)
        summary["warnings"] += warns
        summary["curation"]["flags"] = {name: sum(r.get(f"is_{name}") is True for r in result.training)
                                        for name in _quality_names()}
        summary["timings"]["pixel_flags"] = watch.lap("pixel_flags")

    written = [run.samples_csv, run.training_csv, run.root / EVIDENCE_FILE, run.summary_json]
    tables.write_table(run.samples_csv, tables.SAMPLES, result.samples)
    tables.write_table(run.training_csv, tables.TRAINING, result.training)
    write_json(run.root / EVIDENCE_FILE, result.evidence, indent=None)
    if plots:
        watch.lap("write")
        written += _write_plots(run, result, plotting, train_dir)
        summary["timings"]["plots"] = watch.lap("plots")
    summary["plots"] = sorted(p.name for p in written if p.suffix == ".png")
    summary["cache_key"] = key
    summary["format"] = tables.SUMMARY_FORMAT
    write_json(run.summary_json, summary)  # last: its cache key vouches for the files before it
    return JudgeResult(run.root, summary, written)


def _quality_names() -> tuple[str, ...]:
    from novelty.curate.curation import QUALITY_FLAGS

    return QUALITY_FLAGS


def _pair_images(train_dir: Path | None, pairs: Sequence[dict]) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(held-out image, nearest training image, caption) for :func:`novelty.plots.image_pairs`,
    read from the run's training folder; pairs whose files cannot be read are left out."""
    from novelty.images.decode import ImageError, load

    if not pairs or train_dir is None or not train_dir.is_dir():
        return []
    shown = []
    for pair in pairs:
        try:
            a, b = (load(train_dir / pair[key], defaults.PLOT_THUMBNAIL) for key in ("heldout_id", "nearest_id"))
        except (ImageError, OSError):
            continue
        sims = ", ".join(f"{layer.split('_')[0]} {value:.3f}" for layer, value in pair["similarity"].items())
        shown.append((a, b, f"{pair['heldout_id']} ~ {pair['nearest_id']}\n{sims}"))
    return shown


def _write_plots(run: RunFolder, result: Assessment, plotting, train_dir: Path | None) -> list[Path]:
    data, summary = result.plot_data, result.summary
    fpr = summary["settings"]["false_positive_rate"]
    paths = []
    for layer, held in data["held_sims"].items():
        path = run.plots_dir / f"similarity_{layer}.png"
        plotting.similarity_histogram(path, layer, held, data["gen_sims"][layer], data["thresholds"][layer], fpr)
        paths.append(path)
    rate = data["rate"]
    path = run.plots_dir / "copy_rate.png"
    plotting.copy_rate_interval(path, rate["rate"], rate["bootstrap_interval"], rate["exact_interval"], fpr,
                                rate["n"], rate["confidence"])
    paths.append(path)
    path = run.plots_dir / "outlier_scores.png"
    plotting.outlier_histogram(path, data["outlier_score"], defaults.OUTLIER_Z)
    paths.append(path)
    pairs = _pair_images(train_dir, data["closest_heldout"])
    if pairs:
        path = run.plots_dir / "closest_heldout_pairs.png"
        plotting.image_pairs(path, pairs, "The held-out real images (left) that come closest to a training image "
                                          "(right): the unseen images the copy threshold must not flag")
        paths.append(path)
    path = run.plots_dir / "copying_cells.png"
    plotting.copying_cells(path, {layer: [c.z for c in t.cells] for layer, t in data["ct"].items()},
                           {layer: (None if np.isnan(t.c_t) else t.c_t) for layer, t in data["ct"].items()})
    paths.append(path)
    return paths
