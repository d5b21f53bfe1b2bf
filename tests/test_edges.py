"""The embedded pix2pix pairs: edge maps made in code from Twemoji (novelty.images.edges)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from novelty.errors import NoveltyError
from novelty.images import assets, edges
from novelty.images.decode import decode, fit
from novelty.images.pairs import load_pairs

# three base emoji and one skin-tone variant of the real set
SUBSET = ("1f600.png", "1f408.png", "1f1eb-1f1f7.png", "1f44d-1f3fd.png")


@pytest.fixture
def twemoji_subset(tmp_path) -> Path:
    folder = tmp_path / "twemoji"
    folder.mkdir()
    for name in SUBSET:
        shutil.copy(assets.twemoji_folder() / name, folder / name)
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_edge_map_draws_the_outline_of_a_planted_square_black_on_white():
    image = np.full((64, 64, 3), 255, np.uint8)
    image[16:48, 16:48] = (200, 30, 30)
    out = edges.edge_map(image)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert set(np.unique(out)) == {0, 255} and (out == out[..., :1]).all()  # grey lines, black on white
    black = out[..., 0] == 0
    assert black[16, 20:44].all() and black[20:44, 16].all()  # the square's top and left sides
    assert not black[24:40, 24:40].any() and not black[:10].any()  # inside and far outside stay white


def test_an_edge_between_colours_of_equal_brightness_is_kept():
    image = np.zeros((64, 64, 3), np.uint8)
    image[:, :32] = (255, 0, 0)
    image[:, 32:] = (0, 0, 255)  # one channel each: a grey conversion would see almost nothing here
    assert (edges.edge_map(image)[8:56, 31:33, 0] == 0).any(axis=1).all()


def test_pairs_are_deterministic_and_read_by_the_pair_loader(twemoji_subset, tmp_path):
    records = [edges.write_edge_pairs(twemoji_subset, tmp_path / name, 64, edges.is_base_emoji, progress=False)
               for name in ("one", "two")]
    assert records[0] == records[1]
    assert records[0]["pairs"] == 3 and [s["id"] for s in records[0]["skipped"]] == ["broken.png"]
    assert digests(tmp_path / "one") == digests(tmp_path / "two")
    loaded = load_pairs(tmp_path / "one", "folders", 64, progress=False)
    assert loaded.ids == ["1f1eb-1f1f7.png", "1f408.png", "1f600.png"] and not loaded.skipped  # no skin tone
    for ident, source, target in zip(loaded.ids, loaded.inputs, loaded.targets, strict=True):
        expected = fit(decode(twemoji_subset / ident)[0], 64)
        np.testing.assert_array_equal(target, expected)
        np.testing.assert_array_equal(source, edges.edge_map(expected))
        assert 0.02 < (source[..., 0] == 0).mean() < 0.6  # an emoji has edges, not a black square
    assert edges.pair_count(tmp_path / "one") == 3


def test_a_folder_with_files_is_never_written_into(twemoji_subset, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    with pytest.raises(NoveltyError, match="not an empty folder"):
        edges.write_edge_pairs(twemoji_subset, tmp_path / "mine", 64, progress=False)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["keep.txt"]


def test_the_set_is_written_once_into_the_cache_and_reused(twemoji_subset, tmp_path, monkeypatch):
    monkeypatch.setenv("NOVELTY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(assets, "twemoji_folder", lambda: twemoji_subset)
    folder = edges.twemoji_edges_folder(progress=False)
    assert folder.parent == tmp_path / "cache" and edges.pair_count(folder) == 3
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    assert edges.twemoji_edges_folder(progress=False) == folder
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no staging folder left behind
    (folder / edges.DONE).unlink()
    with pytest.raises(NoveltyError, match="without pairs.json"):
        edges.twemoji_edges_folder(progress=False)


def test_the_command_refuses_an_out_folder_with_files(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    done = subprocess.run([sys.executable, "-m", "novelty.images.assets", "twemoji-edges", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.startswith("Error: ") and "not an empty folder" in done.stderr


@pytest.mark.slow
def test_the_command_writes_all_base_emoji_into_out(tmp_path):
    done = subprocess.run([sys.executable, "-m", "novelty.images.assets", "twemoji-edges", "--out",
                           str(tmp_path / "pairs")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == tmp_path / "pairs"
    assert edges.pair_count(tmp_path / "pairs") == 1949
    assert len(list((tmp_path / "pairs" / "A").iterdir())) == len(list((tmp_path / "pairs" / "B").iterdir())) == 1949
