"""Pixel-level flags of single training images.

Pixel flags, on the image reduced to at most 64 px (each score in [0, 1], higher = worse, flagged at
``QUALITY_THRESHOLDS``):

- ``near_blank``: ``1 - (largest 1st-to-99th percentile range over R, G, B) / 255``; flagged at 0.95
  (all pixels within about 13 levels);
- ``very_dark``: ``1 - (99th percentile of luminance) / 255``; flagged at 0.75 (even the brightest
  pixels below 64);
- ``low_information``: ``1 - (entropy of the 256-level luminance histogram) / 8 bits``; flagged at
  0.75 (2 bits or less: a few flat colours);
- ``odd_aspect_ratio``: ``1 - short side / long side`` of the original file; flagged at 0.5 (2:1 or
  longer: the centre crop used for training keeps half of it or less).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from novelty import defaults
from novelty.errors import NoveltyError
from novelty.images.decode import ImageError, decode

THUMBNAIL = 64  # pixel flags are computed on images reduced to at most this many pixels a side


@dataclass(frozen=True)
class PixelScores:
    near_blank: float
    very_dark: float
    low_information: float


def pixel_scores(image: np.ndarray) -> PixelScores:
    """Scores of an RGB uint8 ``(H, W, 3)`` image (ideally small); each in [0, 1], higher = worse."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.size == 0:
        raise NoveltyError(f"expected an RGB image (H, W, 3), received shape {arr.shape}")
    pixels = arr.reshape(-1, 3).astype(np.float64)
    spread = np.percentile(pixels, 99, axis=0) - np.percentile(pixels, 1, axis=0)
    luminance = pixels @ np.array([0.299, 0.587, 0.114])
    hist = np.bincount(np.clip(np.rint(luminance), 0, 255).astype(np.int64), minlength=256) / len(luminance)
    hist = hist[hist > 0]
    entropy = float(-(hist * np.log2(hist)).sum())
    return PixelScores(
        near_blank=float(1.0 - spread.max() / 255.0),
        very_dark=float(1.0 - np.percentile(luminance, 99) / 255.0),
        low_information=float(max(0.0, 1.0 - entropy / 8.0)),
    )


def aspect_ratio_score(width: int, height: int) -> float:
    """``1 - short side / long side``: 0 for a square, 0.5 for 2:1."""
    if width < 1 or height < 1:
        raise NoveltyError(f"image size must be positive, received {width}x{height}")
    return 1.0 - min(width, height) / max(width, height)


def thumbnail(path: str | os.PathLike, size: int = THUMBNAIL) -> tuple[np.ndarray, tuple[int, int]]:
    """A file decoded to RGB uint8 at most ``size`` px a side, and its original (width, height).

    JPEGs are decoded at reduced scale (Pillow's draft mode), so large photos cost little.
    Raises :class:`novelty.images.decode.ImageError` with a reason for unreadable files.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            original = img.size
            if img.format == "JPEG":
                img.draft("RGB", (size, size))
                img.thumbnail((size, size))
                small = np.asarray(img.convert("RGB"), dtype=np.uint8)
                return small, original
    except Exception:
        pass  # anything unusual goes through the careful decoder below
    arr, info = decode(path)
    img = Image.fromarray(arr)
    img.thumbnail((size, size))
    small = np.asarray(img, dtype=np.uint8)
    if small.ndim != 3:
        raise ImageError(f"unexpected decoded shape {small.shape}")
    return small, info.original_size


QUALITY_FLAGS: tuple[str, ...] = ("near_blank", "very_dark", "low_information", "odd_aspect_ratio")


def quality_flags(scores: Mapping[str, float], thresholds: Mapping[str, float] = defaults.QUALITY_THRESHOLDS
                  ) -> dict[str, bool]:
    """``{flag: score >= threshold}`` for every flag of ``QUALITY_FLAGS`` present in ``scores``."""
    return {name: bool(scores[name] >= thresholds[name]) for name in QUALITY_FLAGS if name in scores}
