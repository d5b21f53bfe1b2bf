"""Feature shards: what a distributed embedding (:mod:`novelty.embed.beam`) writes, and how the driver
reads them back into the run's feature store.

A shard folder holds any number of shards, each written by one worker for one bundle of images::

    <token>.json            {"keys": [...], "layers": [...]}: row i's feature-cache key (the image's sha256)
    <token>.<layer>.npy     float32 (n, D) features of that layer, row i = keys[i]

The ``.npy`` files are written first under temporary names and renamed, and the ``.json`` last, so
a shard without its ``.json`` is unfinished (a retried bundle) and is never read. Shards are read
through memory maps, a batch of rows at a time: the driver's memory holds one batch whatever N is.

:class:`ShardFeatures` is the "embedding runner" side of the feature store's interface: it has an
extractor's ``layers``, ``params``, ``feature_dim`` and ``embed_batches``, but serves features the
pipeline computed instead of running VGG16, so :meth:`FeatureStore.update
<novelty.embed.featurestore.FeatureStore.update>` fills the store exactly as for in-process embedding.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from novelty import defaults
from novelty.embed.features import LazyImages
from novelty.errors import NoveltyError
from novelty.files import atomic_open, read_json, write_json

SHARD_ROWS = 512  # images per shard at most: a worker's buffer of features


def write_shard(folder: str | os.PathLike, keys: Sequence[str], features: Mapping[str, np.ndarray]) -> Path:
    """Write one shard of ``keys`` and their ``{layer: (len(keys), D)}`` features; returns its ``.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    for layer, values in features.items():
        values = np.ascontiguousarray(values, np.float32)
        if values.ndim != 2 or len(values) != len(keys):
            raise NoveltyError(f"a shard of {len(keys)} keys received {layer} features of shape {values.shape}")
        with atomic_open(folder / f"{token}.{layer}.npy", "wb") as handle:
            np.save(handle, values, allow_pickle=False)
    path = folder / f"{token}.json"
    write_json(path, {"keys": list(keys), "layers": list(features)}, indent=None)
    return path


def shard_rows(folder: str | os.PathLike, seen: set[str]) -> int:
    """Rows of the finished shards in ``folder`` not in ``seen`` (their names, updated): a running count."""
    count = 0
    for meta in Path(folder).glob("*.json"):
        if meta.name not in seen:
            try:
                count += len(read_json(meta)["keys"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # another process is writing it: counted on the next look
            seen.add(meta.name)
    return count


class ShardIndex:
    """Every finished shard of a folder: where each key's features are, read by key."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.where: dict[str, tuple[str, int]] = {}
        self.layers: set[str] | None = None
        for meta in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            shard = read_json(meta)
            layers = set(shard["layers"])
            if self.layers is not None and layers != self.layers:
                raise NoveltyError(f"shards in {self.folder} hold different layers: {sorted(layers)} "
                                   f"and {sorted(self.layers)}")
            self.layers = layers
            for row, key in enumerate(shard["keys"]):
                self.where.setdefault(key, (meta.stem, row))  # a key twice (duplicate files): one row is enough

    def __len__(self) -> int:
        return len(self.where)

    def __contains__(self, key: str) -> bool:
        return key in self.where

    def read(self, keys: Sequence[str], layers: Sequence[str]) -> dict[str, np.ndarray]:
        """``{layer: float32 (len(keys), D)}`` for ``keys``; NoveltyError for a key no shard holds."""
        absent = [key for key in keys if key not in self.where]
        if absent:
            raise NoveltyError(f"{len(absent)} images were not embedded by the pipeline (first key: "
                               f"{absent[0]}): did a file change while it ran, or do the shards of `novelty prepare` lack it? Run `novelty embed` again")
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for slot, key in enumerate(keys):
            shard, row = self.where[key]
            by_shard.setdefault(shard, []).append((slot, row))
        out: dict[str, np.ndarray] = {}
        for layer in layers:
            for shard, pairs in by_shard.items():
                data = np.load(self.folder / f"{shard}.{layer}.npy", mmap_mode="r", allow_pickle=False)
                slots, rows = (np.array(part, np.int64) for part in zip(*pairs, strict=True))
                if layer not in out:
                    out[layer] = np.empty((len(keys), data.shape[1]), np.float32)
                out[layer][slots] = data[rows]
                del data
        return out


class KeyRows:
    """The rows of an image set as the feature store reads them, by key instead of by pixels:
    ``rows[i]`` is the cache key of row i. ``shape`` is what the pixels would be, ``(N, size, size, 3)``."""

    def __init__(self, keys: Sequence[str], size: int):
        self.keys = np.asarray(list(keys), dtype=object)
        self.shape = (len(self.keys), size, size, 3)

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, rows) -> np.ndarray:
        return self.keys[rows]


class ShardFeatures:
    """Features computed elsewhere, served to :meth:`FeatureStore.update` as an extractor would embed
    them: ``extractor`` (a :class:`novelty.embed.features.Extractor`, never run) gives the layers,
    cache params and dimensions, ``index`` the features by key (the store reads :class:`KeyRows`)."""

    embedded = 0  # nothing is embedded here: ``served`` counts the rows read from shards

    def __init__(self, extractor, index: ShardIndex):
        self.extractor = extractor
        self.index = index
        self.layers = extractor.layers
        self.served = 0

    def params(self, layer: str) -> dict:
        return self.extractor.params(layer)

    def feature_dim(self, layer: str, image_size: int | None = None) -> int:
        return self.extractor.feature_dim(layer, image_size)

    def embed_batches(self, images: LazyImages, batch_size: int = defaults.EMBED_BATCH_SIZE,
                      progress: bool = True, desc: str = "storing") -> Iterator[dict[str, np.ndarray]]:
        """``{layer: float32 (b, D)}`` for consecutive batches of ``images`` (rows of :class:`KeyRows`)."""
        from tqdm.auto import tqdm

        with tqdm(total=len(images), desc=desc.replace("embedding", "storing"), unit="img",
                  disable=not progress) as bar:
            for start in range(0, len(images), batch_size):
                keys = list(images[start:start + batch_size])
                batch = self.index.read(keys, self.layers)
                self.served += len(keys)
                bar.update(len(keys))
                yield batch
