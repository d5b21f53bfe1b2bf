"""Aligned pixel match: is a sample a crop, rescale or mirror image of one particular training image?

VGG16's pooled features move when a picture is cropped and scaled back up: on the masks a copy
cropped to 80% of each side is no closer to its source at ``block5_pool`` than the re-framed and
re-photographed pictures that real collections hold (see the README, "How the verdicts work"). Pixels
tell the two apart: a crop keeps every fine detail of its source in place, a new photograph does not.

The score of a (query, candidate) pair:

1. both images are turned grey and scaled to :data:`ALIGN_SIZE` px;
2. the query, shrunk to each scale of :data:`ALIGN_SCALES`, is slid over the candidate at every
   offset, and the candidate, shrunk alike, over the query (either may be the crop of the other);
3. each image (at each scale) is high-pass filtered first: the image minus a Gaussian blur of
   :data:`ALIGN_SIGMA` px, so only fine detail counts, not silhouettes or plain backgrounds (the
   unfiltered grey correlation is 0.95+ for unrelated masks on white);
4. the score is the best zero-mean normalised cross-correlation over scales, offsets and the two
   directions (OpenCV ``matchTemplate``, ``TM_CCOEFF_NORMED``): 1 for a pixel-exact crop.

On the masks (``novelty validate``) crops to 95%, 90% and 80% of their source score 0.90 or more
(5th percentile), unseen real images 0.80 or less (99th percentile).

Which pairs: a search over every training image at every offset would cost far too much, so a query
is scored against its :data:`ALIGN_CANDIDATES` nearest training images of each layer's neighbour list
(on the masks the source of a crop to 80% is among the 5 nearest at ``block5_pool`` 99% of the time),
and, with the mirror search, its mirror image against the nearest of its mirror image. Held-out images
are scored exactly like generated samples, so the score is calibrated like a layer's similarity
(:mod:`novelty.judge.calibration` treats it as one more layer, named :data:`ALIGNED`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from novelty.errors import NoveltyError
from novelty.judge.evidence import Evidence, Found, Queries

ALIGNED = "aligned"  # its name beside the layers in verdicts, samples.csv columns and plots
ALIGN_SIZE = 64  # px: images are compared at this size (the masks thumbnails are 64 px)
ALIGN_SCALES: tuple[float, ...] = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75)  # share of each side a crop keeps
ALIGN_SIGMA = 1.5  # px: the high-pass filter removes a Gaussian blur of this width
ALIGN_CANDIDATES = 5  # nearest training images of each layer's list (and mirrored list) scored per query
MIN_DETAIL = 1.0  # grey levels: a view with less fine detail (standard deviation) matches nothing
CROP_SIDE = {"query": "sample", "candidate": "training"}  # samples.csv aligned_crop: which image is the crop
EVIDENT_MATCH = 0.9  # a score this high says "crop or rescale" where a run has no calibrated threshold
# (on the masks crops to 80% of their source score at least 0.90, unseen real images at most 0.87)

_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma, as Pillow's "L"


@dataclass(frozen=True)
class Views:
    """High-pass grey views of images, one ``(N, m, m)`` float32 array per scale of :data:`ALIGN_SCALES`
    (``m = round(scale * ALIGN_SIZE)``); ``scales[0]`` is the full size. About 74 KB per image: made
    for a chunk of images at a time (:func:`best_match`), kept as :func:`grey` images in between."""

    scales: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.scales[0])

    def mirrored(self) -> Views:
        """The views of the images flipped left-right (the filters commute with the flip)."""
        return Views(tuple(np.ascontiguousarray(s[:, :, ::-1]) for s in self.scales))


def grey(images: np.ndarray) -> np.ndarray:
    """RGB uint8 images ``(N, S, S, 3)`` (any square size) as grey float16 ``(N, ALIGN_SIZE, ALIGN_SIZE)``:
    what the aligned match keeps of an image (8 KB; float16 keeps an eighth of a grey level, which a
    rescaled image needs, where uint8 would round away part of the fine detail)."""
    import cv2

    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise NoveltyError(f"expected square RGB images (N, S, S, 3), received shape {images.shape}")
    out = np.empty((len(images), ALIGN_SIZE, ALIGN_SIZE), dtype=np.float16)
    for i, image in enumerate(images):
        g = image.astype(np.float32) @ _GREY
        if g.shape[0] != ALIGN_SIZE:
            g = cv2.resize(g, (ALIGN_SIZE, ALIGN_SIZE), interpolation=cv2.INTER_AREA)
        out[i] = g
    return out


def views(images: np.ndarray) -> Views:
    """:class:`Views` of :func:`grey` images ``(N, ALIGN_SIZE, ALIGN_SIZE)``, or of RGB images (made grey first)."""
    import cv2

    images = np.asarray(images)
    if images.ndim == 4:
        images = grey(images)
    if images.ndim != 3 or images.shape[1:] != (ALIGN_SIZE, ALIGN_SIZE):
        raise NoveltyError(f"expected grey images (N, {ALIGN_SIZE}, {ALIGN_SIZE}), received shape {images.shape}")
    images = images.astype(np.float32)
    out = []
    for scale in ALIGN_SCALES:
        m = round(scale * ALIGN_SIZE)
        rows = np.empty((len(images), m, m), dtype=np.float32)
        for i, g in enumerate(images):
            small = g if m == ALIGN_SIZE else cv2.resize(g, (m, m), interpolation=cv2.INTER_AREA)
            rows[i] = small - cv2.GaussianBlur(small, (0, 0), ALIGN_SIGMA, borderType=cv2.BORDER_REFLECT)
        out.append(rows)
    return Views(tuple(out))


@dataclass(frozen=True)
class Match:
    """The best alignment of a pair: score, the scale the smaller side was shrunk to, which side is
    the crop (``"query"``: the query lies inside the candidate), and that crop's place (left, top) in
    :data:`ALIGN_SIZE` px of the other."""

    score: float
    scale: float
    inside: str
    offset: tuple[int, int]


NO_MATCH = Match(0.0, 1.0, "query", (0, 0))


def _slide(template: np.ndarray, image: np.ndarray) -> tuple[float, tuple[int, int]]:
    import cv2

    if float(template.std()) < MIN_DETAIL:
        return 0.0, (0, 0)  # nothing to align (OpenCV would answer 1 for a flat template)
    result = cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
    _, best, _, place = cv2.minMaxLoc(result)
    return float(best), (int(place[0]), int(place[1]))


def match(query: Views, q: int, candidate: Views, c: int) -> Match:
    """Best alignment of query row ``q`` and candidate row ``c`` (see the module text)."""
    if float(candidate.scales[0][c].std()) < MIN_DETAIL or float(query.scales[0][q].std()) < MIN_DETAIL:
        return NO_MATCH
    best = NO_MATCH
    for i, scale in enumerate(ALIGN_SCALES):
        sides = [("query", query.scales[i][q], candidate.scales[0][c])]
        if i:
            sides.append(("candidate", candidate.scales[i][c], query.scales[0][q]))
        for inside, small, big in sides:
            score, place = _slide(small, big)
            if score > best.score:
                best = Match(min(1.0, score), scale, inside, place)
    return best


def best_match(query: np.ndarray, candidates: np.ndarray, training: Callable[[np.ndarray], np.ndarray],
               mirrored_candidates: np.ndarray | None = None, *, progress: bool = False,
               desc: str = "aligning", chunk: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Match]]:
    """Best-aligned TRAINING image of each query.

    ``query``: :func:`grey` images of M queries (GENERATED samples or held-out images) ``(M, S, S)``;
    ``candidates`` ``(M, C)`` training indices to score each query against (-1: none);
    ``mirrored_candidates`` ``(M, C2)`` those to score the query's mirror image against (None: no
    mirror search); ``training(indices)``: :func:`grey` images of those training images. Queries go
    ``chunk`` at a time, so the views in memory stay bounded whatever M and N are. Returns (training
    index ``(M,)`` int64, -1 when no candidate; score ``(M,)`` float64 in [-1, 1]; mirrored ``(M,)``
    bool; the :class:`Match` of each).
    """
    from concurrent.futures import ThreadPoolExecutor
    from functools import partial

    from tqdm.auto import tqdm

    m = len(query)
    candidates = np.asarray(candidates, dtype=np.int64).reshape(m, -1)
    mirror_cands = (np.full((m, 0), -1, np.int64) if mirrored_candidates is None
                    else np.asarray(mirrored_candidates, dtype=np.int64).reshape(m, -1))
    results: list[tuple[int, Match, bool]] = []
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool, \
            tqdm(total=m, desc=desc, unit="img", disable=not progress) as bar:
        for start in range(0, m, chunk):
            rows = slice(start, min(m, start + chunk))
            plain, flipped_rows = candidates[rows], mirror_cands[rows]
            wanted = np.unique(np.concatenate([plain.ravel(), flipped_rows.ravel()]))
            wanted = wanted[wanted >= 0]
            lookup = {int(j): i for i, j in enumerate(wanted)}
            train = views(training(wanted)) if len(wanted) else None
            here = views(query[rows])
            mirrored_here = here.mirrored() if mirrored_candidates is not None else None

            one = partial(_best_of, sides=((here, plain, False), (mirrored_here, flipped_rows, True)),
                          train=train, lookup=lookup)
            # OpenCV releases the GIL while it correlates: one thread per core
            for result in pool.map(one, range(len(here))):
                results.append(result)
                bar.update(1)
    index = np.array([r[0] for r in results], dtype=np.int64).reshape(m)
    score = np.array([r[1].score for r in results], dtype=np.float64).reshape(m)
    mirrored = np.array([r[2] for r in results], dtype=bool).reshape(m)
    return index, score, mirrored, [r[1] for r in results]


def _best_of(q: int, sides: tuple, train: Views | None, lookup: dict[int, int]) -> tuple[int, Match, bool]:
    """(training index, match, mirrored) of query row ``q`` over its candidates; ``sides`` pairs the
    query views (plain, mirrored) with their candidate rows."""
    best: tuple[int, Match, bool] = (-1, NO_MATCH, False)
    for views_q, rows, is_mirror in sides:
        for j in dict.fromkeys(int(v) for v in rows[q] if v >= 0):  # unique, in order
            found = match(views_q, q, train, lookup[j])
            if best[0] < 0 or found.score > best[1].score:
                best = (j, found, is_mirror)
    return best


class TrainingPixels:
    """:func:`grey` images of TRAINING images by index, made on first use from ``images(indices)`` (RGB
    uint8 ``(n, S, S, 3)``) and kept (8 KB each): held-out images and generated samples share many
    candidates."""

    def __init__(self, images: Callable[[np.ndarray], np.ndarray]) -> None:
        self._images = images
        self._grey: dict[int, np.ndarray] = {}  # one array per image: nothing is copied as the cache grows

    def __call__(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64).tolist()
        new = [j for j in dict.fromkeys(indices) if j not in self._grey]
        if new:
            self._grey.update(zip(new, grey(self._images(np.asarray(new, dtype=np.int64))), strict=True))
        return np.stack([self._grey[j] for j in indices]) if indices else \
            np.empty((0, ALIGN_SIZE, ALIGN_SIZE), dtype=np.float16)


class AlignedMatch(Evidence):
    """The aligned pixel match as a piece of copy evidence (calibrated, named :data:`ALIGNED`): each
    query's best-aligned training image among the :data:`ALIGN_CANDIDATES` nearest of each layer's list
    (:func:`best_match`), with ``aligned_scale`` and ``aligned_crop`` (which image is the crop).

    ``training(indices)``: :func:`grey` images of training images (held-out images are read through
    it too); ``generated``: those of the GENERATED samples (None: held-out images only).
    """

    name = ALIGNED
    help = "fine detail lined up with the best-aligned training image: crops, rescales, re-encodings"
    label = "aligned pixel match"
    depth = ALIGN_CANDIDATES
    setting = "aligned_pixel_match"
    extra_columns = (f"{ALIGNED}_scale", f"{ALIGNED}_crop")

    def __init__(self, training: Callable[[np.ndarray], np.ndarray], generated: np.ndarray | None = None) -> None:
        self.training, self.generated = training, generated

    def compute(self, queries: Queries, found: dict) -> Found:
        pixels = self.generated if queries.generated else self.training(queries.heldout)
        if pixels is None:
            raise NoveltyError("the aligned pixel match needs the generated samples' grey images")
        index, score, mirrored, matches = best_match(
            pixels, queries.candidates(self.depth), self.training, queries.candidates(self.depth, mirrored=True),
            progress=queries.progress, desc=queries.desc)
        return Found(index, score, mirrored, matches)

    def cells(self, found: Found, i: int, training_ids) -> dict:
        best = found.detail[i]
        return {f"{ALIGNED}_scale": best.scale, f"{ALIGNED}_crop": CROP_SIDE[best.inside]}

    @classmethod
    def from_run(cls, source) -> list[Evidence]:
        """The run's images (:class:`novelty.judge.runinputs.RunSource`), read at :data:`ALIGN_SIZE` px."""
        read = source.reader()
        ids = source.training_ids
        return [cls(TrainingPixels(lambda indices: read("training", [ids[i] for i in indices], ALIGN_SIZE)),
                    grey(read("generated", source.generated_ids, ALIGN_SIZE)))]
