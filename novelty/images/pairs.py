"""Paired images for pix2pix: side-by-side ``A|B`` files, or folders ``A/`` and ``B/`` matched by name.

Two layouts (:data:`PAIR_LAYOUTS`):

- ``side-by-side``: every file under the folder holds a pair, half ``A`` on the left and half ``B``
  on the right (the pix2pix datasets' convention); a file of odd width has no two equal halves.
- ``folders``: the folder holds ``A/`` and ``B/``; ``A/x/y.jpg`` pairs with ``B/x/y.<any extension>``
  (the path without its extension is the key); the pair's id is its path under ``A/``.

``direction`` (:data:`DIRECTIONS`) says which half is the generator's input: ``AtoB`` (A in, B out)
or ``BtoA``. Each half is fitted to the square size on its own, as a single image is. Bad pairs never
stop a folder: an unreadable half, a half without its partner, halves of different sizes or an odd
side-by-side width each give the pair's id and a reason (``skipped.csv`` in a prepared folder).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from novelty import bounds, defaults
from novelty.errors import NoveltyError
from novelty.images.decode import check_fit, find_images, fit, image_id, read_source

PAIR_LAYOUTS: tuple[str, ...] = ("side-by-side", "folders")
DIRECTIONS: tuple[str, ...] = ("AtoB", "BtoA")


class PairFile(NamedTuple):
    """One pair of a pair folder: fitted ``input`` and ``target`` (None with a ``reason`` when skipped)."""

    id: str
    input: np.ndarray | None
    target: np.ndarray | None
    reason: str | None
    entry: dict  # what a manifest records of it: source sha256 and size per half


def detect_layout(root: str | os.PathLike) -> str:
    """``folders`` when ``root`` holds both ``A/`` and ``B/``, else ``side-by-side``."""
    root = Path(root)
    return "folders" if (root / "A").is_dir() and (root / "B").is_dir() else "side-by-side"


def check_pairing(layout: str, direction: str) -> None:
    """Raise :class:`NoveltyError` for an unknown layout or direction."""
    if layout not in PAIR_LAYOUTS:
        raise NoveltyError(f"unknown pair layout {layout!r}; must be one of: {', '.join(PAIR_LAYOUTS)}")
    if direction not in DIRECTIONS:
        raise NoveltyError(f"unknown direction {direction!r}; must be one of: {', '.join(DIRECTIONS)}")


def iter_pairs(root: str | os.PathLike, layout: str, size: int, fit_mode: str = defaults.FIT_MODE,
               direction: str = defaults.PAIR_DIRECTION, *, progress: bool = True,
               max_pixels: int | None = None) -> Iterator[PairFile]:
    """Yield a :class:`PairFile` for every pair (or lone half) under ``root``, in a stable order.

    Never raises for a bad file; raises :class:`NoveltyError` for a bad ``root``, ``layout``,
    ``direction``, ``size`` or ``fit_mode``, or a ``folders`` root without ``A/`` and ``B/``.
    """
    from tqdm.auto import tqdm

    check_pairing(layout, direction)
    check_fit(size, fit_mode)
    root = Path(root)
    units = _folder_units(root) if layout == "folders" else _side_by_side_units(root)
    for ident, halves in tqdm(units, desc="pairs", unit="pair", disable=not progress, file=None):
        yield _pair(ident, halves, size, fit_mode, direction, max_pixels)


def _side_by_side_units(root: Path) -> list[tuple[str, tuple]]:
    return [(image_id(path, root), (path,)) for path in find_images(root)]


def _folder_units(root: Path) -> list[tuple[str, tuple]]:
    """``(id, (A path, B path))`` per key, a path None where that side lacks it, a str where it is ambiguous."""
    sides = []
    for name in ("A", "B"):
        if not (root / name).is_dir():
            raise NoveltyError(f"a pair folder of layout 'folders' needs A/ and B/ inside it; {root / name} "
                               "is not a folder (use --pairs side-by-side for A|B images)")
        by_key: dict[str, Path | str] = {}
        for path in find_images(root / name):
            key = image_id(path.with_suffix(""), root / name)
            by_key[key] = (f"{name}/ holds several files named {key}.*" if key in by_key else path)
        sides.append(by_key)
    a_side, b_side = sides
    units = []
    for key in sorted(set(a_side) | set(b_side)):
        a, b = a_side.get(key), b_side.get(key)
        if isinstance(a, Path):
            ident = image_id(a, root / "A") if b is not None else f"A/{image_id(a, root / 'A')}"
        elif isinstance(b, Path) and a is None:
            ident = f"B/{image_id(b, root / 'B')}"
        else:  # several files share the key
            ident = f"{'A' if a is not None else 'B'}/{key}"
        units.append((ident, (a, b)))
    return units


def _pair(ident: str, halves: tuple, size: int, fit_mode: str, direction: str,
          max_pixels: int | None) -> PairFile:
    """Decode, split or match, check and fit one pair."""
    if len(halves) == 1:  # side by side
        arr, _, reason, sha = read_source(halves[0], max_pixels=max_pixels)
        if arr is None:
            return PairFile(ident, None, None, reason, {})
        height, width = arr.shape[:2]
        if width % 2:
            return PairFile(ident, None, None, f"odd width {width}: a side-by-side pair needs two halves of "
                                               "equal width", {})
        a, b = arr[:, : width // 2], arr[:, width // 2:]
        entry = {"sha256": sha, "width": width, "height": height}
    else:
        for name, half, other in (("A", halves[0], "B"), ("B", halves[1], "A")):
            if isinstance(half, str):
                return PairFile(ident, None, None, half, {})
            if half is None:
                return PairFile(ident, None, None, f"no file in {name}/ matches it: unpaired in {other}/", {})
        found = []
        for name, half in zip("AB", halves, strict=True):
            arr, _, reason, sha = read_source(half, max_pixels=max_pixels)
            if arr is None:
                return PairFile(ident, None, None, f"{name}: {reason}", {})
            found.append((arr, sha))
        (a, sha_a), (b, sha_b) = found
        if a.shape != b.shape:
            return PairFile(ident, None, None, f"halves of different sizes: A is {a.shape[1]}x{a.shape[0]}, "
                                               f"B is {b.shape[1]}x{b.shape[0]}", {})
        entry = {"sha256": sha_a, "sha256_b": sha_b, "width": a.shape[1], "height": a.shape[0]}
    source, target = (a, b) if direction == "AtoB" else (b, a)
    try:
        return PairFile(ident, fit(np.ascontiguousarray(source), size, fit_mode),
                        fit(np.ascontiguousarray(target), size, fit_mode), None, entry)
    except Exception as exc:  # never stop a folder halfway for one pair
        return PairFile(ident, None, None, f"unexpected error: {type(exc).__name__}: {exc}", {})


@dataclass
class LoadedPairs:
    """A pair folder decoded into memory: ``inputs`` and ``targets`` ``(N, size, size, 3)`` uint8."""

    inputs: np.ndarray
    targets: np.ndarray
    ids: list[str]
    skipped: list[tuple[str, str]]  # (id, reason) for every pair left out


def load_pairs(root: str | os.PathLike, layout: str, size: int, fit_mode: str = defaults.FIT_MODE,
               direction: str = defaults.PAIR_DIRECTION, *, progress: bool = True) -> LoadedPairs:
    """Every usable pair under ``root`` in memory; NoveltyError when there is none."""
    inputs, targets, ids, skipped = [], [], [], []
    for pair in iter_pairs(root, layout, size, fit_mode, direction, progress=progress):
        if pair.input is None:
            skipped.append((pair.id, pair.reason))
        else:
            inputs.append(pair.input)
            targets.append(pair.target)
            ids.append(pair.id)
    if not ids:
        if not skipped:
            raise NoveltyError(f"no files found in pair folder: {root}")
        raise NoveltyError(f"no usable pairs in {root}: all {len(skipped)} skipped "
                           f"(first: {skipped[0][0]}: {skipped[0][1]})")
    return LoadedPairs(np.stack(inputs), np.stack(targets), ids, skipped)


def prepare_pairs(root: str | os.PathLike, out: str | os.PathLike, layout: str, size: int = defaults.IMAGE_SIZE,
                  fit_mode: str = defaults.FIT_MODE, direction: str = defaults.PAIR_DIRECTION,
                  shard_size: int = defaults.SHARD_SIZE, *, progress: bool = True):
    """``novelty prepare --pairs``: write the pairs under ``root`` as TFRecord shards into ``out``.

    Each record holds the target as "image" and the input as "input"; the manifest's "pairs" says
    the layout and the direction. Returns a :class:`~novelty.images.records.PrepareResult`.
    """
    from novelty.images.records import encode_example, write_prepared

    root = Path(root)
    check_pairing(layout, direction)
    check_fit(size, fit_mode)
    bounds.check("shard_size", shard_size, "shard size")
    if not root.is_dir():
        raise NoveltyError(f"pair folder not found: {root}" if not root.exists()
                           else f"expected a folder of pairs, received a file: {root}")

    def records():
        for pair in iter_pairs(root, layout, size, fit_mode, direction, progress=progress):
            if pair.input is None:
                yield pair.id, None, pair.reason
            else:
                yield pair.id, encode_example(pair.target, pair.id, pair.input), {"id": pair.id, **pair.entry}

    fields = {"size": size, "fit": fit_mode, "pairs": {"layout": layout, "direction": direction}}
    return write_prepared(root, out, records(), shard_size, fields)


def pair_dataset(source: str | os.PathLike, size: int, fit_mode: str = defaults.FIT_MODE,
                 layout: str | None = None, direction: str = defaults.PAIR_DIRECTION, *, progress: bool = True):
    """Pairs to train on, from a prepared folder of pairs or a pair folder: ``(dataset, ids, description)``.

    ``dataset`` is an unbatched tf.data dataset of ``(id, input, target)``; ``ids`` every pair's id in
    its order. A pair folder's ``layout`` is found from its content when None.
    """
    import tensorflow as tf

    from novelty.images.pipeline import is_shard_folder

    source = Path(source)
    if is_shard_folder(source):
        from novelty.images.records import read_manifest, read_shards

        dataset, description = read_shards(source, size, with_ids=True, pairs=True)
        ids = [str(entry["id"]) for entry in read_manifest(source).get("images") or []]
        return dataset, ids, description
    layout = layout or detect_layout(source)
    loaded = load_pairs(source, layout, size, fit_mode, direction, progress=progress)
    note = f", {len(loaded.skipped)} skipped" if loaded.skipped else ""
    dataset = tf.data.Dataset.from_tensor_slices((loaded.ids, loaded.inputs, loaded.targets))
    return dataset, loaded.ids, f"{len(loaded.ids)} pairs ({layout}, {direction}) from {source}{note}"


def holdout_ids(ids: list[str], fraction: float, seed: int) -> list[str]:
    """The pairs kept aside for judging: ``round(fraction * N)`` ids (at least one when ``fraction`` > 0
    and at least one pair is left to train on), drawn by ``seed`` from the sorted ids, sorted.

    A pure function of the id set, ``fraction`` and ``seed``, so a resumed run holds out the same pairs.
    """
    bounds.check("pair_holdout", fraction, "holdout")
    ordered = sorted(set(ids))
    count = min(max(round(fraction * len(ordered)), 1 if fraction > 0 else 0), len(ordered) - 1)
    if count <= 0:
        return []
    chosen = np.random.default_rng(seed).permutation(len(ordered))[:count]
    return sorted(ordered[i] for i in chosen)


def without_ids(dataset, held: list[str]):
    """``(id, input, target)`` elements whose id is not in ``held``, as ``(input, target)``."""
    import tensorflow as tf

    if held:
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(held), tf.ones(len(held), tf.int64)), default_value=0)
        dataset = dataset.filter(lambda ident, _input, _target: table.lookup(ident) == 0)
    return dataset.map(lambda _ident, source, target: (source, target))
