"""Identical copies: a GENERATED sample that is a TRAINING image, byte for byte, pixel for pixel as the
analysis sees them (both fitted to the run's input size), or pixel for pixel once mirrored.

This is decisive on its own and needs no calibration, so it holds whatever the size of the held-out
set: the calibrated rule (:mod:`novelty.judge.calibration`) cannot flag anything when too few images are
held out for the chosen false-positive rate, yet an identical copy must still be called one. It does
not weaken the calibration either: an unseen real image is never identical to a training image
outside its own near-duplicate group (identical images are one group, and a held-out image's search
skips its group and the near-duplicates of its mirror image), so the rule adds no false positives
to the ones the held-out images measure.

Which pairs: each sample against the training images its neighbour lists put first (identical
images have identical features, so the source is nearest at every layer; a mirrored copy's source is
nearest to the sample's mirror image, which the mirror search looks up), plus any training file with
the same sha256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

SAME_FILE, SAME_PIXELS, MIRRORED_PIXELS = "same file", "same pixels", "mirrored pixels"


def _digest(image: np.ndarray) -> bytes:
    image = np.ascontiguousarray(image)
    return hashlib.sha256(repr(image.shape).encode() + image.tobytes()).digest()


def identical_matches(generated: np.ndarray | None, candidates: np.ndarray,
                      training: Callable[[np.ndarray], np.ndarray] | None, *,
                      generated_sha: Sequence[str] = (), training_sha: Sequence[str] = ()
                      ) -> tuple[np.ndarray, list[str]]:
    """For each GENERATED sample, a TRAINING image it is identical to, and how.

    ``generated``: the samples as the run fitted them, uint8 ``(M, S, S, 3)`` (None: pixels not
    compared); ``candidates``: ``(M, C)`` training indices to compare each with (-1: none);
    ``training(indices)``: those training images, fitted alike, ``(n, S, S, 3)``. ``generated_sha`` /
    ``training_sha``: file hashes (empty: not compared). Returns (training index ``(M,)`` int64, -1
    where none; per sample :data:`SAME_FILE`, :data:`SAME_PIXELS`, :data:`MIRRORED_PIXELS` or "").
    """
    candidates = np.asarray(candidates, dtype=np.int64)
    m = len(candidates)
    found = np.full(m, -1, dtype=np.int64)
    kind = [""] * m
    by_sha: dict[str, int] = {}
    for j, sha in enumerate(training_sha):
        if sha:
            by_sha.setdefault(sha, j)
    for i, sha in enumerate(generated_sha):
        if sha and sha in by_sha:
            found[i], kind[i] = by_sha[sha], SAME_FILE
    if generated is None or training is None:
        return found, kind
    wanted = np.unique(candidates[(candidates >= 0) & (found[:, None] < 0)])
    digests = dict(zip(wanted.tolist(), map(_digest, training(wanted)), strict=True)) if len(wanted) else {}
    for i in np.flatnonzero(found < 0):
        row = [j for j in dict.fromkeys(candidates[i].tolist()) if j >= 0]
        for label, view in ((SAME_PIXELS, generated[i]), (MIRRORED_PIXELS, generated[i][:, ::-1])):
            target = _digest(view)
            match = next((j for j in row if digests[j] == target), None)
            if match is not None:
                found[i], kind[i] = match, label
                break
    return found, kind


def training_overlap(train_dir: str | None, generated_dir: str | None, training_sha: Sequence[str],
                     generated_sha: Sequence[str]) -> dict:
    """How far the GENERATED folder overlaps the TRAINING folder: the same folder, or files with the same
    content (sha256). JSON-ready, with a one-line ``warning`` (None when they do not overlap)."""
    same_folder = bool(train_dir and generated_dir and Path(train_dir).resolve() == Path(generated_dir).resolve())
    known = {sha for sha in training_sha if sha}
    count = sum(1 for sha in generated_sha if sha and sha in known)
    n = len(generated_sha)
    warning = None
    if same_folder:
        warning = (f"--generated is the training folder itself ({generated_dir}): every sample is a training "
                   f"image, so the verdicts say nothing about a generator")
    elif count:
        warning = (f"--generated overlaps the training folder: {count} of {n} generated files are identical "
                   f"to training files (sha256)")
    return {"same_folder": same_folder, "generated_in_training": count, "generated": n, "warning": warning}
