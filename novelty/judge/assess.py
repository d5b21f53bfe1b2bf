"""Verdicts on loaded arrays: :func:`assess` judges GENERATED features against TRAINING features with
the pieces of copy evidence (:data:`EVIDENCE`), and gives the rows of ``samples.csv`` and
``training.csv`` and the body of ``summary.json``. It reads and writes no files: :mod:`novelty.judge.verdicts`
does that for a run folder; the tests call :func:`assess` on planted arrays.

What a run gets (see the README for the columns):

- per GENERATED sample: per piece of evidence (:data:`EVIDENCE`: each layer's cosine, the better of
  the sample and its mirror image, ``<layer>_mirrored`` saying which; the aligned pixel match,
  ``aligned_*``, with the crop's scale and side) the nearest training image, its score, the share of
  held-out images that come as close and a p-value; ``identical_id`` / ``identical_kind``; the
  combined ``copy_score`` / ``copy_p_value`` / ``is_copy`` (any calibrated piece, see
  :mod:`novelty.judge.calibration`, or a decisive one: identical to a training image, which holds
  whatever the held-out set's size); a ``verdict`` word (``copy``; ``borderline`` when not a copy but
  ``copy_p_value <= BORDERLINE_RATE``; ``novel``); ``layer_agreement`` (mean Jaccard index of the
  layers' top-k lists); its near-duplicate group among the generated samples;
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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from novelty import defaults
from novelty.errors import NoveltyError
from novelty.judge import calibration
from novelty.judge.alignment import AlignedMatch
from novelty.judge.conditional import Truth
from novelty.judge.evidence import (
    Evidence,
    Found,
    LayerCosine,
    calibrated,
    depth,
    find,
    normalized,
    sample_queries,
)
from novelty.judge.heldout import calibrate_training, closest_heldout
from novelty.judge.identical import IdenticalCopy
from novelty.judge.sets import assessment_summary, layer_agreement, mode_collapse, set_statistics
from novelty.judge.trainingset import training_rows
from novelty.search.backends import active
from novelty.search.neighbors import top_k
from novelty.search.rows import unit_rows
from novelty.stopwatch import Stopwatch

# The kinds of copy evidence, in the order of their samples.csv columns (a piece may read what the
# pieces before it found: the identical check reads the layers' nearest images).
EVIDENCE: tuple[type[Evidence], ...] = (LayerCosine, IdenticalCopy, AlignedMatch)


@dataclass
class Assessment:
    """Everything :func:`assess` found; arrays are row-aligned with the ids given to it."""

    samples: list[dict]  # one row per GENERATED sample (samples.csv)
    training: list[dict]  # one row per TRAINING image (training.csv), pixel flags added later
    summary: dict
    plot_data: dict = field(default_factory=dict)


def _ordered(pieces: Sequence[Evidence]) -> list[Evidence]:
    """``pieces`` in :data:`EVIDENCE` order, kinds not listed there last (stable: layers keep their order);
    raises NoveltyError when two share a name."""
    names = [piece.name for piece in pieces]
    if len(set(names)) != len(names):
        raise NoveltyError(f"each piece of evidence needs its own name, received {names}")
    return sorted(pieces, key=lambda piece: EVIDENCE.index(type(piece)) if type(piece) in EVIDENCE else len(EVIDENCE))


def _check_inputs(training: Mapping[str, np.ndarray], generated: Mapping[str, np.ndarray],
                  training_ids: Sequence[str], generated_ids: Sequence[str], mirrors: tuple) -> None:
    """Raise NoveltyError unless both sides cover the same layers with one row per id, at least 4
    training images and 1 sample, and both mirrored inputs or neither are given."""
    if not training or set(training) != set(generated):
        raise NoveltyError(f"training and generated features must cover the same layers, received "
                           f"{sorted(training)} and {sorted(generated)}")
    n, m = len(training_ids), len(generated_ids)
    for layer in training:
        if len(training[layer]) != n or len(generated[layer]) != m:
            raise NoveltyError(f"{layer}: {len(training[layer])} training rows for {n} ids and "
                               f"{len(generated[layer])} generated rows for {m} ids")
    if n < 4:
        raise NoveltyError(f"verdicts need at least 4 training images, received {n}")
    if m < 1:
        raise NoveltyError("verdicts need at least 1 generated sample")
    if (mirrors[0] is None) != (mirrors[1] is None):
        raise NoveltyError("mirror search needs both generated_mirrored and training_mirrored, or neither")


def assess(training: Mapping[str, np.ndarray], generated: Mapping[str, np.ndarray],
           training_ids: Sequence[str], generated_ids: Sequence[str],
           generated_neighbours: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None, *,
           k: int = defaults.TOP_K, holdout_fraction: float = defaults.HOLDOUT_FRACTION,
           fpr: float = defaults.FALSE_POSITIVE_RATE, seed: int = defaults.SEED,
           generated_mirrored: Mapping[str, np.ndarray] | None = None,
           training_mirrored: Callable[[np.ndarray], Mapping[str, np.ndarray]] | None = None,
           evidence: Sequence[Evidence] | None = None, truth: Truth | None = None,
           progress: bool = False) -> Assessment:
    """Verdicts for GENERATED ``{layer: (M, D)}`` against TRAINING ``{layer: (N, D)}`` features.

    ``generated_neighbours[layer]`` = ``(indices (M, k), similarities (M, k))`` into TRAINING rows,
    best first (as written to ``neighbors/<layer>.json``); None computes them.
    ``generated_mirrored`` (features of the samples flipped left-right) and ``training_mirrored``
    (a function giving those of training images by index) turn on the mirror search: each sample,
    and each held-out image alike, is judged by the better of itself and its mirror image, so a
    mirrored copy is caught like a plain one. Give both or neither.
    ``evidence``: the pieces of copy evidence (:mod:`novelty.judge.evidence`; kinds of :data:`EVIDENCE`
    go in its order, any other kind after them), e.g. with :class:`novelty.judge.alignment.AlignedMatch` (a crop or rescale of a training image is
    caught by its pixels, which the pooled features miss) and :class:`novelty.judge.identical.IdenticalCopy`
    (such a sample is a copy whatever the calibration can say, which matters where too few images are
    held out for ``fpr``); None: one :class:`novelty.judge.evidence.LayerCosine` per layer.
    ``truth``: conditional outputs' own ground truth (:class:`novelty.judge.conditional.Truth`): an
    output that follows it is not a copy, and the truth columns are added.
    """
    _check_inputs(training, generated, training_ids, generated_ids, (generated_mirrored, training_mirrored))
    layers, n = tuple(training), len(training_ids)
    pieces = _ordered(evidence if evidence is not None else [LayerCosine(layer) for layer in layers])
    watch = Stopwatch()
    lap = watch.lap
    train, gen = unit_rows(training), unit_rows(generated)  # normalised as read: no copy of a whole layer
    k = min(k, n)
    if generated_neighbours is None:
        generated_neighbours = {layer: top_k(gen[layer], train[layer], k) for layer in layers}
    lap("load")

    tc = calibrate_training(train, k=k, holdout_fraction=holdout_fraction, fpr=fpr, seed=seed,
                            mirrored=training_mirrored, evidence=pieces, progress=progress)
    closest = closest_heldout(tc, training_ids)
    lap("curation_calibration")

    queries = sample_queries(gen, train, generated_neighbours, count=depth(pieces), progress=progress,
                             mirrored=normalized(generated_mirrored) if generated_mirrored is not None else None)
    found = find(pieces, queries)
    active().release()  # nothing asks the training set's indexes more: their memory goes before the statistics
    verdicts, is_copy, flagged, follows = _decide(tc, pieces, found, truth, layers)
    lists = {layer: queries.lists[layer][0] for layer in layers}
    agreement = layer_agreement(lists)
    lap("verdicts")

    mode = mode_collapse(gen, lists, {layer: tc.heldout_nearest[layer][0] for layer in layers}, tc.duplicate_rule,
                         n, k=k, seed=seed)
    lap("mode_collapse")
    stats = set_statistics(is_copy, train, gen, tc.reference, tc.heldout, fpr=fpr, seed=seed)
    lap("statistics")

    borderline = max(defaults.BORDERLINE_RATE, fpr)
    samples = _sample_rows(generated_ids, training_ids, pieces, found, verdicts, is_copy, agreement, mode.groups,
                           borderline)
    if truth is not None:
        truth.add_cells(samples, {layer: queries.lists[layer][1] for layer in layers}, follows)
    kinds = tuple(dict.fromkeys([*EVIDENCE, *map(type, pieces)]))
    summary = assessment_summary(kinds, pieces, found, verdicts, tc, mode, stats, samples, settings={
        "holdout_fraction": holdout_fraction, "false_positive_rate": fpr, "seed": seed, "layers": list(layers),
        "k": int(lists[layers[0]].shape[1]), "prdc_k": defaults.PRDC_K,
        "mirror_search": generated_mirrored is not None, "borderline_rate": borderline},
        ids=(training_ids, generated_ids), closest=closest, timings=watch.timings)
    if truth is not None:
        summary["conditional"] = truth.summary(follows, flagged, is_copy,
                                               {layer: queries.lists[layer][1] for layer in layers})
    plot_data = {"held_sims": {name: tc.heldout_nearest[name][1] for name in tc.calibration.layers},
                 "gen_sims": {name: found[name].score for name in tc.calibration.layers},
                 "closest_heldout": closest, "thresholds": tc.calibration.thresholds,
                 "outlier_score": tc.outliers.score, "rate": stats.rate, "ct": stats.ct}
    return Assessment(samples, training_rows(training_ids, tc, mode), summary, plot_data)


def _decide(tc, pieces: Sequence[Evidence], found: Mapping, truth: Truth | None, layers: Sequence[str]):
    """The copy decision per sample: the calibrated rule over the calibrated pieces, OR any decisive
    piece's match, and for conditional outputs AND NOT following their own truth.

    Returns ``(verdicts, is_copy, flagged, follows)``: ``flagged`` is ``is_copy`` before the
    conditional rule, ``follows`` None without a truth."""
    verdicts = calibration.judge(tc.calibration, {piece.name: found[piece.name].score for piece in calibrated(pieces)})
    is_copy = verdicts.is_copy.copy()
    for piece in pieces:
        if piece.decisive:
            is_copy |= found[piece.name].index >= 0
    follows = truth.follows({layer: found[layer].score for layer in layers}) if truth is not None else None
    flagged = is_copy.copy()
    if follows is not None:
        is_copy &= ~follows
    return verdicts, is_copy, flagged, follows


def _sample_rows(generated_ids: Sequence[str], training_ids: Sequence[str], pieces: Sequence[Evidence],
                 found: Mapping[str, Found], verdicts, is_copy: np.ndarray, agreement: np.ndarray,
                 groups: np.ndarray, borderline: float) -> list[dict]:
    """One ``samples.csv`` row per GENERATED sample: the verdict, then every calibrated piece's columns
    (``<name>_`` + :data:`novelty.judge.evidence.CALIBRATED_COLUMNS`), then each piece's own."""
    rows = []
    for i, gid in enumerate(generated_ids):
        copy_p = float(verdicts.copy_p_value[i])
        word = "copy" if is_copy[i] else ("borderline" if copy_p <= borderline else "novel")
        row = {"id": gid, "verdict": word, "copy_score": round(float(verdicts.copy_score[i]), 6),
               "is_copy": bool(is_copy[i]), "copy_p_value": round(copy_p, 6),
               "layer_agreement": "" if np.isnan(agreement[i]) else round(float(agreement[i]), 6),
               "duplicate_group": int(groups[i]) or ""}
        for piece in calibrated(pieces):
            name, best = piece.name, found[piece.name]
            j = int(best.index[i])
            row[f"{name}_nearest_id"] = training_ids[j] if j >= 0 else ""
            row[f"{name}_similarity"] = round(float(best.score[i]), 6)
            row[f"{name}_mirrored"] = bool(best.mirrored[i])
            row[f"{name}_heldout_share"] = round(float(verdicts.heldout_share[name][i]), 6)
            row[f"{name}_p_value"] = round(float(verdicts.p_value[name][i]), 6)
        for piece in pieces:
            row |= piece.cells(found[piece.name], i, training_ids)
        rows.append(row)
    return rows
