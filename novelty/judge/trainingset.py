"""What a verdict says of each TRAINING image (``training.csv``): outlier score, near-duplicate group,
hub score, how often the generated samples retrieve it, which side of the held-out split it lies on,
and pixel flags; and the ``summary.json`` "curation" section. The rules live in
:mod:`novelty.curate.curation`; :func:`novelty.judge.assess.assess` and ``judge_run`` call these."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from novelty import defaults
from novelty.curate import curation


def training_rows(training_ids: Sequence[str], tc, mode) -> list[dict]:
    """One ``training.csv`` row per TRAINING image from its calibration ``tc``
    (:class:`novelty.judge.verdicts.TrainingCalibration`) and the retrieval counts of ``mode``
    (:class:`novelty.judge.sets.ModeCollapse`); the pixel flags are added by :func:`pixel_rows`."""
    n = len(training_ids)
    group_no, group_size, hub_score = _groups_and_hubs(tc)
    held_set = np.zeros(n, dtype=bool)
    held_set[tc.heldout] = True
    return [{"id": tid,
             "outlier_score": round(float(tc.outliers.score[j]), 6),
             "is_outlier": bool(tc.outliers.is_outlier[j]),
             "duplicate_group": int(group_no[j]) or "",
             "duplicate_count": int(group_size[j]) if group_size[j] > 1 else "",
             "hub_score": round(float(hub_score[j]), 6),
             "is_hub": bool(hub_score[j] >= defaults.HUB_FACTOR),
             "times_retrieved": int(mode.times_retrieved[j]),
             "retrieval_hub_score": round(float(mode.retrieval_score[j]), 6),
             "is_retrieval_hub": bool(mode.is_retrieval_hub[j]),
             "split": "heldout" if held_set[j] else "reference"}
            for j, tid in enumerate(training_ids)]


def _groups_and_hubs(tc) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per TRAINING image: duplicate group number (0: none), group size, hub score (k-occurrence in the
    training set's own neighbour lists, over k, averaged over layers)."""
    components = tc.components
    n = len(components)
    self_nb = tc.self_neighbours
    k_self = next(iter(self_nb.values()))[0].shape[1]
    hub_score = np.mean([curation.k_occurrence(idx, n) for idx, _ in self_nb.values()], axis=0) / k_self
    return curation.group_numbers(components), np.bincount(components)[components], hub_score


def curation_summary(tc) -> dict:
    """``summary.json`` "curation" of a :class:`novelty.judge.verdicts.TrainingCalibration`."""
    group_no, group_size, hub_score = _groups_and_hubs(tc)
    return {"duplicate_thresholds": {layer: round(t, 6) for layer, t in tc.duplicate_rule.thresholds().items()},
            "duplicate_rule": "mean over layers of the robust z of log(1 - cosine) <= -duplicate_z",
            "duplicate_groups": int(group_no.max()),
            "images_in_duplicate_groups": int((group_size > 1).sum()),
            "outliers": int(tc.outliers.is_outlier.sum()),
            "outlier_rule": tc.outliers.rule(),
            "self_search": dict(tc.duplicate_rule.views),
            "hubs": int((hub_score >= defaults.HUB_FACTOR).sum())}


def add_pixel_flags(rows: list[dict], train_dir: Path | None, training_ids: Sequence[str],
                    progress: bool = True) -> tuple[dict[str, int], list[str]]:
    """Add the pixel flag columns to the ``training.csv`` ``rows``; returns (count flagged per flag,
    warnings)."""
    extras, warnings = pixel_rows(train_dir, training_ids, progress)
    for row, extra in zip(rows, extras, strict=True):
        row.update(extra)
    return {name: sum(r.get(f"is_{name}") is True for r in rows) for name in curation.QUALITY_FLAGS}, warnings


def pixel_rows(train_dir: Path | None, training_ids: Sequence[str], progress: bool = True
               ) -> tuple[list[dict], list[str]]:
    """Pixel flag columns per TRAINING id, read from the files in ``train_dir``; and warnings."""
    from tqdm.auto import tqdm

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
