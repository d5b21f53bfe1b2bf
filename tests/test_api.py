"""The Python API (novelty.api) on a tiny planted run: random VGG16 weights, one planted copy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import planted_copy_folders

import novelty
from novelty.search.neighbors import load_neighbors

SIZE, N_TRAIN = 32, 60


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[novelty.Run, Path]:
    """A judged run: generated g_copy.png is training image t007.png, the others fresh noise."""
    root = tmp_path_factory.mktemp("api")
    train, gen = planted_copy_folders(root, N_TRAIN, SIZE)
    run = novelty.analyze(train, generated=gen, out=root / "run", weights="none", input_size=SIZE,
                          layers=("block5_pool",), k=24, progress=False)
    return run, root / "run"


def test_the_planted_copy_is_a_copy(planted):
    run, _ = planted
    samples = run.samples.set_index("id")
    assert len(samples) == 6 and samples.loc["g_copy.png", "verdict"] == "copy"
    assert samples.loc["g_copy.png", "is_copy"] == True  # noqa: E712 (a numpy bool)
    assert samples["is_copy"].dtype == bool and samples["copy_score"].dtype == np.float64
    assert (samples.drop(index="g_copy.png")["verdict"] != "copy").sum() >= 4
    assert len(run.training) == N_TRAIN and run.summary["copies"]["n"] == 6


def test_neighbors_match_the_neighbour_file(planted):
    run, folder = planted
    near = run.neighbors("g_copy.png")
    stored = load_neighbors(folder / "neighbors" / "block5_pool.json")["g_copy.png"]
    assert list(near.columns) == ["rank", "training_id", "score"] and len(near) == 24
    assert list(near["training_id"]) == [e["id"] for e in stored[:24]]
    assert np.allclose(near["score"], [e["score"] for e in stored[:24]])
    assert near["training_id"][0] == "t007.png" and near["rank"].tolist() == list(range(1, 25))


def test_show_draws_the_sample_beside_its_neighbours(planted):
    run, _ = planted
    grid = run.show("g_copy.png")
    png = grid._repr_png_()
    assert png.startswith(b"\x89PNG") and len(grid.cells) == 25
    assert grid.cells[1][0].name == "t007.png"
    assert "6 generated" in run._repr_html_()


def test_open_run_and_its_errors(planted, tmp_path):
    run, folder = planted
    again = novelty.open_run(folder)
    assert again.samples.equals(run.samples)
    with pytest.raises(novelty.NoveltyError, match="no generated sample"):
        again.neighbors("nope.png")
    with pytest.raises(novelty.NoveltyError, match="not searched"):
        again.neighbors("g0.png", layer="block1_pool")
    with pytest.raises(novelty.NoveltyError):
        novelty.open_run(tmp_path / "missing")
    with pytest.raises(novelty.NoveltyError, match="exactly one"):
        novelty.analyze(tmp_path, out=tmp_path / "r")


def test_importing_novelty_loads_neither_pandas_nor_tensorflow():
    code = ("import sys, novelty; novelty.NoveltyError; "
            "print('pandas' in sys.modules, 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_modes_of_a_set_too_small_are_off_with_a_reason(planted):
    run, _ = planted
    assert run.modes.empty and run.training["mode"].isna().all() and run.samples["mode"].isna().all()
    assert "modes off: modes need at least 80 training images; the set has 60" in run.summary["warnings"]


def test_more_like_ranks_the_other_training_images_as_the_cli_does(planted):
    run, path = planted
    from novelty.curate.morelike import more_like

    ranked = run.more_like(["t001.png", "t002.png"], not_ids=["t003.png"])
    assert list(ranked.columns) == ["id", "score", "rank"] and len(ranked) == N_TRAIN - 3
    assert not {"t001.png", "t002.png", "t003.png"} & set(ranked.id)
    assert ranked.to_dict("records") == more_like(path, ["t001.png", "t002.png"], ["t003.png"]).rows()
    assert list(ranked["rank"]) == list(range(1, N_TRAIN - 2)) and ranked.score.is_monotonic_decreasing
    assert len(run.more_like(["t001.png"], limit=5)) == 5
    with pytest.raises(novelty.NoveltyError, match="unknown training ids"):
        run.more_like(["nope.png"])
