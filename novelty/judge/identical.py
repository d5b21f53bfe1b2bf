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

from novelty.errors import NoveltyError
from novelty.judge.evidence import Evidence, Found, Queries
from novelty.judge.runinputs import FolderReadError, RunSource

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


class IdenticalCopy(Evidence):
    """Identical copies as a piece of copy evidence (decisive, named ``identical``): each GENERATED
    sample against its nearest training image at each layer, plain and as its mirror image's search
    found it (:func:`identical_matches`), with ``identical_id`` and ``identical_kind``.

    ``check(candidates)``: :func:`identical_matches` of the samples against ``(M, C)`` training indices.
    """

    name = "identical"
    help = "the same file, or the same pixels (plain or mirrored) as a training image: a copy whatever the calibration"
    label = "identical check"
    decisive = True
    setting = "identical_check"
    extra_columns = ("identical_id", "identical_kind")

    def __init__(self, check: Callable[[np.ndarray], tuple[np.ndarray, list[str]]],
                 warnings: list[str] | None = None) -> None:
        self.check = check
        self._warnings = [] if warnings is None else warnings

    @property
    def warnings(self) -> list[str]:
        return list(dict.fromkeys(self._warnings))

    def compute(self, queries: Queries, found: dict) -> Found:
        layers = queries.layers
        index, kind = self.check(np.column_stack([queries.lists[layer][0][:, 0] for layer in layers]
                                                 + [found[layer].index for layer in layers]))
        return Found(index, (index >= 0).astype(np.float64), np.array([k == MIRRORED_PIXELS for k in kind]), kind)

    def cells(self, found: Found, i: int, training_ids: Sequence[str]) -> dict:
        j = int(found.index[i])
        return {"identical_id": training_ids[j] if j >= 0 else "", "identical_kind": found.detail[i]}

    @classmethod
    def from_run(cls, source: RunSource) -> list[Evidence]:
        """Compared on the run's images fitted to its input size, and on their file hashes; where the
        images cannot be read again, on the file hashes only (and a warning says so)."""
        size, warnings = source.input_size, []
        try:
            read = source.reader()
            samples = read("generated", source.generated_ids, size)
        except NoveltyError as exc:
            read, samples = None, None
            warnings.append(f"identical copies found by file hash only: {exc}")
        by_hash = {"generated_sha": source.hashes["generated"], "training_sha": source.hashes["training"]}
        ids = source.training_ids

        def check(candidates: np.ndarray) -> tuple[np.ndarray, list[str]]:
            if read is not None:
                try:
                    return identical_matches(samples, candidates, lambda idx: read("training", [ids[j] for j in idx],
                                                                                   size), **by_hash)
                except FolderReadError as exc:
                    warnings.append(f"identical copies found by file hash only: {exc}")
            return identical_matches(None, candidates, None, **by_hash)

        return [cls(check, warnings)]
