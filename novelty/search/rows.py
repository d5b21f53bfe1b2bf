"""Feature rows normalised as they are read: :class:`UnitRows`, the verdict stage's view of a set.

The verdicts ask many questions of a set's L2-normalised rows (searches, pair similarities, held-out
rows, C_T cells, the outlier score's principal components). A normalised float32 copy of a whole layer
held for all of them is 1.6 GB per 100,000 images at 4,096 dimensions, on top of the stored float16
features and any search index; a :class:`UnitRows` over the feature store's memory-mapped file holds
nothing: each read (a block of rows, or any rows by index) is normalised as it is taken, so memory
grows with the block read, not with the set.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from novelty import defaults
from novelty.errors import NoveltyError


class UnitRows:
    """L2-normalised float32 view ``(N, D)`` of ``source`` rows (any real (N, D) array, memory-mapped is
    the point), optionally of a subset ``rows`` (indices into ``source``, in that order).

    ``view[i:j]`` and ``view[indices]`` give float32 arrays normalised on the fly (zero rows stay
    zero; :func:`novelty.search.neighbors.normalize`); ``np.asarray(view)`` gives the whole view, a
    block at a time (for small sets and callers that need one array).
    """

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, source: np.ndarray, rows: np.ndarray | None = None) -> None:
        if getattr(source, "ndim", None) != 2:
            raise NoveltyError(f"expected a 2-D array of feature rows (N, D), received shape {np.shape(source)}")
        if isinstance(source, UnitRows):  # a view of a view: one level of row indices
            rows = source._select(slice(None) if rows is None else rows)
            source = source.source
        self.source = source
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self.shape = (len(source) if self.rows is None else len(self.rows), int(source.shape[1]))

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def filename(self) -> Path | None:
        """The file behind the whole view (a memory-mapped store file), None for a subset or an in-memory array."""
        name = getattr(self.source, "filename", None)
        return Path(name) if name and self.rows is None else None

    def _select(self, key) -> np.ndarray | slice:
        """``key`` (slice, int, index or bool array) as rows of ``source``."""
        if isinstance(key, slice):
            return key if self.rows is None else self.rows[key]
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        if not np.issubdtype(key.dtype, np.integer):
            raise NoveltyError(f"rows must be selected by slice, integer or boolean index, received {key.dtype}")
        return key if self.rows is None else self.rows[key]

    def __getitem__(self, key) -> np.ndarray:
        from novelty.search.neighbors import normalize

        if isinstance(key, int | np.integer):
            return self[np.array([key])][0]
        return normalize(self.source[self._select(key)])

    def subset(self, rows: np.ndarray) -> UnitRows:
        """The view of ``rows`` of this view (no data read)."""
        return UnitRows(self, rows)

    def blocks(self, block: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, rows start..start+len)`` normalised, ``block`` rows at a time (None: as many as
        ``defaults.TOPK_BLOCK_BYTES`` hold in float32)."""
        block = block or max(1, defaults.TOPK_BLOCK_BYTES // (4 * max(1, self.shape[1])))
        for start in range(0, len(self), block):
            yield start, self[start:start + block]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.empty(self.shape, dtype=np.float32)
        for start, rows in self.blocks():
            out[start:start + len(rows)] = rows
        return out if dtype is None else out.astype(dtype, copy=False)


def unit_rows(features: dict[str, np.ndarray]) -> dict[str, UnitRows]:
    """``{layer: UnitRows}`` of ``{layer: (N, D)}`` features (a view each, nothing read)."""
    return {layer: x if isinstance(x, UnitRows) else UnitRows(x) for layer, x in features.items()}


def fit_rows(n: int, limit: int | None = None, seed: int = defaults.SEED) -> np.ndarray | slice:
    """The rows a model of a set of ``n`` rows is fitted on: all (``slice(None)``) up to ``limit`` (None:
    ``defaults.PCA_FIT_MAX``), else a seeded sorted random ``limit`` of them (the principal components
    of 20,000 rows are those of the set)."""
    limit = defaults.PCA_FIT_MAX if limit is None else limit
    if n <= limit:
        return slice(None)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def transform(model, features, block: int | None = None) -> np.ndarray:
    """``model.transform`` (a fitted PCA) of ``features`` ``(N, D)`` (an array or a :class:`UnitRows`),
    ``block`` rows at a time: memory of one block, not of the set."""
    block = block or max(1, defaults.TOPK_BLOCK_BYTES // (4 * max(1, features.shape[1])))
    parts = [model.transform(np.asarray(features[start:start + block], dtype=np.float32))
             for start in range(0, len(features), block)]
    return np.concatenate(parts) if parts else np.empty((0, model.n_components_), np.float32)
