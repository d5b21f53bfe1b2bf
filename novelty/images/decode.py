"""Images in: find files, decode them safely to RGB uint8 HWC arrays, fit them to a square size.

Every decode problem becomes an :class:`ImageError` carrying a one-line reason, so callers can skip
the file and report it instead of stopping halfway. Arrays are always ``(height, width, 3)`` uint8:
the 2018 project lost weeks to images written channel-first.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from novelty import defaults
from novelty.errors import NoveltyError
from novelty.files import NotRegularFile, atomic_open, open_regular, sha256_stream


class ImageError(NoveltyError):
    """A file that cannot be used as an image; ``str(error)`` is the reason for the report."""


@dataclass(frozen=True)
class ImageInfo:
    """What we learnt about a source file while decoding it."""

    original_size: tuple[int, int]  # (width, height) after EXIF orientation
    mode: str  # Pillow mode of the source
    frames: int  # > 1 for animated images; the first frame is used
    format: str | None = None  # the format Pillow recognised from the content (e.g. "PNG")


def find_images(root: str | os.PathLike) -> list[Path]:
    """All non-hidden files under ``root``, recursively, in a stable (sorted) order.

    Every file is a candidate: decoding decides, so a mislabelled image (a PNG named ``.jpg``, a
    JPEG without extension) is still used, and a non-image is reported with its reason. Symlinks
    to folders are listed too (they are not followed), so that they get a reason of their own.
    """
    root = Path(root)
    if not root.exists():
        raise NoveltyError(f"image folder not found: {root}")
    if not root.is_dir():
        raise NoveltyError(f"expected a folder of images, received a file: {root}")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        links = {d for d in dirnames if os.path.islink(os.path.join(dirpath, d))}
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in links)
        for name in sorted(filenames + list(links)):
            if not name.startswith("."):
                found.append(Path(dirpath) / name)
    return found


def image_id(path: Path, root: Path) -> str:
    """The stable human id of an image: its path relative to the folder, with forward slashes."""
    return path.relative_to(root).as_posix()


def _to_rgb(img: Image.Image, source_format: str | None = None) -> Image.Image:
    """Any Pillow mode to RGB: alpha composited on white, 16-bit and float scaled, CMYK converted.

    16-bit images map 0..65535 linearly onto 0..255 (never clipped, never treated as 8-bit because
    a dark image happens to stay below 256). Transparent pixels, including palette and colour-key
    transparency, become white.
    """
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(img).astype(np.float64)
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        if mode.startswith("I;16") or (mode == "I" and source_format == "PNG"):
            top = 65535.0  # PNG has no 32-bit mode: "I" from a PNG is 16-bit (older Pillow)
        elif mode == "I":
            peak = arr.max(initial=0)
            top = 255.0 if peak <= 255 else 65535.0 if peak <= 65535 else peak
        else:
            top = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        arr = np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, defaults.PAD_COLOR + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "RGB":
        return img
    return img.convert("RGB")


def _orient(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; an unreadable EXIF block leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(img) or img
    except Exception:  # a corrupt EXIF block should not cost the user a good image
        return img


def _open_source(data: bytes | str | os.PathLike | BinaryIO) -> contextlib.AbstractContextManager[BinaryIO]:
    """A binary stream over a path, bytes or an open file (left open); ImageError for a path that
    is not a regular file, and for unreadable or empty files."""
    if isinstance(data, (str, os.PathLike)):
        try:
            handle = open_regular(data)
            empty = os.fstat(handle.fileno()).st_size == 0
        except NotRegularFile as exc:
            raise ImageError(exc.strerror) from None
        except OSError as exc:
            raise ImageError(f"cannot read file: {exc.strerror or exc}") from None
        if empty:
            handle.close()
            raise ImageError("empty file (0 bytes)")
        return handle
    if isinstance(data, (bytes, bytearray, memoryview)):
        if not data:
            raise ImageError("empty file (0 bytes)")
        return io.BytesIO(data)
    start = data.tell()
    if not data.read(1):
        raise ImageError("empty file (0 bytes)")
    data.seek(start)
    return contextlib.nullcontext(data)


def decode(data: bytes | str | os.PathLike | BinaryIO, *, max_pixels: int | None = None
           ) -> tuple[np.ndarray, ImageInfo]:
    """Decode a file (path, bytes or a seekable binary file, read from where it stands) to an RGB uint8 ``(H, W, 3)`` array at its own size.

    The content decides the format (a PNG named ``.jpg`` is fine); the first frame of an animation
    is used; the EXIF orientation is applied. Raises :class:`ImageError` with a one-line reason for
    empty, truncated, non-image or oversized files, and for paths that are not regular files (pipes,
    devices, sockets, folders, symlink loops, dangling symlinks; never opened). Oversized means more than ``max_pixels`` pixels
    (default ``defaults.MAX_IMAGE_PIXELS``, read at call time), checked from the header before any
    pixel is decoded.
    """
    limit = defaults.MAX_IMAGE_PIXELS if max_pixels is None else int(max_pixels)
    with _open_source(data) as stream, warnings.catch_warnings():
        # Our own pixel limit below replaces Pillow's warning; other decoder warnings are noise here.
        warnings.simplefilter("ignore")
        try:
            img = Image.open(stream)
        except Image.DecompressionBombError as exc:
            raise ImageError(f"too large to decode safely: {_reason(exc)}") from None
        except UnidentifiedImageError:
            raise ImageError("not a readable image: unknown or unsupported format") from None
        except Exception as exc:  # Pillow raises many types for junk input
            raise ImageError(f"not a readable image: {_reason(exc)}") from None
        with img:
            width, height = img.size
            if width < 1 or height < 1:
                raise ImageError(f"degenerate size {width}x{height}")
            if width * height > limit:
                raise ImageError(
                    f"too large: {width}x{height} = {width * height:,} pixels, limit {limit:,}"
                )
            source_format = img.format
            try:
                frames = int(getattr(img, "n_frames", 1))
                img.seek(0)
                img.load()
            except Exception as exc:
                raise ImageError(f"corrupt or truncated image data: {_reason(exc)}") from None
            mode = img.mode
            oriented = _orient(img)
            try:
                rgb = _to_rgb(oriented, source_format)
                arr = np.asarray(rgb, dtype=np.uint8)
            except Exception as exc:
                raise ImageError(f"cannot convert colour mode {mode} to RGB: {_reason(exc)}") from None
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(f"unexpected decoded shape {arr.shape}")
    info = ImageInfo(original_size=(arr.shape[1], arr.shape[0]), mode=mode, frames=frames,
                     format=source_format)
    return np.ascontiguousarray(arr), info


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message (or its type), short enough for a CSV cell."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def fit(arr: np.ndarray, size: int, mode: str = defaults.FIT_MODE) -> np.ndarray:
    """Fit an RGB uint8 ``(H, W, 3)`` array into a ``(size, size, 3)`` square.

    ``crop``: scale the shorter side to ``size``, then take the centre. ``pad``: scale the longer side
    to ``size``, then pad with white around the centre. Downscaling uses Lanczos filtering.
    """
    check_fit(size, mode)
    height, width = arr.shape[:2]
    if (height, width) == (size, size):
        return arr
    img = Image.fromarray(arr)
    scale = size / (min(width, height) if mode == "crop" else max(width, height))
    new_w = max(1, round(width * scale))
    new_h = max(1, round(height * scale))
    img = img.resize((new_w, new_h), Image.Resampling.LANCZOS)
    if mode == "crop":
        left = (new_w - size) // 2
        top = (new_h - size) // 2
        img = img.crop((left, top, left + size, top + size))
    else:
        canvas = Image.new("RGB", (size, size), defaults.PAD_COLOR)
        canvas.paste(img, ((size - new_w) // 2, (size - new_h) // 2))
        img = canvas
    return np.asarray(img, dtype=np.uint8)


def load(path: str | os.PathLike, size: int, mode: str = defaults.FIT_MODE) -> np.ndarray:
    """Decode one file and fit it: the ``(size, size, 3)`` uint8 array, or :class:`ImageError`."""
    arr, _ = decode(path)
    return fit(arr, size, mode)


def to_png_bytes(arr: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(arr: np.ndarray, path: str | os.PathLike) -> None:
    """Write an RGB uint8 ``(H, W, 3)`` array as PNG, atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(to_png_bytes(arr))


def grid(images: Iterable[np.ndarray] | np.ndarray, columns: int | None = None,
         gap: int = 2) -> np.ndarray:
    """Tile ``(N, H, W, 3)`` uint8 images into one image, row by row, with white gaps."""
    batch = np.asarray(list(images) if not isinstance(images, np.ndarray) else images)
    if batch.ndim != 4 or batch.shape[-1] != 3 or len(batch) == 0:
        raise NoveltyError(f"grid needs a non-empty (N, H, W, 3) batch, received shape {batch.shape}")
    n, h, w, _ = batch.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    out = np.full((rows * h + (rows + 1) * gap, columns * w + (columns + 1) * gap, 3), 255, np.uint8)
    for i, image in enumerate(batch):
        r, c = divmod(i, columns)
        y, x = gap + r * (h + gap), gap + c * (w + gap)
        out[y:y + h, x:x + w] = image
    return out


@dataclass
class LoadedImages:
    """A folder decoded into memory: ``images`` is ``(N, size, size, 3)`` uint8, ``ids`` its N ids."""

    images: np.ndarray
    ids: list[str]
    skipped: list[tuple[str, str]]  # (id, reason) for every file left out


def check_fit(size: int, mode: str) -> None:
    """Raise :class:`NoveltyError` unless ``mode`` is a known fit mode and ``size`` is positive."""
    if mode not in defaults.FIT_MODES:
        raise NoveltyError(f"unknown fit mode {mode!r}; must be one of: {', '.join(defaults.FIT_MODES)}")
    if size < 1:
        raise NoveltyError(f"image size must be positive, received: {size}")


def _unencodable_name(ident: str) -> str | None:
    """The id with undecodable bytes escaped (``\\xff``) when the file name is not valid UTF-8."""
    try:
        ident.encode("utf-8")
    except UnicodeEncodeError:
        return ident.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return None


class FolderFile(NamedTuple):
    """One file of an image folder as :func:`iter_folder` read it."""

    id: str
    path: Path
    image: np.ndarray | None  # (size, size, 3) uint8, None when skipped
    info: ImageInfo | None
    reason: str | None  # why it was skipped, None when used
    sha256: str  # of the file's bytes; "" when it could not be read (a pipe, a device, a loop)


def iter_folder(root: str | os.PathLike, size: int, mode: str = defaults.FIT_MODE,
                progress: bool = True, desc: str = "decoding", *, max_pixels: int | None = None
                ) -> Iterator[FolderFile]:
    """Yield a :class:`FolderFile` for every file under ``root``: the one reader of image folders.

    Never raises for a bad file: its image is None and ``reason`` says why. Each file is opened once
    and read twice, bounded by its size: for its sha256, then to decode it. Anything that is not a
    regular file or a symlink to one (a named pipe, socket or device, a symlink loop or a dangling
    symlink, a symlink to a folder) is skipped with its reason before it is opened, so nothing can
    hang on it. A file whose name is not valid UTF-8 is skipped (its id could not be written to a
    report); its id is shown escaped. Raises :class:`NoveltyError` only for a bad ``root``, ``size``
    or ``mode``.
    """
    from tqdm.auto import tqdm

    check_fit(size, mode)
    root = Path(root)
    for path in tqdm(find_images(root), desc=desc, unit="img", disable=not progress, file=None):
        yield read_file(path, root, size, mode, max_pixels=max_pixels)


def read_file(path: Path, root: Path, size: int, mode: str = defaults.FIT_MODE, *,
              max_pixels: int | None = None) -> FolderFile:
    """One file of an image folder as :func:`iter_folder` reads it (its id relative to ``root``): never
    raises for a bad file. What a worker of a distributed embedding calls on each file it is given."""
    ident = image_id(path, root)
    escaped = _unencodable_name(ident)
    if escaped is not None:
        return FolderFile(escaped, path, None, None, "file name is not valid UTF-8; rename the file", "")
    arr, info, reason, sha = read_source(path, max_pixels=max_pixels)
    if arr is None:
        return FolderFile(ident, path, None, None, reason, sha)
    try:
        fitted = fit(arr, size, mode)
    except Exception as exc:  # never stop a folder halfway for one file
        return FolderFile(ident, path, None, None, f"unexpected error: {type(exc).__name__}: {_reason(exc)}", sha)
    return FolderFile(ident, path, fitted, info, None, sha)


def read_source(path: Path, *, max_pixels: int | None = None
                ) -> tuple[np.ndarray | None, ImageInfo | None, str | None, str]:
    """``(image, info, None, sha256)`` for a usable file at its own size, ``(None, None, reason, sha256)``
    for any other: the one place a file of a folder is opened, hashed and decoded, never raising
    (:func:`read_file` fits it; a pair folder splits or matches it first).

    The file is opened once and read twice, bounded by its size: for its sha256 ("" when it could
    not be read), then to decode it; anything that is not a regular file is refused before opening.
    """
    sha = ""
    try:
        with open_regular(path) as handle:
            sha = sha256_stream(handle, os.fstat(handle.fileno()).st_size)
            handle.seek(0)
            arr, info = decode(handle, max_pixels=max_pixels)
    except NotRegularFile as exc:
        return None, None, exc.strerror, sha
    except OSError as exc:
        return None, None, f"cannot read file: {exc.strerror or exc}", sha
    except ImageError as exc:
        return None, None, str(exc), sha
    except Exception as exc:  # never stop a folder halfway for one file
        return None, None, f"unexpected error: {type(exc).__name__}: {_reason(exc)}", sha
    return arr, info, None, sha


def load_folder(root: str | os.PathLike, size: int, mode: str = defaults.FIT_MODE,
                progress: bool = True) -> LoadedImages:
    """Decode every usable image under ``root`` to ``(N, size, size, 3)`` uint8, skipping bad files."""
    arrays, ids, skipped = [], [], []
    for ident, _path, arr, _info, reason, _sha in iter_folder(root, size, mode, progress):
        if arr is None:
            skipped.append((ident, reason))
        else:
            arrays.append(arr)
            ids.append(ident)
    if not arrays:
        if not skipped:
            raise NoveltyError(f"no files found in image folder: {root}")
        raise NoveltyError(f"no usable images in {root}: all {len(skipped)} files skipped "
                           f"(first: {skipped[0][0]}: {skipped[0][1]})")
    return LoadedImages(np.stack(arrays), ids, skipped)
