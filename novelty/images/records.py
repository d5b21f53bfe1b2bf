"""TFRecord shards: ``novelty prepare`` decodes a folder once, training streams the result back.

A prepared folder::

    OUT/
      train-00000-of-00003.tfrecord   tf.train.Example records: "image" (raw uint8 bytes, HWC order),
      ...                             "height", "width", "channels" (int64), "id" (UTF-8 bytes)
      manifest.json                   size, fit, count, shards, and per image: id, source sha256,
                                      original width/height, source mode, shard
      skipped.csv                     id,reason for every file left out

A folder of pairs (:mod:`novelty.images.pairs`) holds the pair's target as "image" and its input as
"input" (same shape), so everything that reads a prepared folder's images reads the targets; its
manifest adds "pairs" (the layout and the direction).

Shards are written under hidden temporary names and renamed only once all are complete, and the
manifest is written last, so an interrupted prepare never leaves a half shard under a final name
nor a manifest that names a shard that is not there. TensorFlow is imported inside the functions.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from novelty import bounds, defaults
from novelty.errors import NoveltyError
from novelty.files import read_json, write_json, write_text
from novelty.images.decode import check_fit, find_images, iter_folder
from novelty.images.shardfiles import (
    ShardWriter as _ShardWriter,  # tests reach the writer by this name
)
from novelty.images.shardfiles import remove_dead_temps

MANIFEST_FILE = "manifest.json"
SKIPPED_FILE = "skipped.csv"
FORMAT = "novelty-shards"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class PrepareResult:
    """What ``prepare`` wrote: ``written`` images in ``shards`` under ``out``, ``skipped`` files left out."""

    out: Path
    written: int
    skipped: int
    shards: tuple[str, ...]

    def summary(self) -> str:
        plural = "" if len(self.shards) == 1 else "s"
        return (f"Wrote {self.written} images in {len(self.shards)} shard{plural} to {self.out}, "
                f"skipped {self.skipped} (reasons in {self.out / SKIPPED_FILE})")


def encode_example(image: np.ndarray, ident: str, input_image: np.ndarray | None = None) -> bytes:
    """One uint8 ``(H, W, 3)`` image and its id as a serialised ``tf.train.Example``; a pair's
    ``input_image`` (same shape) goes beside it as "input", ``image`` being the pair's target."""
    import tensorflow as tf

    for arr in (image,) if input_image is None else (image, input_image):
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape != image.shape or arr.shape[2] != 3:
            raise NoveltyError(f"expected a uint8 (H, W, 3) image, received {arr.dtype} {arr.shape}")
    height, width, channels = image.shape

    def ints(value: int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    def raw(value: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    features = {
        "image": raw(np.ascontiguousarray(image).tobytes()),  # C order = row-major HWC
        "height": ints(height),
        "width": ints(width),
        "channels": ints(channels),
        "id": raw(ident.encode("utf-8")),
    }
    if input_image is not None:
        features["input"] = raw(np.ascontiguousarray(input_image).tobytes())
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def prepare(images: str | os.PathLike, out: str | os.PathLike, size: int = defaults.IMAGE_SIZE,
            fit_mode: str = defaults.FIT_MODE, shard_size: int = defaults.SHARD_SIZE, *,
            max_pixels: int | None = None, progress: bool = True) -> PrepareResult:
    """Decode every file under ``images``, fit it to ``size`` and write TFRecord shards to ``out``.

    Bad files never stop the run: each is listed in ``skipped.csv`` with its reason. Raises
    :class:`NoveltyError` for a missing, non-folder or empty ``images``, an unusable ``out``, or when
    no file at all could be used. Re-running into the same ``out`` replaces the previous shards.
    """
    images = Path(images)
    check_fit(size, fit_mode)
    bounds.check("shard_size", shard_size, "shard size")
    if not find_images(images):
        raise NoveltyError(f"no files found in image folder: {images}")

    def records():
        for ident, _path, arr, info, reason, digest in iter_folder(images, size, fit_mode, progress,
                                                                   desc="preparing", max_pixels=max_pixels):
            if arr is None:
                yield ident, None, reason
                continue
            width, height = info.original_size
            yield ident, encode_example(arr, ident), {"id": ident, "sha256": digest, "width": width,
                                                      "height": height, "mode": info.mode}

    return write_prepared(images, out, records(), shard_size, {"size": size, "fit": fit_mode})


def write_prepared(source: Path, out: str | os.PathLike, records, shard_size: int, fields: dict) -> PrepareResult:
    """Write ``records`` (``(id, serialised example, manifest entry)``, or ``(id, None, reason)`` for a
    file left out) as shards into ``out``, with ``skipped.csv`` and a manifest holding ``fields``.

    The one writer of prepared folders, for single images and for pairs alike.
    """
    out = Path(out)
    _check_out(source, out)
    with _writing(out):
        out.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(out)

    writer = _ShardWriter(out, shard_size)
    entries: list[dict] = []
    skipped: list[tuple[str, str]] = []
    try:
        for ident, record, entry in records:
            if record is None:
                skipped.append((ident, entry))
                continue
            entries.append({**entry, "shard": _write_record(writer, record, out)})
        with _writing(out):
            write_text(out / SKIPPED_FILE, skipped_csv(skipped))
        if not entries:
            raise NoveltyError(f"no usable images in {source}: all {len(skipped)} files skipped "
                               f"(reasons in {out / SKIPPED_FILE})")
        previous = _previous_shards(out)
        # No manifest while shards change names: a crash here leaves a folder that is plainly unfinished.
        with _writing(out):
            (out / MANIFEST_FILE).unlink(missing_ok=True)
            names = writer.finish()
    except BaseException:
        writer.abort()
        raise
    for entry in entries:
        entry["shard"] = names[entry["shard"]]
    with _writing(out):
        write_json(out / MANIFEST_FILE, _manifest(source, fields, shard_size, names, writer.counts, entries,
                                                  skipped))
    for stale in sorted(set(previous) - set(names)):
        with contextlib.suppress(OSError):
            (out / stale).unlink()
    return PrepareResult(out, len(entries), len(skipped), tuple(names))


def _manifest(images: Path, fields: dict, shard_size: int, names: list[str],
              counts: list[int], entries: list[dict], skipped: list[tuple[str, str]]) -> dict:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": str(images.resolve()),
        **fields,
        "layout": "HWC",
        "dtype": "uint8",
        "channels": 3,
        "count": len(entries),
        "skipped": len(skipped),
        "shard_size": shard_size,
        "shards": names,
        "shard_counts": counts,
        "images": entries,
    }


@contextlib.contextmanager
def _writing(out: Path):
    """Turn a failed write (disk full, read-only folder) into a one-line NoveltyError."""
    try:
        yield
    except OSError as exc:
        raise NoveltyError(f"cannot write to {out}: {exc.strerror or exc}") from None


def _write_record(writer: _ShardWriter, record: bytes, out: Path) -> int:
    try:
        return writer.write(record)
    except Exception as exc:  # TensorFlow raises its own error types for a full or read-only disk
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NoveltyError(f"cannot write shards to {out}: {message}") from None


def skipped_csv(skipped: list[tuple[str, str]]) -> str:
    buffer = io.StringIO()
    table = csv.writer(buffer, lineterminator="\n")
    table.writerow(["id", "reason"])
    table.writerows(skipped)
    return buffer.getvalue()


def _check_out(images: Path, out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise NoveltyError(f"--out must be a folder, received a file: {out}")
    source, target = images.resolve(), out.resolve()
    if target == source or source in target.parents:
        raise NoveltyError(f"--out must be outside the image folder {images}, received: {out}")
    manifest = out / MANIFEST_FILE
    if manifest.exists() and not _is_ours(manifest):
        raise NoveltyError(f"{manifest} exists and was not written by `novelty prepare`; "
                           "choose another --out")


def _is_ours(manifest: Path) -> bool:
    try:
        return read_json(manifest).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def is_prepared(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds a manifest written by :func:`prepare` (its shards may be missing)."""
    return _is_ours(Path(folder) / MANIFEST_FILE)


def _previous_shards(out: Path) -> list[str]:
    """Shard names listed by an earlier prepare in ``out`` (only files we wrote are ever removed)."""
    manifest = out / MANIFEST_FILE
    if not manifest.exists() or not _is_ours(manifest):
        return []
    shards = read_json(manifest).get("shards", [])
    return [name for name in shards if isinstance(name, str) and name == Path(name).name
            and name.startswith("train-") and name.endswith(".tfrecord")]


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of a prepared folder, checked: NoveltyError if absent, unreadable or incomplete."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NoveltyError(f"shard folder not found: {folder}")
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise NoveltyError(f"no {MANIFEST_FILE} in {folder}: not a folder written by `novelty prepare`")
    try:
        manifest = read_json(path)
    except (OSError, ValueError) as exc:
        raise NoveltyError(f"cannot read {path}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise NoveltyError(f"{path} is not a `novelty prepare` manifest (format {FORMAT!r} expected)")
    missing = [key for key in ("size", "count", "shards") if key not in manifest]
    if missing:
        raise NoveltyError(f"{path} lacks {', '.join(missing)}: run `novelty prepare` again")
    return manifest


def read_shards(folder: str | os.PathLike, size: int, *, with_ids: bool = False,
                deterministic: bool = True, pairs: bool = False):
    """Stream a prepared folder: an unbatched tf.data dataset of uint8 ``(size, size, 3)`` images.

    Returns ``(dataset, description)``. Shards are read in parallel (interleaved); with
    ``deterministic`` the order is the same on every run. ``with_ids`` yields ``(id, image)`` pairs;
    ``pairs`` yields ``(input, target)`` (``(id, input, target)`` with ids) from a folder of pairs.
    Raises :class:`NoveltyError` when the shards were prepared at another size or a shard is missing.
    """
    import tensorflow as tf

    folder = Path(folder)
    manifest = read_manifest(folder)
    prepared = manifest["size"]
    if prepared != size:
        raise NoveltyError(
            f"shards in {folder} hold {prepared}x{prepared} images, requested size {size}: "
            f"use --size {prepared}, or run `novelty prepare` again with --size {size}"
        )
    if pairs and not isinstance(manifest.get("pairs"), dict):
        raise NoveltyError(f"{folder} holds single images, not pairs: run `novelty prepare --pairs "
                           "side-by-side` (or `--pairs folders`) on the pair folder")
    paths = [folder / name for name in manifest["shards"]]
    absent = [path.name for path in paths if not path.is_file()]
    if absent or not paths:
        raise NoveltyError(f"shard {absent[0] if absent else '(none listed)'} missing from {folder}: "
                           "run `novelty prepare` again")

    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "height": tf.io.FixedLenFeature([], tf.int64),
        "width": tf.io.FixedLenFeature([], tf.int64),
        "channels": tf.io.FixedLenFeature([], tf.int64),
        "id": tf.io.FixedLenFeature([], tf.string),
    }
    if pairs:
        spec["input"] = tf.io.FixedLenFeature([], tf.string)

    def parse(serialized):
        example = tf.io.parse_single_example(serialized, spec)
        shape = tf.stack([example["height"], example["width"], example["channels"]])
        image = tf.reshape(tf.io.decode_raw(example["image"], tf.uint8), shape)
        image = tf.ensure_shape(image, (size, size, 3))
        if pairs:
            source = tf.reshape(tf.io.decode_raw(example["input"], tf.uint8), tf.shape(image))
            return (example["id"], source, image) if with_ids else (source, image)
        return (example["id"], image) if with_ids else image

    files = tf.data.Dataset.from_tensor_slices([str(path) for path in paths])
    dataset = files.interleave(tf.data.TFRecordDataset, cycle_length=min(len(paths), 8),
                               num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    dataset = dataset.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    plural = "" if len(paths) == 1 else "s"
    noun = "pairs" if pairs else "images"
    description = (f"{manifest['count']} {noun} from {len(paths)} shard{plural} in {folder} "
                   f"({prepared}x{prepared}, fit {manifest.get('fit', '?')})")
    return dataset, description


@dataclass
class PreparedImages:
    """A prepared folder read back into memory for ``novelty analyze``: ``images`` is ``(N, size, size, 3)``
    uint8, row i the image of ``entries[i]`` (the manifest's id, source sha256, original width, height
    and mode), in the manifest's order; ``skipped`` the (id, reason) of every file prepare left out."""

    manifest: dict
    entries: list[dict]
    images: np.ndarray
    skipped: list[tuple[str, str]]

    @property
    def source(self) -> Path | None:
        """The image folder the shards were prepared from, as the manifest records it (its files carry the ids)."""
        source = self.manifest.get("source")
        return Path(source) if isinstance(source, str) and source else None


def load_prepared(folder: str | os.PathLike, size: int, fit_mode: str = defaults.FIT_MODE) -> PreparedImages:
    """Every image of a prepared folder, ids from its manifest and pixels decoded from its shards, fitted
    to ``size`` (``fit_mode`` decides only when the shards hold another size). NoveltyError when the
    manifest or a shard is unusable or the shards lack an image the manifest lists."""
    from novelty.images.decode import fit

    check_fit(size, fit_mode)
    folder = Path(folder)
    manifest = read_manifest(folder)
    entries = manifest_entries(manifest)
    dataset, _ = read_shards(folder, manifest["size"], with_ids=True)
    wanted = {entry["id"] for entry in entries}
    pixels = {}
    for ident, image in dataset.as_numpy_iterator():
        ident = ident.decode("utf-8")
        if ident in wanted:
            pixels[ident] = image if manifest["size"] == size else fit(image, size, fit_mode)
    absent = [entry["id"] for entry in entries if entry["id"] not in pixels]
    if absent or not entries:
        raise NoveltyError(f"the shards in {folder} lack {len(absent)} of the {len(entries)} images its manifest "
                           f"lists{f' (first: {absent[0]})' if absent else ''}: run `novelty prepare` again")
    images = np.stack([pixels[entry["id"]] for entry in entries])
    return PreparedImages(manifest, entries, images, read_skipped(folder))


def manifest_entries(manifest: dict) -> list[dict]:
    """The image entries of a prepared folder's manifest (id, source sha256, width, height, mode, shard)."""
    return [entry for entry in manifest.get("images") or [] if isinstance(entry, dict) and entry.get("id")]


def read_skipped(folder: str | os.PathLike) -> list[tuple[str, str]]:
    """``(id, reason)`` of every file ``novelty prepare`` left out of ``folder`` (none if unreadable)."""
    skipped = []
    with contextlib.suppress(OSError, csv.Error):
        with open(Path(folder) / SKIPPED_FILE, newline="", encoding="utf-8") as handle:
            skipped = [(row["id"], row.get("reason") or "") for row in csv.DictReader(handle) if row.get("id")]
    return skipped
