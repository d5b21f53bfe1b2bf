"""What the verdicts read of a run folder besides its features: the neighbour lists, the images
(read again as the run fitted them), the mirrored features (embedded with the run's own extractor and
cached in its feature store) and the file hashes; :class:`RunSource` hands them to the pieces of
evidence (:meth:`novelty.judge.evidence.Evidence.from_run`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from novelty import __version__, defaults
from novelty.errors import NoveltyError
from novelty.files import sha256_file
from novelty.run.folder import RunFolder


class FolderReadError(NoveltyError):
    """A run's image could not be read again (moved, deleted or damaged since ``novelty analyze``)."""


@dataclass
class RunSource:
    """A run folder's inputs for the pieces of evidence: ``run.json`` (``manifest``), the layers, the ids
    of both sets, and the sha256 of each image file (``hashes["training"]``, ``hashes["generated"]``, ""
    where unknown)."""

    manifest: dict
    layers: list[str]
    training_ids: list[str]
    generated_ids: list[str]
    hashes: dict[str, list[str]]

    @property
    def input_size(self) -> int:
        """The size the run fitted its images to."""
        return int(self.manifest.get("input_size") or defaults.INPUT_SIZE)

    def reader(self) -> Callable[[str, Sequence[str], int], np.ndarray]:
        """:func:`folder_reader` of the run (raises :class:`FolderReadError` when its folders are gone)."""
        return folder_reader(self.manifest)


def neighbours_from_file(run: RunFolder, layer: str, generated_ids: Sequence[str],
                          training_index: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """``neighbors/<layer>.json`` as index arrays, or None when absent or out of step with the features."""
    from novelty.search.neighbors import load_neighbors

    if not run.neighbors(layer).is_file():
        return None
    table = load_neighbors(run.neighbors(layer))
    try:
        lists = [table[g] for g in generated_ids]
        width = len(lists[0])
        if width == 0 or any(len(entries) != width for entries in lists):
            return None
        idx = np.array([[training_index[e["id"]] for e in entries] for entries in lists], np.int64)
    except (KeyError, IndexError):
        return None
    sims = np.array([[e["score"] for e in entries] for entries in lists], np.float64)
    return idx, sims


def build_extractor(manifest: dict, layers: Sequence[str]):
    """The extractor a run's features were made with, rebuilt from ``run.json``."""
    from novelty.embed.features import Extractor

    weights = manifest.get("weights") or {}
    return Extractor(weights=weights.get("requested", defaults.WEIGHTS),
                     preprocess=manifest.get("preprocess", defaults.PREPROCESS),
                     input_size=manifest.get("input_size", defaults.INPUT_SIZE), layers=layers,
                     block1_reduce=(manifest.get("features") or {}).get("block1_reduce", defaults.BLOCK1_REDUCE),
                     seed=int(weights.get("seed", manifest.get("seed", defaults.SEED))),
                     fit_mode=manifest.get("fit", defaults.FIT_MODE))


def mirror_search(manifest: dict, store, layers: Sequence[str], training_ids: Sequence[str],
                  generated_ids: Sequence[str], extractor, progress: bool):
    """(generated mirrored features, training mirrored function) for :func:`novelty.judge.assess.assess`:
    the run's images flipped left-right, embedded with the run's own extractor and cached in its feature store (sets
    ``<set>_mirrored``, keyed by file content like the plain ones). Raises NoveltyError when that cannot
    be done faithfully (images moved, other extractor settings)."""
    from novelty.embed.features import MirroredExtractor

    size = int(manifest.get("input_size") or defaults.INPUT_SIZE)
    read = folder_reader(manifest)
    if extractor is None:
        extractor = build_extractor(manifest, layers)
    hashes = {}
    for set_name in ("training", "generated"):
        metas = [store.meta(set_name, layer) or {} for layer in layers]
        for layer, meta in zip(layers, metas, strict=True):
            if meta.get("params") != extractor.params(layer):
                raise NoveltyError(f"the {set_name} {layer} features were made with other extractor settings")
        hashes[set_name] = dict(zip(metas[0].get("ids") or [], metas[0].get("sha256") or [], strict=False))
    mirror = MirroredExtractor(extractor)

    def embed_flipped(set_name: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
        mirror_set = f"{set_name}_mirrored"
        shas = [hashes[set_name].get(ident) or "" for ident in ids]

        def cached() -> list[tuple[dict[str, int], np.ndarray | None]]:
            return [store.cached_rows(mirror_set, layer, mirror.params(layer)) for layer in layers]

        found = cached()
        if not all(sha and sha in rows for rows, _ in found for sha in shas):
            store.update(mirror_set, list(ids), shas, read(set_name, ids, size), mirror, progress=progress)
            found = cached()
        return {layer: np.asarray(feats[[rows[sha] for sha in shas]], np.float32)
                for layer, (rows, feats) in zip(layers, found, strict=True)}

    return (embed_flipped("generated", generated_ids),
            lambda indices: embed_flipped("training", [training_ids[i] for i in indices]))


def folder_reader(manifest: dict) -> Callable[[str, Sequence[str], int], np.ndarray]:
    """``read(set_name, ids, size)``: a run's "training" or "generated" images by id, fitted as the run
    fitted them to ``size`` px, RGB uint8 ``(len(ids), size, size, 3)``. Raises NoveltyError when the
    folders are gone or an image cannot be read again."""
    from novelty.images.decode import ImageError, load

    fit_mode = manifest.get("fit", defaults.FIT_MODE)
    folders = {"training": manifest.get("train_dir"), "generated": manifest.get("generated_dir")}
    if not all(folders.values()) or not all(Path(f).is_dir() for f in folders.values()):
        raise FolderReadError(f"image folders not found ({folders['training']}, {folders['generated']})")
    prepared: dict[int, dict[str, np.ndarray]] = {}  # size -> id -> image of a prepared training set

    def read(set_name: str, ids: Sequence[str], size: int) -> np.ndarray:
        if set_name == "training" and manifest.get("train_prepared"):  # the pixels analyze embedded
            if size not in prepared:
                from novelty.images.records import load_prepared

                try:
                    loaded = load_prepared(manifest["train_prepared"], size, fit_mode)
                except NoveltyError as exc:
                    raise FolderReadError(f"cannot re-read the prepared training images: {exc}") from None
                prepared[size] = dict(zip((e["id"] for e in loaded.entries), loaded.images, strict=True))
            try:
                return np.stack([prepared[size][ident] for ident in ids])
            except KeyError as exc:
                raise FolderReadError(f"{manifest['train_prepared']} no longer holds training image {exc}") from None
        try:
            return np.stack([load(Path(folders[set_name]) / ident, size, fit_mode) for ident in ids])
        except (ImageError, OSError) as exc:
            raise FolderReadError(f"cannot re-read a {set_name} image: {exc}") from None

    return read


def file_hashes(store, set_name: str, layer: str, ids: Sequence[str]) -> list[str]:
    """The sha256 of each image file of a set, as its feature rows recorded them ("" where unknown)."""
    meta = store.meta(set_name, layer) or {}
    known = dict(zip(meta.get("ids") or [], meta.get("sha256") or [], strict=False))
    return [known.get(ident) or "" for ident in ids]


def cache_key(run: RunFolder, manifest: dict, store, layers: Sequence[str], settings: dict, extractor,
              version: int) -> str:
    """What the verdict files of a run depend on, hashed: the feature rows (ids, file hashes, data file
    and extractor settings of every set and layer), the neighbour lists, the image folders, the
    settings and the code's version (``version``: that of the verdict format). The same key means :func:`novelty.judge.verdicts.judge_run` would write the same files."""
    features = {}
    for set_name in ("training", "generated"):
        for layer in layers:
            meta = store.meta(set_name, layer) or {}
            features[f"{set_name}/{layer}"] = [meta.get(key) for key in ("params", "data", "ids", "sha256")]
    neighbours = {layer: sha256_file(run.neighbors(layer)) if run.neighbors(layer).is_file() else None
                  for layer in layers}
    parts = {"novelty": __version__, "format": version, "settings": settings, "features": features,
             "neighbors": neighbours, "folders": [manifest.get("train_dir"), manifest.get("generated_dir")],
             "extractor": None if extractor is None else [extractor.params(layer) for layer in layers]}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
