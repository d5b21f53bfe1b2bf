"""`novelty prepare` and `read_shards`: the layout round-trips, bad input never stops the run."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import unblocked

from novelty.cli import main
from novelty.errors import NoveltyError
from novelty.files import read_json, sha256_file
from novelty.images import records
from novelty.images.decode import load
from novelty.images.records import prepare, read_shards


def _shard_contents(folder, size):
    dataset, description = read_shards(folder, size, with_ids=True)
    return {ident.decode("utf-8"): image for ident, image in dataset.as_numpy_iterator()}, description


def _cli(*args):
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    return result


def _assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), "a traceback escaped the CLI"
    assert result.stderr.count("Error: ") == 1, result.output  # a progress bar may precede it
    line = result.stderr.split("Error: ", 1)[1]
    assert line.endswith("\n") and "\n" not in line[:-1], "the error is one line, and the last"
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in line, line


@pytest.fixture
def layout_folder(image_folder, asymmetric_image):
    return image_folder({
        "square.png": asymmetric_image(64, 64),
        "wide.png": asymmetric_image(64, 96),  # crop to 64 is an exact centre cut, no resampling
        "sub/tall.png": asymmetric_image(120, 80),  # needs resizing
    })


def test_layout_round_trips_pixel_identical_and_not_transposed(layout_folder, asymmetric_image,
                                                                tmp_path):
    out = tmp_path / "shards"
    result = prepare(layout_folder, out, 64, "crop", shard_size=1, progress=False)
    assert result.written == 3 and result.skipped == 0
    assert sorted(p.name for p in out.glob("*.tfrecord")) == [
        "train-00000-of-00003.tfrecord", "train-00001-of-00003.tfrecord", "train-00002-of-00003.tfrecord"]
    got, description = _shard_contents(out, 64)
    assert set(got) == {"square.png", "wide.png", "sub/tall.png"}
    assert "3 images from 3 shards" in description

    square = asymmetric_image(64, 64)
    np.testing.assert_array_equal(got["square.png"], square)
    assert got["square.png"].dtype == np.uint8 and got["square.png"].shape == (64, 64, 3)
    # Planted pixels: top-right quadrant is (128 + row gradient, 0 + column gradient, 60).
    assert tuple(got["square.png"][0, 63]) == (128, 127, 60)
    assert tuple(got["square.png"][63, 0]) == (127, 128, 120)
    assert tuple(got["square.png"][63, 63]) == (255, 255, 250)
    assert not np.array_equal(got["square.png"], square.transpose(1, 0, 2))
    np.testing.assert_array_equal(got["wide.png"], asymmetric_image(64, 96)[:, 16:80])
    np.testing.assert_array_equal(got["sub/tall.png"], load(layout_folder / "sub/tall.png", 64, "crop"))

    manifest = read_json(out / "manifest.json")
    assert manifest["size"] == 64 and manifest["fit"] == "crop" and manifest["count"] == 3
    assert manifest["shards"] == sorted(p.name for p in out.glob("*.tfrecord"))
    by_id = {entry["id"]: entry for entry in manifest["images"]}
    assert by_id["sub/tall.png"]["width"] == 80 and by_id["sub/tall.png"]["height"] == 120
    assert by_id["wide.png"]["sha256"] == sha256_file(layout_folder / "wide.png")
    assert by_id["square.png"]["mode"] == "RGB"
    assert {entry["shard"] for entry in manifest["images"]} == set(manifest["shards"])


def test_pad_mode_and_training_pipeline_read_the_shards(layout_folder, tmp_path):
    from novelty.images.pipeline import training_images

    out = tmp_path / "padded"
    prepare(layout_folder, out, 32, "pad", progress=False)
    dataset, description = training_images(out, 32)
    images = np.stack(list(dataset.as_numpy_iterator()))
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
    assert "3 images from 1 shard " in description and "fit pad" in description
    # The deterministic order is the manifest order (the sorted walk: a folder's files, then sub-folders).
    ordered, _ = read_shards(out, 32, with_ids=True)
    ids = [i.decode() for i, _ in ordered.as_numpy_iterator()]
    assert ids == [e["id"] for e in read_json(out / "manifest.json")["images"]]
    assert ids == ["square.png", "wide.png", "sub/tall.png"]
    tall = images[2]
    assert (tall[:, :5] == 255).all() and (tall[:, -5:] == 255).all()  # white pad left and right


def test_analyze_and_the_verdicts_read_a_prepared_folder_by_manifest_id(layout_folder, tmp_path):
    from novelty.judge.runinputs import FolderReadError
    from novelty.judge.runinputs import folder_reader as _folder_reader

    out = tmp_path / "shards"
    prepare(layout_folder, out, 64, "crop", shard_size=2, progress=False)
    loaded = records.load_prepared(out, 32)
    assert [e["id"] for e in loaded.entries] == ["square.png", "wide.png", "sub/tall.png"]  # prepare's order
    assert loaded.images.shape == (3, 32, 32, 3) and loaded.source == layout_folder.resolve()
    gen = tmp_path / "gen"
    gen.mkdir()
    read = _folder_reader({"train_dir": str(out), "generated_dir": str(gen), "train_prepared": str(out),
                           "fit": "crop"})  # a run whose source folder is gone: the shards still serve
    got = read("training", ["sub/tall.png", "square.png"], 64)
    np.testing.assert_array_equal(got[0], load(layout_folder / "sub/tall.png", 64, "crop"))
    np.testing.assert_array_equal(got[1], load(layout_folder / "square.png", 64, "crop"))
    assert read("training", ["wide.png"], 32).shape == (1, 32, 32, 3)
    with pytest.raises(FolderReadError, match="no longer holds training image 'gone.png'"):
        read("training", ["gone.png"], 64)


def test_size_mismatch_is_a_clear_error(layout_folder, tmp_path):
    from novelty.images.pipeline import training_images

    out = tmp_path / "shards"
    prepare(layout_folder, out, 32, progress=False)
    with pytest.raises(NoveltyError, match=r"hold 32x32 images, requested size 64.*--size 32"):
        read_shards(out, 64)
    (out / "train-00000-of-00001.tfrecord").unlink()
    with pytest.raises(NoveltyError, match="shard train-00000-of-00001.tfrecord missing"):
        read_shards(out, 32)
    with pytest.raises(NoveltyError, match="missing"):  # still recognised as shards, not as images
        training_images(out, 32)
    with pytest.raises(NoveltyError, match="no manifest.json"):
        read_shards(layout_folder, 32)


def test_bad_input_is_converted_or_skipped_with_reasons(bad_images, tmp_path):
    root, outcomes = bad_images()
    out = tmp_path / "out"
    result = _cli("prepare", root, "--out", out, "--size", 32, "--shard-size", 4)
    assert result.exit_code == 0, result.output
    expected_ok = sorted(i for i, reason in outcomes.items() if reason is None)
    expected_skipped = {i: reason for i, reason in outcomes.items() if reason is not None}
    assert result.stdout.splitlines() == [f"Wrote {len(expected_ok)} images in 4 shards to {out}, skipped "
                       f"{len(expected_skipped)} (reasons in {out / 'skipped.csv'})"]

    with open(out / "skipped.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["id"] for row in rows} == set(expected_skipped)
    for row in rows:
        assert expected_skipped[row["id"]] in row["reason"]

    manifest = read_json(out / "manifest.json")
    assert sorted(e["id"] for e in manifest["images"]) == expected_ok
    modes = {e["id"]: e["mode"] for e in manifest["images"]}
    assert modes["cmyk.jpg"] == "CMYK" and modes["la.png"] == "LA" and modes["gray16.png"] == "I;16"
    sizes = {e["id"]: (e["width"], e["height"]) for e in manifest["images"]}
    assert sizes["rotated.jpg"] == (8, 16)  # after EXIF orientation

    got, _ = _shard_contents(out, 32)
    assert sorted(got) == expected_ok
    assert tuple(got["rgba.png"][0, 0]) == (255, 255, 255)  # transparent corner composited on white
    assert tuple(got["animated.gif"][16, 16]) == (255, 0, 0)  # first frame
    assert not np.array_equal(got["a/same.png"], got["b/same.png"])


def test_special_files_among_real_images_are_skipped_with_reasons(bad_images, special_files, tmp_path):
    root, outcomes = bad_images()
    outcomes |= special_files(root, "ok/plain.png") | {"good-link.png": None}
    out = tmp_path / "out"
    with unblocked(root) as waited:  # before the fix, the named pipe pipe.jpg made prepare wait forever
        result = _cli("prepare", root, "--out", out, "--size", 32)
    assert not waited, "prepare waited on a named pipe"
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    with open(out / "skipped.csv", encoding="utf-8", newline="") as handle:
        reasons = {row["id"]: row["reason"] for row in csv.DictReader(handle)}
    assert set(reasons) == {i for i, reason in outcomes.items() if reason is not None}
    assert all(outcomes[ident] in reason for ident, reason in reasons.items()), reasons
    manifest = read_json(out / "manifest.json")
    assert sorted(e["id"] for e in manifest["images"]) == sorted(i for i, r in outcomes.items() if r is None)
    by_id = {e["id"]: e for e in manifest["images"]}
    assert by_id["good-link.png"]["sha256"] == by_id["ok/plain.png"]["sha256"] == sha256_file(root / "ok/plain.png")


@pytest.mark.parametrize("case", ["missing", "file", "empty", "out-inside", "out-is-file",
                                  "foreign-manifest", "all-bad"])
def test_cli_errors_are_one_line(case, tmp_path, image_folder, asymmetric_image):
    good = image_folder({"a.png": asymmetric_image(8, 8)}, name="good")
    out = tmp_path / "out"
    if case == "missing":
        result, fragments = _cli("prepare", tmp_path / "nope", "--out", out), ["not found", "nope"]
    elif case == "file":
        result, fragments = _cli("prepare", good / "a.png", "--out", out), ["received a file"]
    elif case == "empty":
        (tmp_path / "empty").mkdir()
        result, fragments = _cli("prepare", tmp_path / "empty", "--out", out), ["no files found"]
    elif case == "out-inside":
        result, fragments = _cli("prepare", good, "--out", good / "shards"), ["outside the image folder"]
    elif case == "out-is-file":
        out.write_text("x")
        result, fragments = _cli("prepare", good, "--out", out), ["--out must be a folder"]
    elif case == "foreign-manifest":
        out.mkdir()
        (out / "manifest.json").write_text('{"mine": true}')
        result, fragments = _cli("prepare", good, "--out", out), ["not written by `novelty prepare`"]
        assert (out / "manifest.json").read_text() == '{"mine": true}'
    else:
        bad = image_folder({"a.txt": b"text", "b.png": b""}, name="bad")
        result, fragments = _cli("prepare", bad, "--out", out), ["all 2 files skipped", "skipped.csv"]
        assert (out / "skipped.csv").read_text(encoding="utf-8").count("\n") == 3
        assert not list(out.glob("*.tfrecord")) and not (out / "manifest.json").exists()
    _assert_one_line_error(result, *fragments)


def test_interrupted_prepare_leaves_no_half_shard_and_keeps_the_previous_one(
        layout_folder, tmp_path, monkeypatch):
    out = tmp_path / "shards"
    prepare(layout_folder, out, 32, shard_size=2, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "train-00001-of-00002.tfrecord" in before

    real = records.encode_example
    calls = []

    def interrupt_on_third(image, ident):
        calls.append(ident)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(image, ident)

    monkeypatch.setattr(records, "encode_example", interrupt_on_third)
    with pytest.raises(KeyboardInterrupt):
        prepare(layout_folder, out, 32, shard_size=1, progress=False)
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before, "an interrupted run must not touch the finished shards or manifest"


def test_write_failures_are_one_line_errors_and_leave_no_temp(layout_folder, tmp_path, monkeypatch):
    def disk_full(self, record):
        raise RuntimeError("No space left on device\nsecond line")

    monkeypatch.setattr(records._ShardWriter, "write", disk_full)
    out = tmp_path / "out"
    _assert_one_line_error(_cli("prepare", layout_folder, "--out", out),
                           "cannot write shards to", "No space left on device")
    assert list(out.iterdir()) == []
    blocked = tmp_path / "blocker"
    blocked.write_text("a file where a folder should be")
    _assert_one_line_error(_cli("prepare", layout_folder, "--out", blocked / "out"), "cannot write to")


def test_rerun_replaces_its_own_shards_and_nothing_else(layout_folder, tmp_path):
    out = tmp_path / "shards"
    prepare(layout_folder, out, 32, shard_size=1, progress=False)
    (out / "notes.md").write_text("mine")
    dead = out / ".prepare-999999999-dead-00000.tfrecord.tmp"  # left by a killed run
    live = out / f".prepare-{os.getpid()}-live-00000.tfrecord.tmp"  # a run still going
    dead.write_bytes(b"x")
    live.write_bytes(b"x")
    prepare(layout_folder, out, 32, shard_size=10, progress=False)
    assert sorted(p.name for p in out.glob("*.tfrecord")) == ["train-00000-of-00001.tfrecord"]
    assert (out / "notes.md").read_text() == "mine"
    assert not dead.exists() and live.exists()
    got, _ = _shard_contents(out, 32)
    assert len(got) == 3


def test_importing_records_and_cli_help_do_not_import_tensorflow():
    code = ("import sys, novelty.images.records, novelty.cli; "
            "from click.testing import CliRunner; "
            "r = CliRunner().invoke(novelty.cli.main, ['prepare', '--help']); "
            "assert r.exit_code == 0 and '--shard-size' in r.output, r.output; "
            "assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
