"""A run's image files: found safely inside their folder, and thumbnailed for the web app and export."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from novelty.images.decode import ImageError, decode, to_png_bytes


def file_inside(folder: Path, relative: str) -> Path | None:
    """``folder / relative`` when it is an existing file that stays inside ``folder``."""
    if not relative or relative.startswith("/") or os.path.isabs(relative):
        return None
    try:
        base = folder.resolve()
        path = (base / relative).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path



def thumbnail_png(path: str | os.PathLike, size: int) -> bytes | None:
    """A PNG of the image at ``path`` whose longer side is ``size`` pixels, keeping its aspect.

    None when the image is already that small (serve the file itself) or cannot be decoded.
    """
    try:
        arr, info = decode(path)
    except ImageError:
        return None
    if max(info.original_size) <= size:
        return None
    thumb = Image.fromarray(arr)
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    return to_png_bytes(np.asarray(thumb))
