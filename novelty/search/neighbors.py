"""Nearest training images for each generated sample: exact cosine top-k, and its file format.

GENERATED rows are the queries, TRAINING rows are searched: ``top_k(generated, training)`` answers
"which training images does each generated sample look most like?". The default search is exact:
chunked matrix products over both sides (memory stays bounded whatever N and M are) with a running
top-k per query merged by ``np.argpartition``. Every search goes through a backend of
:mod:`novelty.search.backends` (exact by default; FAISS, approximate past a size, with its recall
measured); the run records which one it used (``run.json`` "index" and "search_index").

Conventions:

- cosine similarity of L2-normalised rows, computed in float32 (float16 and float64 input is
  converted chunk by chunk), clipped to [-1, 1];
- a zero row (all features zero) has similarity 0 to everything, instead of an error: a blank
  image at a ReLU layer can give one, and it should still get a neighbour list;
- results are best first; equal scores are ordered by the lower training index, so the lists are
  deterministic and do not depend on the chunk sizes;
- non-finite values are a :class:`~novelty.errors.NoveltyError`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from novelty import defaults
from novelty.errors import NoveltyError
from novelty.files import read_json, write_json
from novelty.search import backends

_SENTINEL = np.iinfo(np.int64).max  # index of an empty slot: loses every tie
_DENSE_SHARE = 0.125  # merge a whole chunk when more than this share of its scores beat the k-th best


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (N, D), any real dtype, scaled to unit L2 norm: float32 (N, D).

    Zero rows stay zero. Raises NoveltyError for non-finite values.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise NoveltyError(f"expected a 2-D array of feature rows (N, D), received shape {x.shape}")
    out = np.array(x, dtype=np.float32, copy=True)
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))
    bad = np.flatnonzero(~np.isfinite(norms))
    if bad.size:
        raise NoveltyError(f"feature row {int(bad[0])} has non-finite values (NaN, inf or too large); "
                           "expected finite numbers")
    nonzero = norms > 0
    out[nonzero] /= norms[nonzero, None]
    return out


def _check_features(x: np.ndarray, side: str) -> np.ndarray:
    from novelty.search.rows import UnitRows

    if not isinstance(x, UnitRows | np.ndarray):  # a memory map, or a view normalised as read, stays one
        x = np.asarray(x)
    if x.ndim != 2:
        raise NoveltyError(f"{side} features must be a 2-D array (rows, dimensions), received shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise NoveltyError(f"{side} features must be real numbers (float16/32/64), received dtype {x.dtype}")
    return x


def _chunk_sizes(chunk_size: int | tuple[int, int] | None, n: int, m: int, d: int) -> tuple[int, int]:
    """(generated rows, training rows) per block: explicit, or sized to the memory budget."""
    if chunk_size is None:
        rows = max(1, defaults.TOPK_BLOCK_BYTES // (4 * max(d, 1)))
        return (max(1, min(n, defaults.TOPK_GENERATED_CHUNK, rows)),
                max(1, min(m, defaults.TOPK_TRAINING_CHUNK, rows)))
    sizes = (chunk_size, chunk_size) if isinstance(chunk_size, int | np.integer) else tuple(chunk_size)
    if len(sizes) != 2 or not all(isinstance(s, int | np.integer) and s >= 1 for s in sizes):
        raise NoveltyError(f"chunk_size must be a positive int or (generated rows, training rows), "
                           f"received {chunk_size!r}")
    return int(sizes[0]), int(sizes[1])


def _select(scores: np.ndarray, index: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (score desc, then index asc) of each row of (R, W) candidates, in no set order."""
    width = scores.shape[1]
    if width == k:
        return scores, index
    part = np.argpartition(scores, width - k, axis=1)[:, width - k:]
    top_s = np.take_along_axis(scores, part, axis=1)
    top_i = np.take_along_axis(index, part, axis=1)
    # argpartition picks arbitrarily among scores tied with the k-th: redo those rows in full order
    kth = top_s.min(axis=1)
    tied = np.flatnonzero((scores >= kth[:, None]).sum(axis=1) > k)
    if tied.size:
        order = np.lexsort((index[tied], -scores[tied]), axis=1)[:, :k]
        top_s[tied] = np.take_along_axis(scores[tied], order, axis=1)
        top_i[tied] = np.take_along_axis(index[tied], order, axis=1)
    return top_s, top_i


def _merge(best_s: np.ndarray, best_i: np.ndarray, block: np.ndarray, start: int) -> None:
    """Fold a block of scores (R, C) for training rows start.. into the running top-k, in place."""
    rows_n, cols_n = block.shape
    k = best_s.shape[1]
    worst = best_s.min(axis=1)
    # a score equal to the k-th best loses the tie: every kept index is lower than this block's
    flat = np.flatnonzero(block > worst[:, None])
    if flat.size == 0:
        return
    if flat.size > _DENSE_SHARE * block.size:
        np.clip(block, -1.0, 1.0, out=block)
        block_i = np.broadcast_to(np.arange(start, start + cols_n), block.shape)
        if cols_n > k:
            block, block_i = _select(block, block_i, k)
        best_s[:], best_i[:] = _select(np.concatenate([best_s, block], axis=1),
                                       np.concatenate([best_i, block_i], axis=1), k)
        return
    rows, cols = np.divmod(flat, cols_n)
    counts = np.bincount(rows, minlength=rows_n)
    hit = np.flatnonzero(counts)
    slot = np.arange(rows.size) - (np.cumsum(counts) - counts)[rows]  # place of each hit in its row
    where = (np.cumsum(counts > 0) - 1)[rows]  # row of each hit among the rows with hits
    width = int(counts.max())
    cand_s = np.full((hit.size, k + width), -np.inf, dtype=np.float32)
    cand_i = np.full((hit.size, k + width), _SENTINEL, dtype=np.int64)
    cand_s[:, :k], cand_i[:, :k] = best_s[hit], best_i[hit]
    cand_s[where, k + slot] = np.clip(block.ravel()[flat], -1.0, 1.0)
    cand_i[where, k + slot] = cols + start
    best_s[hit], best_i[hit] = _select(cand_s, cand_i, k)


def sort_best_first(best_s: np.ndarray, best_i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((best_i, -best_s), axis=1)
    return (np.take_along_axis(best_i, order, axis=1).astype(np.int64),
            np.take_along_axis(best_s, order, axis=1).astype(np.float32))


def exact_top_k(generated: np.ndarray, training: np.ndarray, k: int, chunks: tuple[int, int],
                progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of checked inputs, blocks of (generated rows, training rows) = ``chunks``:
    what :class:`novelty.search.backends.ExactBackend` runs (see :func:`top_k`)."""
    from tqdm.auto import tqdm

    n, m = generated.shape[0], training.shape[0]
    g_chunk, t_chunk = chunks
    indices = np.empty((n, k), dtype=np.int64)
    sims = np.empty((n, k), dtype=np.float32)
    blocks = -(-n // g_chunk) * -(-m // t_chunk)
    with tqdm(total=blocks, desc="nearest neighbours", unit="block", disable=not progress) as bar:
        for g0 in range(0, n, g_chunk):
            queries = normalize(generated[g0:g0 + g_chunk])
            best_s = np.full((queries.shape[0], k), -np.inf, dtype=np.float32)
            best_i = np.full((queries.shape[0], k), _SENTINEL, dtype=np.int64)
            for t0 in range(0, m, t_chunk):
                block = queries @ normalize(training[t0:t0 + t_chunk]).T
                _merge(best_s, best_i, block, t0)
                bar.update()
            indices[g0:g0 + g_chunk], sims[g0:g0 + g_chunk] = sort_best_first(best_s, best_i)
    return indices, sims


def top_k(generated: np.ndarray, training: np.ndarray, k: int = defaults.TOP_K, *,
          chunk_size: int | tuple[int, int] | None = None, backend=None,
          progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The k most cosine-similar TRAINING rows for each GENERATED row.

    generated: (N, D) GENERATED features (queries); training: (M, D) TRAINING features (searched);
    float32 preferred, float16/float64/int accepted (computed in float32), memory-mapped or a
    :class:`novelty.search.rows.UnitRows` view (read a block at a time).
    chunk_size: rows per block, one int for both sides or (generated rows, training rows); None picks
    sizes from ``defaults.TOPK_*`` so a block stays within a fixed memory budget.
    backend: a :class:`~novelty.search.backends.SearchBackend`, or its name ("exact", "faiss": a new
    one); None: the active one (:func:`novelty.search.backends.using`; exact unless set).

    Returns (indices int64 (N, k) into TRAINING rows, similarities float32 (N, k)), best first,
    equal scores ordered by lower training index. Raises NoveltyError when k > M.
    """
    generated = _check_features(generated, "generated")
    training = _check_features(training, "training")
    if generated.shape[1] != training.shape[1]:
        raise NoveltyError(f"generated and training features differ in dimension: {generated.shape[1]} "
                           f"vs {training.shape[1]}; compute both with the same extractor and layer")
    if backend is None:
        backend = backends.active()
    elif isinstance(backend, str):
        backend = backends.make_backend(backend)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise NoveltyError(f"k must be a positive integer, received {k!r}")
    n, m = generated.shape[0], training.shape[0]
    if k > m:
        raise NoveltyError(f"k={k} neighbours requested but the training set has only {m} rows; "
                           f"use k <= {m}")
    k = int(k)
    chunks = _chunk_sizes(chunk_size, n, m, generated.shape[1])
    if n == 0:
        return np.empty((0, k), dtype=np.int64), np.empty((0, k), dtype=np.float32)
    return backend.search(generated, training, k, chunks, progress)


def save_neighbors(path: str | os.PathLike, generated_ids: Sequence[str], training_ids: Sequence[str],
                   indices: np.ndarray, similarities: np.ndarray) -> None:
    """Write ``{"<generated id>": [{"id": "<training id>", "score": <cosine>}, ...]}`` atomically.

    indices, similarities: (N, k) from :func:`top_k`, row i for ``generated_ids[i]``; scores are
    rounded to 6 decimals.
    """
    indices = np.asarray(indices)
    similarities = np.asarray(similarities)
    if indices.ndim != 2 or indices.shape != similarities.shape:
        raise NoveltyError(f"indices and similarities must be (N, k) arrays of one shape, received "
                           f"{indices.shape} and {similarities.shape}")
    if len(generated_ids) != indices.shape[0]:
        raise NoveltyError(f"{len(generated_ids)} generated ids for {indices.shape[0]} rows of neighbours")
    if len(set(generated_ids)) != len(generated_ids):
        raise NoveltyError("generated ids must be unique")
    if indices.size and (indices.min() < 0 or indices.max() >= len(training_ids)):
        raise NoveltyError(f"neighbour indices must lie in [0, {len(training_ids)}), received "
                           f"{int(indices.min())}..{int(indices.max())}")
    table = {
        str(gid): [{"id": str(training_ids[int(j)]), "score": round(float(s), 6)}
                   for j, s in zip(row_i, row_s, strict=True)]
        for gid, row_i, row_s in zip(generated_ids, indices, similarities, strict=True)
    }
    write_json(path, table)


def load_neighbors(path: str | os.PathLike) -> dict[str, list[dict]]:
    """Read a file written by :func:`save_neighbors`, checking its shape."""
    try:
        table = read_json(path)
    except FileNotFoundError:
        raise NoveltyError(f"neighbours file not found: {path}") from None
    except ValueError as exc:
        raise NoveltyError(f"neighbours file is not valid JSON: {path} ({exc})") from None
    if not isinstance(table, dict):
        raise NoveltyError(f"neighbours file must hold an object of generated ids, received "
                           f"{type(table).__name__}: {path}")
    for gid, entries in table.items():
        if not isinstance(entries, list) or not all(
                isinstance(e, dict) and isinstance(e.get("id"), str)
                and isinstance(e.get("score"), int | float) for e in entries):
            raise NoveltyError(f"neighbours of {gid!r} must be a list of {{\"id\": str, \"score\": number}}: {path}")
    return table
