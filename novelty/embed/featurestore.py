"""The feature store of a run folder (``RUN/features/``): features per image set and layer, cached by content.

::

    features/<set>/<layer>.json          params, ids, sha256 per row, dtype, shape, data file name
    features/<set>/<layer>-<token>.npy   (N, D) features, row i = ids[i]

Rows are keyed by the sha256 of each image file, so a re-run reuses every row whose image is unchanged
(renamed files too) and embeds only new images. The ``params`` (weights sha256, preprocess, input size,
layer, reduction) and the requested storage dtype must match exactly, otherwise the cache is ignored
and rebuilt: rows of two configurations are never mixed.

Storage is float16 by default (half the disk and memory; block1_pool at 64 px is 65,536 values per
image) unless a layer's values do not fit (:func:`fits_float16`), in which case that layer is stored
as float32. Arrays are written chunk by chunk into a ``.npy`` (positioned writes, so the process's memory
stays at one chunk however large the set) and committed atomically:
the ``.json`` (written last, via :mod:`novelty.files`) names the data file, so a crash never leaves a
json pointing at half-written data.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from novelty import defaults
from novelty.embed.features import LazyImages
from novelty.errors import NoveltyError
from novelty.files import read_json, write_json


class ImageRows(Protocol):
    """What :meth:`FeatureStore.update` embeds: an array, or anything read by rows like one."""

    shape: tuple[int, ...]  # (N, H, W, 3)

    def __len__(self) -> int: ...

    def __getitem__(self, rows: np.ndarray) -> np.ndarray: ...  # int64 rows -> uint8 (len(rows), H, W, 3)

STORAGE_DTYPES: tuple[str, ...] = defaults.FEATURE_DTYPES
COPY_CHUNK = 1024  # rows copied at a time from an earlier store
FLOAT16_MAX = 65000.0  # a margin under 65,504
FLOAT16_MIN_ROW_MAX = 2.0 ** -4  # entries down to 1/1024 of the row's largest stay normal float16
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def fits_float16(features: np.ndarray) -> bool:
    """True when float16 storage keeps ``features`` ``(N, D)``: finite, below the float16 maximum, and
    every non-zero row's largest magnitude at least ``FLOAT16_MIN_ROW_MAX`` (no loss to underflow)."""
    x = np.abs(np.asarray(features, np.float32))
    if x.size == 0:
        return True
    if not np.isfinite(x).all():
        return False
    row_max = x.max(axis=1)
    return bool(row_max.max() <= FLOAT16_MAX and (row_max[row_max > 0] >= FLOAT16_MIN_ROW_MAX).all())


class FeatureStore:
    """Features of image sets under ``folder``; ``dtype`` is the requested storage dtype."""

    def __init__(self, folder: str | os.PathLike, dtype: str = defaults.FEATURE_DTYPE):
        if dtype not in STORAGE_DTYPES:
            raise NoveltyError(f"unknown feature dtype {dtype!r}; must be one of: {', '.join(STORAGE_DTYPES)}")
        self.folder = Path(folder)
        self.dtype = dtype

    def _meta_path(self, set_name: str, layer: str) -> Path:
        for name in (set_name, layer):
            if not _NAME.match(name):
                raise NoveltyError(f"invalid feature-store name {name!r}: use letters, digits, _ . -")
        return self.folder / set_name / f"{layer}.json"

    def meta(self, set_name: str, layer: str) -> dict | None:
        """The stored description of ``set_name``/``layer``, or None when absent or unreadable."""
        path = self._meta_path(set_name, layer)
        try:
            meta = read_json(path)
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or not (path.parent / str(meta.get("data", ""))).is_file():
            return None
        return meta

    def load(self, set_name: str, layer: str, mmap: bool = True) -> tuple[list[str], np.ndarray]:
        """``(ids, features (N, D))`` as stored (float16 or float32; memory-mapped read-only if ``mmap``)."""
        meta = self.meta(set_name, layer)
        if meta is None:
            raise NoveltyError(f"no {layer} features for {set_name} in {self.folder}; run `novelty analyze`")
        features = np.load(self._meta_path(set_name, layer).parent / meta["data"],
                           mmap_mode="r" if mmap else None, allow_pickle=False)
        if list(features.shape) != list(meta["shape"]) or len(meta["ids"]) != features.shape[0]:
            raise NoveltyError(f"feature store {self.folder / set_name} is inconsistent for {layer} "
                               f"(shape {features.shape}, {len(meta['ids'])} ids); delete it and re-run")
        return list(meta["ids"]), features

    def load_layers(self, set_name: str, layers: Sequence[str]) -> tuple[list[str], dict[str, np.ndarray]]:
        """``(ids, {layer: features (N, D)})`` for every layer of one set, whose rows must name the same
        ids in the same order in every layer (else a one-line "re-run analyze" error)."""
        ids: list[str] | None = None
        features: dict[str, np.ndarray] = {}
        for layer in layers:
            layer_ids, features[layer] = self.load(set_name, layer)
            if ids is None:
                ids = layer_ids
            elif layer_ids != ids:
                raise NoveltyError(f"feature store rows differ between layers ({layer}); re-run `novelty analyze`")
        return ids or [], features

    def cached_rows(self, set_name: str, layer: str, params: dict) -> tuple[dict[str, int], np.ndarray | None]:
        """``({sha256: row}, features)`` of a stored entry made with exactly ``params`` and this store's
        dtype; ``({}, None)`` when absent or made otherwise (it will be rebuilt, not mixed)."""
        meta = self.meta(set_name, layer)
        if meta is None or meta.get("params") != params or meta.get("requested_dtype") != self.dtype:
            return {}, None
        try:
            _, features = self.load(set_name, layer)
        except (NoveltyError, OSError, ValueError):
            return {}, None
        shas = meta.get("sha256") or []
        if len(shas) != features.shape[0]:
            return {}, None
        return {sha: row for row, sha in enumerate(shas) if sha}, features

    def update(self, set_name: str, ids: Sequence[str], sha256s: Sequence[str], images: ImageRows,
               extractor, batch_size: int = defaults.EMBED_BATCH_SIZE, progress: bool = True) -> int:
        """Bring ``set_name`` up to date for every layer of ``extractor`` (a
        :class:`novelty.embed.features.Extractor`); returns how many images were embedded.

        images: uint8 ``(N, H, W, 3)``, row i = ``ids[i]`` with file hash ``sha256s[i]``: an array, or
        anything with ``len``, ``shape`` and ``images[rows]`` (an int64 index array) -> uint8 array, such
        as a folder decoded again on demand. Rows whose hash is stored with the same params are copied,
        the others read and embedded a batch at a time straight into the new files, so memory holds one
        batch of pixels and features whatever N is; an unchanged set is not rewritten at all.
        """
        if not (len(ids) == len(sha256s) == len(images)):
            raise NoveltyError(f"{len(ids)} ids, {len(sha256s)} hashes and {len(images)} images differ in number")
        layers = extractor.layers
        cached = {layer: self.cached_rows(set_name, layer, extractor.params(layer)) for layer in layers}
        missing = np.array([i for i, sha in enumerate(sha256s)
                            if any(sha not in cached[layer][0] for layer in layers)], np.int64)
        metas = [self.meta(set_name, layer) or {} for layer in layers]
        if missing.size == 0 and all(meta.get("ids") == list(ids) and meta.get("sha256") == list(sha256s)
                                     for meta in metas):
            return 0  # unchanged: nothing embedded, nothing rewritten
        present = np.setdiff1d(np.arange(len(ids)), missing)
        with contextlib.ExitStack() as stack:
            writers = {}
            for layer in layers:
                rows, old = cached[layer]
                dim = old.shape[1] if old is not None else extractor.feature_dim(layer, images.shape[1])
                writers[layer] = stack.enter_context(self.writer(
                    set_name, layer, ids, dim, extractor.params(layer), sha256s))
                source = np.array([rows[sha256s[i]] for i in present], np.int64)
                self._copy_rows(set_name, layer, source, present, writers[layer])
            done = 0
            for batch in extractor.embed_batches(LazyImages(missing, images.__getitem__), batch_size, progress,
                                                 desc=f"embedding {set_name}"):
                rows = missing[done:done + len(next(iter(batch.values())))]
                for layer, features in batch.items():
                    writers[layer].put(rows, features)
                done += len(rows)
        return int(missing.size)

    def _copy_rows(self, set_name: str, layer: str, source: np.ndarray, target: np.ndarray,
                   writer: _Writer) -> None:
        """Copy stored rows ``source`` of ``set_name``/``layer`` into ``writer``'s rows ``target``, a
        chunk at a time, each read through a fresh memory map (released after it: a chunk's pages
        leave the resident set, however large the store)."""
        for start in range(0, source.size, COPY_CHUNK):
            chunk = slice(start, start + COPY_CHUNK)
            order = np.argsort(source[chunk])  # read the memory map in file order
            _, old = self.load(set_name, layer)
            writer.put(target[chunk][order], np.array(old[source[chunk][order]]))
            del old

    def save(self, set_name: str, layer: str, ids: Sequence[str], features: np.ndarray, params: dict,
             sha256s: Sequence[str | None] | None = None) -> None:
        """Store ``features`` ``(N, D)`` (row i = ``ids[i]``) for ``set_name``/``layer`` in one go."""
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[0] != len(ids):
            raise NoveltyError(f"features must be (N, D) with N = {len(ids)} ids, received {features.shape}")
        with self.writer(set_name, layer, ids, features.shape[1], params, sha256s) as writer:
            writer.put(np.arange(len(ids)), features)

    @contextlib.contextmanager
    def writer(self, set_name: str, layer: str, ids: Sequence[str], dim: int, params: dict,
               sha256s: Sequence[str | None] | None = None) -> Iterator[_Writer]:
        """Write rows chunk by chunk (``writer.put(rows, values)``); committed atomically on exit."""
        meta_path = self._meta_path(set_name, layer)
        sha256s = list(sha256s) if sha256s is not None else [None] * len(ids)
        if len(sha256s) != len(ids):
            raise NoveltyError(f"{len(sha256s)} sha256 values for {len(ids)} ids")
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        writer = _Writer(meta_path.parent, layer, (len(ids), dim), self.dtype)
        try:
            yield writer
            data = writer.finish()
        except BaseException:
            writer.discard()
            raise
        write_json(meta_path, {"params": params, "requested_dtype": self.dtype, "dtype": writer.dtype,
                               "shape": [len(ids), dim], "data": data.name, "ids": list(ids),
                               "sha256": sha256s}, indent=None)
        for old in meta_path.parent.glob(f"{layer}-*.npy"):
            if old != data:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()


class _Writer:
    """A ``.npy`` of ``shape`` filled row by row with positioned writes (``os.pwrite``: the data goes
    through the page cache, never into this process's resident memory, as a writable memory map's
    dirty pages would); switches to float32 if float16 cannot hold a chunk."""

    def __init__(self, folder: Path, layer: str, shape: tuple[int, int], dtype: str):
        token = secrets.token_hex(4)
        self.path = folder / f"{layer}-{token}.npy"
        self.tmp = folder / f".{layer}-{token}.npy.tmp"
        self.shape = shape
        self.written = np.zeros(shape[0], bool)
        self.dtype, self.fd, self.offset = dtype, *self._create(self.tmp, dtype)

    def _create(self, path: Path, dtype: str) -> tuple[int, int]:
        """A zero-filled (sparse) ``.npy`` of ``self.shape`` at ``path``: its open descriptor and data offset."""
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                  "shape": self.shape}
        with open(path, "wb") as handle:
            np.lib.format.write_array_header_1_0(handle, header)
            offset = handle.tell()
            handle.truncate(offset + self.shape[0] * self.shape[1] * np.dtype(dtype).itemsize)
        return os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0)), offset

    def put(self, rows: np.ndarray, values: np.ndarray) -> None:
        """Write ``values`` ``(len(rows), D)`` into ``rows``."""
        rows = np.asarray(rows, np.int64)
        values = np.asarray(values)
        if values.shape != (len(rows), self.shape[1]):
            raise NoveltyError(f"expected a chunk of shape {(len(rows), self.shape[1])}, received {values.shape}")
        if self.dtype == "float16" and not fits_float16(values):
            self._upcast()
        order = np.argsort(rows, kind="stable")
        rows, values = rows[order], np.ascontiguousarray(values[order], self.dtype)
        row_bytes = self.shape[1] * values.itemsize
        starts = np.flatnonzero(np.diff(rows, prepend=-2) != 1)  # runs of consecutive rows: one write each
        for begin, end in zip(starts, [*starts[1:], len(rows)], strict=True):
            os.pwrite(self.fd, values[begin:end].tobytes(), self.offset + int(rows[begin]) * row_bytes)
        self.written[rows] = True

    def _upcast(self) -> None:
        wide_tmp = self.tmp.with_name(self.tmp.name + ".f32")
        fd, offset = self._create(wide_tmp, "float32")
        narrow, wide_row = np.dtype(self.dtype).itemsize * self.shape[1], 4 * self.shape[1]
        for start in range(0, self.shape[0], COPY_CHUNK):
            count = min(COPY_CHUNK, self.shape[0] - start)
            data = os.pread(self.fd, count * narrow, self.offset + start * narrow)
            wide = np.frombuffer(data, self.dtype).astype(np.float32)
            os.pwrite(fd, wide.tobytes(), offset + start * wide_row)
        os.close(self.fd)
        os.replace(wide_tmp, self.tmp)
        self.dtype, self.fd, self.offset = "float32", fd, offset

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def finish(self) -> Path:
        if not self.written.all():
            missing = int((~self.written).sum())
            raise NoveltyError(f"internal error: {missing} feature rows were never written")
        os.fsync(self.fd)
        self._close()
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self) -> None:
        self._close()
        for path in (self.tmp, self.tmp.with_name(self.tmp.name + ".f32")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
