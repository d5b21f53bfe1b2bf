"""The embedded sets: `python -m novelty.images.assets NAME` prints a folder of real images."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from novelty.images import assets

SHARED_MASKS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "masks" / "train"


def test_masks_folder_holds_the_2018_thumbnails_with_their_licence():
    folder = assets.masks_folder()
    files = sorted(folder.iterdir())
    assert len(files) == assets.MASKS_COUNT
    assert all(f.suffix == ".jpg" and f.stem.isdigit() for f in files)
    with Image.open(files[0]) as image:
        assert image.size == (64, 64) and image.mode == "RGB"
    licence = (folder.parent / "LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in licence and "Victor D" in licence


@pytest.mark.integration
def test_masks_are_byte_identical_to_the_shared_originals():
    if not SHARED_MASKS.is_dir():
        pytest.skip(f"../shared/datasets/masks is absent ({SHARED_MASKS})")
    ours = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in assets.masks_folder().iterdir()}
    theirs = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in SHARED_MASKS.iterdir()}
    assert ours == theirs


@pytest.mark.parametrize("name", ["masks", "twemoji"])
def test_the_command_prints_an_existing_folder(name):
    done = subprocess.run([sys.executable, "-m", "novelty.images.assets", name], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_dir()


def test_an_unknown_set_gets_the_usage_line():
    done = subprocess.run([sys.executable, "-m", "novelty.images.assets", "faces"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == ("usage: python -m novelty.images.assets masks|twemoji|twemoji-edges  "
                                  "(twemoji-edges also take --out DIR)")
