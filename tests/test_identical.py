"""Identical copies are copies whatever the held-out set's size (issue 15 item 1); a generated folder
that is, or overlaps, the training folder is said so (item 2); a set too small for the rate says so."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image
from test_verdicts import _pixel_run

from novelty.cli import main
from novelty.judge.identical import (
    MIRRORED_PIXELS,
    SAME_FILE,
    SAME_PIXELS,
    identical_matches,
    training_overlap,
)
from novelty.judge.verdicts import judge_run


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_identical_matches_finds_same_and_mirrored_pixels_and_nothing_else():
    rng = np.random.default_rng(0)
    training = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    nearly = training[2].copy()
    nearly[0, 0, 0] ^= 1  # one grey level off in one pixel: not identical
    generated = np.stack([training[1], training[4][:, ::-1], nearly, training[5]])
    candidates = np.array([[0, 1], [4, -1], [2, 3], [0, 1]])  # the last: its source is not a candidate
    read = []

    def images(indices):
        read.append(list(indices))
        return training[indices]

    found, kind = identical_matches(generated, candidates, images)
    assert found.tolist() == [1, 4, -1, -1] and kind == [SAME_PIXELS, MIRRORED_PIXELS, "", ""]
    assert read == [[0, 1, 2, 3, 4]]  # each candidate read once
    # file hashes alone, without pixels: the last sample is the same file as training image 5
    found, kind = identical_matches(None, candidates, None, generated_sha=["", "", "", "x"],
                                    training_sha=["a", "b", "c", "d", "e", "x"])
    assert found.tolist() == [-1, -1, -1, 5] and kind == ["", "", "", SAME_FILE]


def test_training_overlap_counts_shared_files_and_names_the_same_folder(tmp_path):
    assert training_overlap(str(tmp_path), str(tmp_path / "."), ["a"], ["a"])["same_folder"] is True
    other = training_overlap(str(tmp_path / "t"), str(tmp_path / "g"), ["a", "b", "c"], ["b", "z", "c", ""])
    assert other["generated_in_training"] == 2 and not other["same_folder"]
    assert "2 of 4 generated files are identical to training files" in other["warning"]
    assert training_overlap(str(tmp_path / "t"), str(tmp_path / "g"), ["a"], ["z"])["warning"] is None


def test_a_small_set_flags_identical_copies_and_says_it_cannot_judge(tmp_path):
    """400 training images, 40 held out: a rate of 0.01 is out of reach; sample 1 is training image 7
    (the same file), sample 0 is training image 5 mirrored, samples 2-4 are new."""
    run, fake, _ = _pixel_run(tmp_path)
    options = {"fpr": 0.01, "pixel_flags": False, "plots": False, "progress": False}
    for mirror in (True, False):
        result = judge_run(run, mirror=mirror, extractor=fake, cache=False, **options)
        rows = _rows(run / "samples.csv")
        assert rows[1]["verdict"] == "copy" and rows[1]["identical_id"] == "t007.png"
        assert rows[1]["identical_kind"] == SAME_FILE
        assert [r["verdict"] == "copy" for r in rows[2:]] == [False] * 3
        copies = result.summary["copies"]
        assert copies["calibrated"] == 0  # the calibrated rule cannot flag anything at 40 held out
        assert "40 held out, at least 99 needed (about 990 training images at --holdout 0.1)" in copies["not_judged"]
        assert result.summary["calibration"]["reachable"] is False
    mirrored = judge_run(run, extractor=fake, cache=False, **options)
    rows = _rows(run / "samples.csv")
    assert rows[0]["verdict"] == "copy" and rows[0]["identical_id"] == "t005.png"
    assert rows[0]["identical_kind"] == MIRRORED_PIXELS and mirrored.summary["copies"]["identical"] == 2
    # the calibrated evidence is reported as it is: the smallest p-value 40 held-out images allow, above 0.01
    assert [float(r["copy_p_value"]) for r in rows[:2]] == [round(1 / 41, 6)] * 2
    # at a reachable rate nothing is left unjudged
    assert judge_run(run, extractor=fake, fpr=0.05, pixel_flags=False, plots=False,
                     progress=False).summary["copies"]["not_judged"] is None


def test_a_generated_folder_that_overlaps_the_training_folder_is_recorded(tmp_path):
    run, fake, _ = _pixel_run(tmp_path)  # generated s1.png is the same file as training t007.png
    summary = judge_run(run, fpr=0.05, extractor=fake, pixel_flags=False, plots=False, progress=False).summary
    assert summary["overlap"] == {"same_folder": False, "generated_in_training": 1, "generated": 5,
                                  "warning": summary["overlap"]["warning"]}
    assert summary["warnings"][0] == summary["overlap"]["warning"]
    assert json.loads((run / "summary.json").read_text())["overlap"]["generated_in_training"] == 1


def _images(folder: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((32, 32), Image.Resampling.BICUBIC).save(folder / f"t{i:02d}.png")


def test_the_terminal_warns_of_a_training_folder_given_as_generated_and_of_a_small_set(tmp_path):
    train = tmp_path / "train"
    _images(train, 30, 1)
    args = ["analyze", "--train", str(train), "--weights", "none",
            "--input-size", "32", "--k", "3", "--no-align", "--no-mirror"]
    result = CliRunner().invoke(main, [*args, "--generated", str(train), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "Warning: --generated is the training folder itself" in result.stderr
    assert "Warning: too few held-out images to judge at a false positive rate of 0.01: 3 held out, " \
           "at least 99 needed (about 990 training images at --holdout 0.1)" in result.stderr
    assert "30 of them identical to a training image" in result.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["overlap"]["same_folder"] is True and summary["overlap"]["generated_in_training"] == 30
    assert summary["copies"]["count"] == 30  # every sample is a training image: every one a copy
    # another folder holding copies of some training files: the count, in the terminal and summary.json
    gen = tmp_path / "gen"
    _images(gen, 4, 2)
    for name in ("t03.png", "t07.png"):
        shutil.copy(train / name, gen / f"copy-{name}")
    result = CliRunner().invoke(main, [*args, "--generated", str(gen), "--out", str(tmp_path / "run2")])
    assert result.exit_code == 0, result.output
    assert "Warning: --generated overlaps the training folder: 2 of 6 generated files are identical" in result.stderr
    assert json.loads((tmp_path / "run2" / "summary.json").read_text())["overlap"]["generated_in_training"] == 2
