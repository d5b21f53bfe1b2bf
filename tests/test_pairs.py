"""Paired data for pix2pix (novelty.images.pairs): both layouts, bad pairs with reasons, paired shards,
the held-out split and the paired augmentation (both halves alike, a pure function of seed and position)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from click.testing import CliRunner
from test_prepare import _assert_one_line_error

from novelty.cli import main
from novelty.errors import NoveltyError
from novelty.files import read_json
from novelty.images.pairs import (
    holdout_ids,
    iter_pairs,
    load_pairs,
    pair_dataset,
    prepare_pairs,
    without_ids,
)
from novelty.images.records import read_shards

SIZE = 32


def make_pair(seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(A, B): B a blocky colour image, A its colours inverted with a planted mark, so A != flip(A)."""
    rng = np.random.default_rng(seed)
    b = np.kron(rng.integers(0, 256, (4, 4, 3)), np.ones((size // 4, size // 4, 1))).astype(np.uint8)
    a = 255 - b
    a[: size // 4, : size // 8] = (255, 0, 0)
    return a, b


@pytest.fixture
def side_by_side(image_folder, encode_image_bytes):
    """Five good A|B pairs and four bad files, with the reason planted for each."""
    files: dict[str, object] = {f"p{i}.png": np.concatenate(make_pair(i), axis=1) for i in range(5)}
    files["sub/p5.png"] = np.concatenate(make_pair(5), axis=1)
    files["odd.png"] = np.zeros((SIZE, 2 * SIZE + 1, 3), np.uint8)
    files["notes.txt"] = b"not an image"
    files["truncated.png"] = encode_image_bytes(np.concatenate(make_pair(9), axis=1))[:60]
    reasons = {"odd.png": "odd width 65", "notes.txt": "not a readable image", "truncated.png": "truncated"}
    return image_folder(files, "sbs"), reasons


@pytest.fixture
def two_folders(image_folder):
    """A/ and B/ matched by path without extension; lone halves, different sizes, an unreadable half, twins."""
    files: dict[str, object] = {}
    for i in range(4):
        a, b = make_pair(i)
        files[f"A/x{i}.png"], files[f"B/x{i}.{'bmp' if i == 0 else 'png'}"] = a, b
    files["A/only-a.png"] = make_pair(7)[0]
    files["B/only-b.png"] = make_pair(7)[1]
    files["A/sizes.png"], files["B/sizes.png"] = make_pair(8)[0], make_pair(8, 2 * SIZE)[1]
    files["A/broken.png"], files["B/broken.png"] = make_pair(6)[0], b"garbage"
    files["A/twin.png"], files["A/twin.bmp"], files["B/twin.png"] = make_pair(5)[0], make_pair(5)[0], make_pair(5)[1]
    reasons = {"A/only-a.png": "no file in B/ matches it", "B/only-b.png": "no file in A/ matches it",
               "sizes.png": "halves of different sizes: A is 32x32, B is 64x64", "broken.png": "B: not a readable image",
               "A/twin": "A/ holds several files named twin.*"}
    return image_folder(files, "ab"), reasons


def _skipped(folder) -> dict[str, str]:
    with open(folder / "skipped.csv", newline="", encoding="utf-8") as handle:
        return {row["id"]: row["reason"] for row in csv.DictReader(handle)}


def _assert_reasons(found: dict[str, str], planted: dict[str, str]) -> None:
    assert set(found) == set(planted), found
    for ident, reason in planted.items():
        assert reason in found[ident], (ident, found[ident])


def test_side_by_side_pairs_split_in_halves_in_either_direction(side_by_side) -> None:
    folder, reasons = side_by_side
    loaded = load_pairs(folder, "side-by-side", SIZE, progress=False)
    assert loaded.ids == ["p0.png", "p1.png", "p2.png", "p3.png", "p4.png", "sub/p5.png"]
    for ident, source, target in zip(loaded.ids, loaded.inputs, loaded.targets, strict=True):
        a, b = make_pair(int(ident[-5]))
        assert np.array_equal(source, a) and np.array_equal(target, b)  # A (left) is the input
    _assert_reasons(dict(loaded.skipped), reasons)
    swapped = load_pairs(folder, "side-by-side", SIZE, direction="BtoA", progress=False)
    assert np.array_equal(swapped.inputs, loaded.targets) and np.array_equal(swapped.targets, loaded.inputs)


def test_folder_pairs_match_by_name_and_skip_bad_pairs_with_reasons(two_folders) -> None:
    folder, reasons = two_folders
    pairs = list(iter_pairs(folder, "folders", SIZE, progress=False))
    good = {p.id: p for p in pairs if p.input is not None}
    assert sorted(good) == ["x0.png", "x1.png", "x2.png", "x3.png"]  # x0 pairs A/x0.png with B/x0.bmp
    for ident, pair in good.items():
        a, b = make_pair(int(ident[1]))
        assert np.array_equal(pair.input, a) and np.array_equal(pair.target, b)
    _assert_reasons({p.id: p.reason for p in pairs if p.input is None}, reasons)


@pytest.mark.slow
def test_prepared_pairs_hold_both_halves_and_the_manifest_the_pairing(two_folders, side_by_side, tmp_path) -> None:
    for (folder, reasons), layout in ((two_folders, "folders"), (side_by_side, "side-by-side")):
        out = tmp_path / layout
        result = prepare_pairs(folder, out, layout, SIZE, direction="BtoA", progress=False)
        loaded = load_pairs(folder, layout, SIZE, direction="BtoA", progress=False)
        assert result.written == len(loaded.ids) and result.skipped == len(reasons)
        manifest = read_json(out / "manifest.json")
        assert manifest["pairs"] == {"layout": layout, "direction": "BtoA"} and manifest["size"] == SIZE
        dataset, description = read_shards(out, SIZE, with_ids=True, pairs=True)
        read = {i.decode(): (s, t) for i, s, t in dataset.as_numpy_iterator()}
        assert "pairs" in description and sorted(read) == sorted(loaded.ids)
        for ident, source, target in zip(loaded.ids, loaded.inputs, loaded.targets, strict=True):
            assert np.array_equal(read[ident][0], source) and np.array_equal(read[ident][1], target)
        _assert_reasons(_skipped(out), reasons)
        single, _ = read_shards(out, SIZE, with_ids=True)  # as single images, a folder of pairs gives its targets
        assert all(np.array_equal(image, read[i.decode()][1]) for i, image in single.as_numpy_iterator())


def test_pair_dataset_reads_a_pair_folder_or_its_shards_alike(side_by_side, tmp_path) -> None:
    folder, _ = side_by_side
    prepare_pairs(folder, tmp_path / "shards", "side-by-side", SIZE, progress=False)
    from_folder, ids, _ = pair_dataset(folder, SIZE, progress=False)  # layout detected: no A/ and B/
    from_shards, shard_ids, _ = pair_dataset(tmp_path / "shards", SIZE)
    assert ids == shard_ids

    def contents(dataset):
        return {i.decode(): (s.tobytes(), t.tobytes()) for i, s, t in dataset.as_numpy_iterator()}

    assert contents(from_folder) == contents(from_shards)
    held = holdout_ids(ids, 0.34, 3)
    kept = list(without_ids(from_folder, held).as_numpy_iterator())
    assert len(held) == 2 and len(kept) == len(ids) - 2
    assert not {s.tobytes() for s, _ in kept} & {contents(from_folder)[i][0] for i in held}


def test_the_held_out_split_is_seeded_sized_and_leaves_pairs_to_train_on() -> None:
    ids = [f"{i:03d}.png" for i in range(100)]
    held = holdout_ids(ids, 0.1, 0)
    assert len(held) == 10 and held == sorted(held) and set(held) <= set(ids)
    assert holdout_ids(list(reversed(ids)), 0.1, 0) == held  # the id order does not matter
    assert holdout_ids(ids, 0.1, 1) != held
    assert holdout_ids(ids, 0.0, 0) == [] and holdout_ids(ids[:1], 0.5, 0) == []
    assert len(holdout_ids(ids[:3], 0.01, 0)) == 1  # at least one when asked for some
    with pytest.raises(NoveltyError, match="holdout must be a number in the range 0.0<=x<=0.5"):
        holdout_ids(ids, 0.9, 0)


def test_paired_augmentation_moves_both_halves_alike_and_resumes_exactly() -> None:
    import tensorflow as tf

    from novelty.images.pipeline import augment_pairs_and_batch

    images = np.stack([make_pair(i)[0] for i in range(6)])
    same = tf.data.Dataset.from_tensor_slices((images, images))  # input == target: any misalignment shows
    stream = augment_pairs_and_batch(same, SIZE, 2, seed=4, flip=True, jitter=True)
    batches = [(s.numpy(), t.numpy()) for s, t in stream.take(6)]
    assert all(np.array_equal(s, t) for s, t in batches)
    assert any(not np.array_equal(s[0], (images[0] / 127.5 - 1)) for s, _ in batches)  # jitter changed pixels
    crossed = augment_pairs_and_batch(same, SIZE, 2, seed=4, flip=True, jitter=True, cross_flip=True)
    flipped = [np.array_equal(s[j], t[j][:, ::-1]) for s, t in ((s.numpy(), t.numpy()) for s, t in crossed.take(6))
               for j in range(2) if not np.array_equal(s[j], t[j])]
    assert flipped and all(flipped)  # cross-flip: some inputs are their targets mirrored, nothing else differs
    tail = augment_pairs_and_batch(same, SIZE, 2, seed=4, flip=True, jitter=True, skip=6)
    for (s, t), (s2, t2) in zip(batches[3:], tail.take(3), strict=True):
        assert np.array_equal(s, s2.numpy()) and np.array_equal(t, t2.numpy())


def test_pair_cli_errors_are_one_line(tmp_path, side_by_side) -> None:
    folder, _ = side_by_side
    runner = CliRunner()
    result = runner.invoke(main, ["prepare", str(folder), "--out", str(tmp_path / "o"), "--pairs", "folders"])
    _assert_one_line_error(result, "needs A/ and B/")
    result = runner.invoke(main, ["prepare", str(folder), "--out", str(tmp_path / "o"), "--direction", "BtoA"])
    _assert_one_line_error(result, "--direction applies only with --pairs")
    prepared = tmp_path / "single"
    assert runner.invoke(main, ["prepare", str(folder), "--out", str(prepared), "--size", "32"]).exit_code == 0
    with pytest.raises(NoveltyError, match="holds single images, not pairs"):
        read_shards(prepared, SIZE, pairs=True)
    result = runner.invoke(main, ["train", str(folder), "--out", str(tmp_path / "t"), "--model", "pix2pix",
                                  "--z-dim", "8"])
    _assert_one_line_error(result, "--z-dim applies only with --model dcgan")
    result = runner.invoke(main, ["train", str(folder), "--out", str(tmp_path / "t"), "--cross-flip"])
    _assert_one_line_error(result, "--cross-flip applies only with --model pix2pix")
    result = runner.invoke(main, ["train", str(folder), "--out", str(tmp_path / "t"), "--size", "256"])
    _assert_one_line_error(result, "image size must be one of: 32, 64, 128; received: 256")
    assert not (tmp_path / "t").exists()
