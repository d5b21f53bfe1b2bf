"""Copy evidence: what says that a GENERATED sample copies one particular TRAINING image.

Each piece of evidence is one :class:`Evidence` object: a ``name`` (the prefix of its ``samples.csv``
columns and its name in the calibration), a line of ``help``, the ``columns`` it adds, and
``compute(queries, found)``, which gives every query its training image and score (:class:`Found`).
A set of queries (:class:`Queries`) is either the GENERATED samples or the HELD-OUT training images,
with their neighbour lists per layer and, with the mirror search, those of their mirror images.

- *Calibrated* evidence is computed for held-out images and generated samples alike, so that a
  sample's score is compared with what unseen real images score (:mod:`novelty.judge.calibration`
  turns the scores into ``<name>_heldout_share`` and ``<name>_p_value``, and combines the pieces).
- *Decisive* evidence (``decisive = True``) is computed for the generated samples only: a match is a
  copy by itself, whatever the calibration can say.

The pieces, in column order (:data:`novelty.judge.verdicts.EVIDENCE` lists their classes):
:class:`LayerCosine` (one per layer: the cosine similarity of the nearest training image, the better
of the query and its mirror image, ``<layer>_mirrored`` saying which),
:class:`novelty.judge.identical.IdenticalCopy` (decisive) and
:class:`novelty.judge.alignment.AlignedMatch`. Adding one: a class in its own module, with its tests,
listed there. ``from_run(source)`` builds a piece from a run folder's inputs
(:class:`novelty.judge.runinputs.RunSource`) and raises NoveltyError when it cannot (the piece is then
left out with a warning).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from novelty.curate.duplicates import pair_similarity
from novelty.errors import NoveltyError
from novelty.judge.calibration import leave_group_out_neighbours
from novelty.judge.runinputs import FolderReadError, RunSource
from novelty.search.neighbors import normalize, top_k

CALIBRATED_COLUMNS = ("nearest_id", "similarity", "mirrored", "heldout_share", "p_value")  # <name>_<column>

Lists = Mapping[str, tuple[np.ndarray, np.ndarray]]  # layer -> (training indices (Q, d), similarities (Q, d))


@dataclass(frozen=True)
class Queries:
    """GENERATED samples (``heldout`` None) or HELD-OUT training images (``heldout``: their training
    indices ``(H,)``), as the evidence sees them.

    ``lists[layer]``: each query's nearest training images ``(indices (Q, d), similarities (Q, d))``,
    best first, at least as deep as the deepest piece's ``depth``; ``mirrored``: the same for the
    queries flipped left-right (None: no mirror search). ``desc``, ``progress``: for progress bars.
    """

    lists: Lists
    mirrored: Lists | None = None
    heldout: np.ndarray | None = None
    desc: str = ""
    progress: bool = False

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.lists)

    @property
    def generated(self) -> bool:
        return self.heldout is None

    def candidates(self, depth: int, mirrored: bool = False) -> np.ndarray | None:
        """``(Q, layers * depth)`` training indices: the first ``depth`` of every layer's list (of the
        mirrored lists with ``mirrored``; None without the mirror search)."""
        lists = self.mirrored if mirrored else self.lists
        if lists is None:
            return None
        return np.concatenate([lists[layer][0][:, :depth] for layer in self.layers], axis=1)


class Found(NamedTuple):
    """What one piece of evidence found per query: training index ``(Q,)`` int64 (-1: none), score
    ``(Q,)`` float64 (similarity; decisive evidence: 1 where found), whether the query's mirror image
    matched ``(Q,)`` bool, and any per-query detail of the piece (a list of length Q, or None)."""

    index: np.ndarray
    score: np.ndarray
    mirrored: np.ndarray
    detail: list | None = None


class Evidence(ABC):
    """One piece of copy evidence (see the module text)."""

    name: str  # column prefix in samples.csv and name in the calibration
    help: str  # one line: what it catches
    label: str  # its name in warnings ("<label> off: why")
    decisive: bool = False  # True: a match is a copy, no calibration; generated samples only
    depth: int = 1  # how many of each layer's nearest training images it looks at
    setting: str | None = None  # its key in summary.json "settings" (True when the run has it)
    extra_columns: tuple[str, ...] = ()  # samples.csv columns of its own, after every calibrated column

    @property
    def columns(self) -> tuple[str, ...]:
        """The ``samples.csv`` columns it adds (calibrated: ``<name>_`` + :data:`CALIBRATED_COLUMNS`, the
        last two filled by the calibration)."""
        own = () if self.decisive else tuple(f"{self.name}_{column}" for column in CALIBRATED_COLUMNS)
        return own + self.extra_columns

    @abstractmethod
    def compute(self, queries: Queries, found: Mapping[str, Found]) -> Found:
        """Each query's training image and score; ``found``: what the pieces before this one found."""

    def cells(self, found: Found, i: int, training_ids: Sequence[str]) -> dict[str, Any]:
        """Query ``i``'s values of :attr:`extra_columns`."""
        return {}

    @classmethod
    @abstractmethod
    def from_run(cls, source: RunSource) -> list[Evidence]:
        """The pieces of this kind for a run folder's inputs; raises NoveltyError when it cannot be had."""

    @property
    def warnings(self) -> list[str]:
        """Notes on how it was computed, for ``summary.json`` (a piece may add to them as it runs)."""
        return []


def better_of(plain: tuple[np.ndarray, np.ndarray], mirrored: tuple[np.ndarray, np.ndarray]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the (index, similarity) pair with the higher similarity, and whether it is the mirrored one."""
    better = mirrored[1] > plain[1]
    return np.where(better, mirrored[0], plain[0]), np.where(better, mirrored[1], plain[1]), better


@dataclass
class LayerCosine(Evidence):
    """The cosine similarity of the nearest training image at one layer (the better of the query and
    its mirror image with the mirror search)."""

    layer: str
    help: str = "cosine similarity of the nearest training image at this layer"
    label: str = "layer cosine"

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.layer

    @classmethod
    def from_run(cls, source: RunSource) -> list[Evidence]:
        return [cls(layer) for layer in source.layers]

    def compute(self, queries: Queries, found: Mapping[str, Found]) -> Found:
        idx, sims = queries.lists[self.layer]
        best = idx[:, 0], sims[:, 0]
        if queries.mirrored is None:
            return Found(*best, np.zeros(len(idx), dtype=bool))
        m_idx, m_sims = queries.mirrored[self.layer]
        return Found(*better_of(best, (m_idx[:, 0], m_sims[:, 0])))


class EvidenceFailed(NoveltyError):
    """A piece of evidence could not be computed because its inputs went missing (a run's image can
    no longer be read): ``piece`` says which, so that the verdict can be made without it."""

    def __init__(self, piece: Evidence, cause: Exception) -> None:
        super().__init__(str(cause))
        self.piece = piece


def find(pieces: Sequence[Evidence], queries: Queries) -> dict[str, Found]:
    """``{name: Found}`` of every piece for ``queries``, in order (decisive pieces: generated samples only)."""
    found: dict[str, Found] = {}
    for piece in pieces:
        if piece.decisive and not queries.generated:
            continue
        try:
            found[piece.name] = piece.compute(queries, found)
        except FolderReadError as exc:
            raise EvidenceFailed(piece, exc) from exc
    return found


def calibrated(pieces: Sequence[Evidence]) -> list[Evidence]:
    return [piece for piece in pieces if not piece.decisive]


def depth(pieces: Sequence[Evidence]) -> int:
    """How deep the neighbour lists must go for ``pieces``."""
    return max((piece.depth for piece in pieces), default=1)


def normalized(features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {layer: normalize(x) for layer, x in features.items()}


def sample_queries(generated: Mapping[str, np.ndarray], training: Mapping[str, np.ndarray],
                   neighbours: Lists | None = None, *, count: int = 1,
                   mirrored: Mapping[str, np.ndarray] | None = None, progress: bool = False,
                   desc: str = "aligning generated samples") -> Queries:
    """:class:`Queries` of GENERATED ``{layer: (M, D)}`` against TRAINING ``{layer: (N, D)}`` (rows
    L2-normalised): ``neighbours`` as given (None: searched ``count`` deep), and with ``mirrored`` (the
    samples flipped left-right, normalised) the mirrored lists, ``count`` deep."""
    lists, flipped = {}, {} if mirrored is not None else None
    for layer in training:
        idx, sims = neighbours[layer] if neighbours is not None else top_k(generated[layer], training[layer], count)
        lists[layer] = np.asarray(idx), np.asarray(sims, dtype=np.float64)
        if flipped is not None:
            flipped[layer] = top_k(mirrored[layer], training[layer], count)
    return Queries(lists, flipped, desc=desc, progress=progress)


def heldout_queries(training: Mapping[str, np.ndarray], heldout: np.ndarray, components: np.ndarray, *,
                    count: int = 1, mirrored: Callable[[np.ndarray], Mapping[str, np.ndarray]] | None = None,
                    is_duplicate: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None = None,
                    progress: bool = False) -> Queries:
    """:class:`Queries` of the HELD-OUT training images ``heldout`` against every training image outside
    their own duplicate group (``components``), ``count`` deep. ``mirrored(indices)``: features of
    training images flipped left-right (None: no mirror search); a mirror image's search also skips the
    training images that ``is_duplicate({layer: similarities})`` calls near-duplicates of it."""
    layers = tuple(training)
    lists = {layer: leave_group_out_neighbours(training[layer][heldout], training[layer], heldout, components,
                                               count=count) for layer in layers}
    flipped_lists = None
    if mirrored is not None:
        if is_duplicate is None:
            raise NoveltyError("the held-out mirror search needs the duplicate rule")
        flipped = normalized(mirrored(heldout))

        def mirror_duplicate(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
            # a training image that is a near-duplicate of the held-out image's MIRROR is its own copy too
            return is_duplicate({layer: pair_similarity(flipped[layer], training[layer], rows, cols)
                                 for layer in layers})

        flipped_lists = {layer: leave_group_out_neighbours(flipped[layer], training[layer], heldout, components,
                                                           count=count, exclude=mirror_duplicate)
                         for layer in layers}
    return Queries(lists, flipped_lists, heldout=np.asarray(heldout), desc="aligning held-out images",
                   progress=progress)
