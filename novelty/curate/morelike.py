""""More like these": rank a run's TRAINING images by likeness to a few chosen examples.

The rule. Per layer, with every row L2-normalised, ``like`` = cosine of each training image to the
L2-normalised centroid of the EXAMPLE rows, and (when NOT ids are given) ``unlike`` = the same to the
centroid of the NOT rows; the layer's raw score is ``like - unlike``. Each layer's raw scores become
robust z-scores (:func:`novelty.curate.curation.robust_z`) over the candidates, and ``score`` is their mean
over the layers. Why: a centroid of a few examples of one kind points at what they share and
averages out what each has of its own (the max over examples follows any one example's quirks, and
one odd example drags its own look-alikes up); the z-scores put layers on one scale (block1_pool
similarities all sit near 1, block5_pool ones spread wide), so neither layer decides alone. Examples
and NOT images are excluded from the ranking.

Measured (``benchmarks/bench_morelike.py``): from 3 examples of a kind of junk planted at 1% among
the 2,989 masks, the share of the rest of that kind in the top 2N is 0.95 to 1.00 per kind (mean over
5 draws of examples; worst draw 0.78, product renders).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from novelty.errors import NoveltyError

RANKED_FILE = "more-like.csv"  # default output, in the run folder
RANKED_COLUMNS = ("id", "score", "rank")  # the schema of ranked.csv, written by write_ranked only


def _centroid(rows: np.ndarray) -> np.ndarray:
    c = np.asarray(rows, dtype=np.float64).mean(axis=0)
    norm = np.linalg.norm(c)
    return c / norm if norm > 0 else c


def likeness_scores(features: Mapping[str, np.ndarray], examples: Sequence[int],
                    not_examples: Sequence[int] = ()) -> np.ndarray:
    """Score of every TRAINING row for "more like ``examples``, unlike ``not_examples``": ``(N,)`` float64.

    ``features``: ``{layer: (N, D)}`` (normalised here); ``examples``, ``not_examples``: row indices.
    Higher = more alike. The example and NOT rows get ``-inf`` (they are not candidates); the robust
    z-scores are taken over the candidates only.
    """
    if not len(examples):
        raise NoveltyError("more-like needs at least one example id, received none")
    n = len(next(iter(features.values())))
    candidate = np.ones(n, dtype=bool)
    candidate[list(examples)] = False
    candidate[list(not_examples)] = False
    if not candidate.any():
        raise NoveltyError(f"nothing left to rank: all {n} training images are examples or NOT ids")
    from novelty.curate.curation import robust_z
    from novelty.search import backends
    from novelty.search.neighbors import normalize

    backend = backends.active()  # read a block of rows at a time: no normalised copy of the set
    per_layer = []
    for x in features.values():
        raw = backend.similarities(x, _centroid(normalize(x[list(examples)]).astype(np.float64)))
        if len(not_examples):
            raw = raw - backend.similarities(x, _centroid(normalize(x[list(not_examples)]).astype(np.float64)))
        per_layer.append(robust_z(raw[candidate]))
    score = np.full(n, -np.inf)
    score[candidate] = np.mean(per_layer, axis=0)
    return score


@dataclass(frozen=True)
class Ranked:
    """Candidates best first: ``ids`` and their ``scores`` (rank = position + 1)."""

    ids: list[str]
    scores: np.ndarray

    def rows(self, limit: int | None = None) -> list[dict]:
        """``[{id, score, rank}]`` best first, the first ``limit`` (all when None)."""
        count = len(self.ids) if limit is None else min(limit, len(self.ids))
        return [{"id": self.ids[i], "score": round(float(self.scores[i]), 6), "rank": i + 1} for i in range(count)]


def rank_ids(features: Mapping[str, np.ndarray], training_ids: Sequence[str], examples: Sequence[str],
             not_ids: Sequence[str] = ()) -> Ranked:
    """:func:`likeness_scores` by id: ``training_ids`` name the ``(N, D)`` rows; unknown ids raise
    :class:`NoveltyError` naming them; an id in both lists is an error too."""
    index = {tid: j for j, tid in enumerate(training_ids)}
    unknown = [i for i in dict.fromkeys([*examples, *not_ids]) if i not in index]
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise NoveltyError(f"unknown training ids ({len(unknown)}): {shown}; ids are as in training.csv")
    both = sorted(set(examples) & set(not_ids))
    if both:
        raise NoveltyError(f"ids both examples and NOT: {', '.join(map(repr, both))}")
    score = likeness_scores(features, [index[i] for i in dict.fromkeys(examples)],
                            [index[i] for i in dict.fromkeys(not_ids)])
    order = np.argsort(-score, kind="stable")
    order = order[np.isfinite(score[order])]
    return Ranked([training_ids[j] for j in order], score[order])


def training_features(run_dir: str | os.PathLike) -> tuple[list[str], dict[str, np.ndarray]]:
    """The TRAINING ids and ``{layer: (N, D)}`` features of a run folder, every layer of ``run.json``."""
    from novelty.embed.featurestore import FeatureStore
    from novelty.files import read_json
    from novelty.run.folder import RunFolder

    run = RunFolder(run_dir).require()
    try:
        layers = list(read_json(run.run_json).get("layers") or [])
    except (OSError, ValueError, AttributeError) as exc:
        raise NoveltyError(f"cannot read {run.run_json}: {exc}") from None
    if not layers:
        raise NoveltyError(f"{run.run_json} names no layers; re-run `novelty analyze`")
    return FeatureStore(run.features_dir).load_layers("training", layers)


def more_like(run_dir: str | os.PathLike, examples: Sequence[str], not_ids: Sequence[str] = ()) -> Ranked:
    """Rank the run's other TRAINING images by likeness to ``examples`` and unlikeness to ``not_ids``."""
    ids, features = training_features(run_dir)
    return rank_ids(features, ids, examples, not_ids)


def write_ranked(path: str | os.PathLike, ranked: Ranked) -> Path:
    """Write ``ranked.csv`` (:data:`RANKED_COLUMNS`), best first."""
    path = Path(path)
    try:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=RANKED_COLUMNS)
            writer.writeheader()
            writer.writerows(ranked.rows())
    except OSError as exc:
        raise NoveltyError(f"cannot write {path}: {exc}") from None
    return path
