"""Image sets: a folder (or a ``novelty prepare`` output) scanned into ids, content hashes and a
``files.csv`` row per file, its pixels read a batch at a time when they are embedded.

:func:`scan_set` decodes every file once for its row (a bad file becomes a ``skipped`` row with its
reason) and keeps no pixels: :class:`FolderPixels` decodes a row again when asked for, so memory stays
flat as a set grows. :func:`prepared_set` reads prepare's manifest and shards instead. ``novelty
analyze``, the Beam runner, the validation harness and the junk check all read their images here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from novelty import defaults
from novelty.errors import NoveltyError
from novelty.files import open_regular
from novelty.images.decode import FolderFile, ImageError, decode, fit, iter_folder


@dataclass
class ImageSet:
    """One scanned folder: its usable images (``(N, size, size, 3)`` uint8: an array, or a
    :class:`FolderPixels` read a batch at a time) and a files.csv row per file."""

    name: str
    root: Path
    ids: list[str]
    sha256: list[str]
    images: np.ndarray | FolderPixels
    rows: list[dict] = field(default_factory=list)
    prepared: bool = False  # read from a `novelty prepare` output (manifest + shards) rather than decoded
    source: Path | None = None  # prepared: the image folder the shards came from, as the manifest says

    @property
    def files_dir(self) -> Path:
        """The folder whose files carry the ids (thumbnails, pixel flags, curation): ``root``, or for a
        prepared set its source folder while that exists."""
        return self.source if self.prepared and self.source and self.source.is_dir() else self.root

    @property
    def skipped(self) -> int:
        return sum(row["status"] == "skipped" for row in self.rows)


class FolderPixels:
    """The used images of a scanned folder, decoded again when asked for: ``pixels[rows]`` -> uint8
    ``(len(rows), size, size, 3)``, exactly what :func:`novelty.images.decode.iter_folder` gave for
    them. What :func:`scan_set` hands the feature store, so a set's pixels are never all in memory at
    once and cached images are not decoded a second time. A file whose bytes changed since the scan is
    a :class:`NoveltyError`, never features of other pixels under its old hash."""

    def __init__(self, root: Path, ids: Sequence[str], sha256: Sequence[str], size: int, fit_mode: str):
        self.root, self.ids, self.sha256, self.size, self.fit_mode = root, list(ids), list(sha256), size, fit_mode

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return len(self.ids), self.size, self.size, 3

    def __getitem__(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), self.size, self.size, 3), np.uint8)
        for slot, row in enumerate(rows):
            out[slot] = self._load(int(row))
        return out

    def _load(self, row: int) -> np.ndarray:
        ident = self.ids[row]
        try:
            with open_regular(self.root / ident) as handle:
                data = handle.read()
            if hashlib.sha256(data).hexdigest() != self.sha256[row]:
                raise NoveltyError(f"{ident} changed while it was being analysed; run again")
            return fit(decode(data)[0], self.size, self.fit_mode)
        except (OSError, ImageError) as exc:
            raise NoveltyError(f"{ident} could no longer be read while it was being analysed "
                               f"({exc}); run again") from None


def scan_set(name: str, root: Path, size: int, fit_mode: str = defaults.FIT_MODE,
             progress: bool = True, keep_pixels: bool = False) -> ImageSet:
    """Decode and fit every file under ``root`` for its files.csv row (bad files become ``skipped``
    rows with a reason), keeping no pixels: ``images`` is a :class:`FolderPixels` that decodes a row
    again when it is embedded (``keep_pixels``: the ``(N, size, size, 3)`` array instead). A ``novelty
    prepare`` output (manifest + shards) is read as it was prepared: :func:`prepared_set`."""
    from novelty.images.pipeline import is_shard_folder

    if is_shard_folder(root):
        return prepared_set(name, Path(root), size, fit_mode)
    ids, hashes, arrays, rows = [], [], [], []
    for item in iter_folder(root, size, fit_mode, progress, desc=f"decoding {name}"):
        rows.append(file_row(name, item))
        if item.image is not None:
            ids.append(item.id)
            hashes.append(item.sha256)
            if keep_pixels:
                arrays.append(item.image)
    if not ids:
        raise NoveltyError(f"no usable {name} images in {root} ({len(rows)} files, all skipped)")
    images = np.stack(arrays) if keep_pixels else FolderPixels(Path(root), ids, hashes, size, fit_mode)
    return ImageSet(name, Path(root), ids, hashes, images, rows)


def file_row(name: str, item: FolderFile) -> dict:
    """The files.csv row of one file of set ``name`` as :func:`novelty.images.decode.read_file` read it."""
    row = {"set": name, "id": item.id, "sha256": item.sha256, "width": "", "height": "", "mode": "",
           "status": "used", "reason": ""}
    if item.image is None:
        row.update(status="skipped", reason=item.reason)
    else:
        row.update(width=item.info.original_size[0], height=item.info.original_size[1], mode=item.info.mode)
    return row


def decode_set(name: str, root: Path, size: int, fit_mode: str = defaults.FIT_MODE,
               progress: bool = True) -> ImageSet:
    """:func:`scan_set` keeping every decoded image in memory (``images``: ``(N, size, size, 3)``
    uint8), for callers that index the pixels themselves."""
    return scan_set(name, root, size, fit_mode, progress, keep_pixels=True)


def prepared_set(name: str, root: Path, size: int, fit_mode: str = defaults.FIT_MODE) -> ImageSet:
    """A ``novelty prepare`` output as an image set: ids, source sha256 and original sizes from its
    manifest, pixels from its shards (:func:`novelty.images.records.load_prepared`), the files prepare skipped
    as ``skipped`` rows. Features are cached under the source file's sha256 when the shards hold what
    decoding the source would give (same size and fit), else under a hash of both."""
    from novelty.images.records import load_prepared

    loaded = load_prepared(root, size, fit_mode)
    used, keys, skipped = prepared_rows(name, loaded.manifest, loaded.entries, loaded.skipped, size, fit_mode)
    return ImageSet(name, root, [row["id"] for row in used], keys, loaded.images, used + skipped,
                    prepared=True, source=loaded.source)


def prepared_rows(name: str, manifest: dict, entries: Sequence[dict], skipped: Sequence[tuple[str, str]],
                  size: int, fit_mode: str) -> tuple[list[dict], list[str], list[dict]]:
    """``(used rows, cache keys, skipped rows)`` of a prepared set: the files.csv rows of its manifest's
    ``entries`` and of the ``(id, reason)`` files prepare skipped, and each used image's feature-cache
    key (the source sha256 when the shards hold ``size``/``fit_mode``, else a hash of both)."""
    prepared_as = (manifest["size"], manifest.get("fit"))
    used = [{"set": name, "id": entry["id"], "sha256": entry.get("sha256", ""), "width": entry.get("width", ""),
             "height": entry.get("height", ""), "mode": entry.get("mode", ""), "status": "used", "reason": ""}
            for entry in entries]
    keys = [row["sha256"] if prepared_as == (size, fit_mode) else
            hashlib.sha256(f"prepared {prepared_as} {row['sha256']}".encode()).hexdigest() for row in used]
    skipped_rows = [{"set": name, "id": ident, "sha256": "", "width": "", "height": "", "mode": "",
                     "status": "skipped", "reason": f"skipped by novelty prepare: {reason}"} for ident, reason in skipped]
    return used, keys, skipped_rows
