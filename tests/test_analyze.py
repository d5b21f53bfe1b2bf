"""``novelty analyze`` (novelty.analysis): the run folder, bad input, and the feature cache across re-runs.

Tiny seeded images at 32 px and a randomly initialised VGG16 (``--weights none``): no weights file,
no network. Planted answers: ``copy.png`` is training ``t05.png`` pixel for pixel, ``big.png`` is
``t07.png`` upscaled to 64 px (so it must be resized back), ``broken.png`` is not an image.
"""

from __future__ import annotations

import csv
import importlib.machinery
import json
import re
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import unblocked
from PIL import Image

import novelty.judge
from novelty.analysis import AnalyzeOptions, analyze
from novelty.cli import main
from novelty.curate.curation import Outliers
from novelty.embed.features import Extractor
from novelty.embed.featurestore import FeatureStore
from novelty.errors import NoveltyError
from novelty.files import read_json, sha256_file
from novelty.images.sets import FolderPixels, decode_set, scan_set
from novelty.search.neighbors import load_neighbors

SIZE, K, N_TRAIN = 32, 3, 12
OPTIONS = AnalyzeOptions(weights="none", input_size=SIZE, k=K, progress=False)
RUN_KEYS = {"version", "created", "train_dir", "generated_dir", "checkpoint", "layers", "k", "weights",
            "preprocess", "input_size", "index", "counts", "timings", "versions"}


def _smooth(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """A smooth random image (4x4 colours upscaled): resizing barely changes it."""
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC))


def _save(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


@pytest.fixture(scope="module")
def judged() -> list:
    """A stand-in ``novelty.judge.verdicts`` for this module: records each judge_run call and its settings."""
    calls: list = []
    fake = types.ModuleType("novelty.judge.verdicts")
    fake.__spec__ = importlib.machinery.ModuleSpec("novelty.judge.verdicts", None)

    def judge_run(run, progress=True, **settings):
        calls.append(Path(run))
        fake.settings = settings
        rule = Outliers(np.zeros(12), np.zeros(12, bool), (5, 10)).rule()
        return types.SimpleNamespace(summary={"copies": {"count": 1, "n": 3, "expected_false_positives": 0.03},
                                              "curation": {"outliers": 2, "outlier_rule": rule},
                                              "settings": {"outlier_z": 2.5, "outlier_scales": [5, 10]}})

    fake.judge_run = judge_run
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "novelty.judge.verdicts", fake)
        patch.setattr(novelty.judge, "verdicts", fake, raising=False)
        yield calls


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("analyze")
    rng = np.random.default_rng(42)
    training = [_smooth(rng) for _ in range(N_TRAIN)]
    for i, image in enumerate(training):
        _save(root / "train" / f"t{i:02d}.png", image)
    _save(root / "gen" / "copy.png", training[5])
    _save(root / "gen" / "big.png", np.repeat(np.repeat(training[7], 2, axis=0), 2, axis=1))
    _save(root / "gen" / "sub" / "wide.png", _smooth(rng, 40)[:32])
    (root / "gen" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return {"root": root, "train": root / "train", "gen": root / "gen", "extra": _smooth(rng)}


@pytest.fixture(scope="module")
def run(data: dict[str, Path], judged: list) -> Path:
    """One analysis through the CLI, shared by the tests that only read it."""
    out = data["root"] / "run"
    result = CliRunner().invoke(main, ["analyze", "--train", str(data["train"]), "--generated", str(data["gen"]),
                                       "--out", str(out), "--weights", "none", "--input-size", str(SIZE),
                                       "--k", str(K), "--fpr", "0.05", "--holdout", "0.2", "--no-mirror",
                                       "--no-align"])
    assert result.exit_code == 0, result.output
    assert "Compared 3 generated with 12 training images (1 files skipped" in result.output
    assert "Copies: 1 of 3 samples flagged at a false positive rate of 0.05" in result.output
    # one short line; the rule in full is in summary.json (and on the web page)
    assert re.search(r"Outliers: 2 of 12 training images flagged \(outlier score above 2\.5 at k = 5 to 10; "
                     r"the rule in full: .*summary\.json, \"curation\"\); see .*training\.csv\n", result.output), \
        result.output[-600:]
    assert sys.modules["novelty.judge.verdicts"].settings == {"holdout_fraction": 0.2, "fpr": 0.05, "mirror": False,
                                                        "align": False}
    return out


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor(weights="none", input_size=SIZE)


def _copy_run(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def test_run_json_has_the_shared_keys(run: Path, data: dict[str, Path], judged: list) -> None:
    manifest = read_json(run / "run.json")
    assert RUN_KEYS <= set(manifest)
    assert manifest["counts"] == {"training": 12, "generated": 3, "skipped": 1}
    assert manifest["train_dir"] == str(data["train"].resolve())
    assert manifest["generated_dir"] == str(data["gen"].resolve())
    assert manifest["checkpoint"] is None and manifest["k"] == K and manifest["input_size"] == SIZE
    assert manifest["layers"] == ["block1_pool", "block5_pool"] and manifest["index"] == "exact"
    assert manifest["weights"]["requested"] == "none" and manifest["weights"]["source"] == "random"
    assert len(manifest["weights"]["sha256"]) == 64
    assert {"decode", "embed_training", "embed_generated", "search", "verdicts"} <= set(manifest["timings"])
    assert manifest["versions"]["novelty"] == novelty.__version__
    assert judged and judged[0] == run


def test_files_csv_reports_every_file(run: Path) -> None:
    import csv

    with open(run / "files.csv", newline="") as handle:
        rows = {(r["set"], r["id"]): r for r in csv.DictReader(handle)}
    assert len(rows) == 16
    broken = rows[("generated", "broken.png")]
    assert broken["status"] == "skipped" and "not a readable image" in broken["reason"]
    big = rows[("generated", "big.png")]
    assert (big["status"], big["width"], big["height"], big["mode"]) == ("used", "64", "64", "RGB")
    assert rows[("generated", "sub/wide.png")]["status"] == "used"
    assert all(len(r["sha256"]) == 64 for r in rows.values())


def test_neighbors_find_the_planted_copies(run: Path) -> None:
    for layer in ("block1_pool", "block5_pool"):
        table = load_neighbors(run / "neighbors" / f"{layer}.json")
        assert set(table) == {"big.png", "copy.png", "sub/wide.png"}  # broken.png left out, not zeros
        for entries in table.values():
            scores = [e["score"] for e in entries]
            assert len(entries) == K and scores == sorted(scores, reverse=True)
        assert table["copy.png"][0]["id"] == "t05.png" and table["copy.png"][0]["score"] > 0.999
        assert table["big.png"][0]["id"] == "t07.png"  # resized back to 32 px by images.fit


def test_features_are_stored_for_the_used_images_only(run: Path) -> None:
    ids, features = FeatureStore(run / "features").load("generated", "block1_pool")
    assert ids == ["big.png", "copy.png", "sub/wide.png"]
    assert features.shape == (3, 16 * 16 * 64) and features.dtype == np.float16
    assert (np.abs(np.asarray(features, np.float32)).max(axis=1) > 0).all()


def test_a_cached_re_run_embeds_nothing(run: Path, data: dict[str, Path], tmp_path: Path) -> None:
    out = _copy_run(run, tmp_path)
    extractor = Extractor(weights="none", input_size=SIZE)
    lists = out / "neighbors" / "block5_pool.json"
    before, stamp = lists.read_text(), lists.stat().st_mtime_ns
    result = analyze(data["train"], out, generated=data["gen"], options=OPTIONS, extractor=extractor)
    assert result.embedded == {"training": 0, "generated": 0} and extractor.embedded == 0
    assert extractor._model is None  # the network was never even built
    assert lists.read_text() == before and lists.stat().st_mtime_ns == stamp  # nor searched again
    fewer = AnalyzeOptions(weights="none", input_size=SIZE, k=2, progress=False)
    analyze(data["train"], out, generated=data["gen"], options=fewer, extractor=extractor)
    table = json.loads(lists.read_text())
    assert extractor.embedded == 0 and all(len(v) == 2 for v in table.values())
    assert table["copy.png"] == json.loads(before)["copy.png"][:2]


def test_adding_one_image_embeds_only_that_one(run: Path, data: dict[str, Path], extractor: Extractor,
                                              tmp_path: Path) -> None:
    out = _copy_run(run, tmp_path)
    train = Path(shutil.copytree(data["train"], tmp_path / "train"))
    _save(train / "t99.png", data["extra"])
    start = extractor.embedded
    result = analyze(train, out, generated=data["gen"], options=OPTIONS, extractor=extractor)
    assert result.embedded == {"training": 1, "generated": 0} and extractor.embedded - start == 1
    assert result.counts["training"] == 13
    ids, _ = FeatureStore(out / "features").load("training", "block5_pool")
    assert "t99.png" in ids and len(ids) == 13


@pytest.mark.parametrize("folder", ["train", "gen"])
def test_streamed_embedding_equals_decoding_everything_first(data: dict[str, Path], extractor: Extractor,
                                                             folder: str, tmp_path: Path) -> None:
    kept = decode_set("training", data[folder], SIZE, progress=False)
    streamed = scan_set("training", data[folder], SIZE, progress=False)
    assert isinstance(streamed.images, FolderPixels) and isinstance(kept.images, np.ndarray)
    assert streamed.rows == kept.rows and streamed.ids == kept.ids and streamed.sha256 == kept.sha256
    np.testing.assert_array_equal(streamed.images[np.arange(len(kept.ids))], kept.images)
    stores = {name: FeatureStore(tmp_path / name) for name in ("kept", "streamed")}
    for name, image_set in (("kept", kept), ("streamed", streamed)):
        assert stores[name].update("training", image_set.ids, image_set.sha256, image_set.images, extractor,
                                   batch_size=2, progress=False) == len(kept.ids)
    direct = extractor.embed(kept.images, batch_size=2, progress=False)
    for layer in extractor.layers:
        (_, before), (_, after) = (store.load("training", layer) for store in stores.values())
        assert before.dtype == after.dtype and np.array_equal(before, after)  # bit for bit
        assert np.array_equal(after, direct[layer].astype(after.dtype))


def test_only_uncached_images_are_decoded_again_a_batch_at_a_time(data: dict[str, Path], extractor: Extractor,
                                                                  tmp_path: Path, monkeypatch) -> None:
    streamed = scan_set("training", data["train"], SIZE, progress=False)
    store = FeatureStore(tmp_path)
    store.update("training", streamed.ids[:9], streamed.sha256[:9], streamed.images[np.arange(9)], extractor,
                 progress=False)
    requests, read = [], FolderPixels.__getitem__
    monkeypatch.setattr(FolderPixels, "__getitem__", lambda pixels, rows: requests.append(list(rows)) or
                        read(pixels, rows))
    assert store.update("training", streamed.ids, streamed.sha256, streamed.images, extractor, batch_size=2,
                        progress=False) == 3
    assert [rows for rows in requests if rows] == [[9, 10], [11]]


def test_an_image_changed_after_the_scan_is_an_error_not_stale_features(data: dict[str, Path],
                                                                        extractor: Extractor, tmp_path: Path) -> None:
    train = Path(shutil.copytree(data["train"], tmp_path / "train"))
    streamed = scan_set("training", train, SIZE, progress=False)
    _save(train / "t03.png", data["extra"])
    with pytest.raises(NoveltyError, match=r"^t03\.png changed while it was being analysed; run again$"):
        FeatureStore(tmp_path / "features").update("training", streamed.ids, streamed.sha256, streamed.images,
                                                   extractor, progress=False)
    assert FeatureStore(tmp_path / "features").meta("training", "block5_pool") is None  # nothing half-written
    (train / "t04.png").unlink()
    with pytest.raises(NoveltyError, match=r"^t04\.png could no longer be read"):
        streamed.images[[4]]


def test_another_configuration_rebuilds_the_cache(run: Path, data: dict[str, Path], tmp_path: Path) -> None:
    out = _copy_run(run, tmp_path)
    options = AnalyzeOptions(weights="none", input_size=SIZE, k=K, progress=False, preprocess="original",
                             layers=("block5_pool",))
    result = analyze(data["train"], out, generated=data["gen"], options=options)
    assert result.embedded == {"training": 12, "generated": 3}  # nothing reused across settings
    meta = FeatureStore(out / "features").meta("training", "block5_pool")
    assert meta["params"]["preprocess"] == "original"
    assert read_json(out / "run.json")["preprocess"] == "original"


def test_a_generate_output_folder_is_read_from_its_samples(run: Path, data: dict[str, Path],
                                                           extractor: Extractor, tmp_path: Path) -> None:
    out = _copy_run(run, tmp_path)
    folder = tmp_path / "generate-out"
    shutil.copytree(data["gen"], folder / "samples")
    (folder / "generated.json").write_text("{}")
    _save(folder / "grid.png", np.zeros((8, 8, 3), np.uint8))  # must not be taken for a sample
    result = analyze(data["train"], out, generated=folder, options=OPTIONS, extractor=extractor)
    assert read_json(out / "run.json")["generated_dir"] == str((folder / "samples").resolve())
    assert result.counts["generated"] == 3 and result.embedded["generated"] == 0  # same content: cached


def test_a_prepared_folder_is_a_training_set(run: Path, data: dict[str, Path], extractor: Extractor,
                                            tmp_path: Path, judged: list) -> None:
    """`prepare` output (manifest + shards) as --train: ids from the manifest, pixels from the shards,
    the same neighbours as the image folder; thumbnails and curation keep the source folder."""
    import csv

    from novelty.images.records import prepare

    source = Path(shutil.copytree(data["train"], tmp_path / "masks"))
    (source / "notes.txt").write_text("not an image")
    prepared = tmp_path / "masks32"
    prepare(source, prepared, SIZE, "crop", shard_size=5, progress=False)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["analyze", "--train", str(prepared), "--generated", str(data["gen"]),
                                       "--out", str(out), "--weights", "none", "--input-size", str(SIZE),
                                       "--k", str(K), "--no-mirror", "--no-align"])
    assert result.exit_code == 0, result.output
    assert "Compared 3 generated with 12 training images (2 files skipped" in result.output
    manifest = read_json(out / "run.json")
    assert manifest["train_dir"] == str(source.resolve()) and manifest["train_prepared"] == str(prepared.resolve())
    for layer in ("block1_pool", "block5_pool"):
        assert load_neighbors(out / "neighbors" / f"{layer}.json") == load_neighbors(run / "neighbors" / f"{layer}.json")
    with open(out / "files.csv", newline="") as handle:
        rows = {(r["set"], r["id"]): r for r in csv.DictReader(handle)}
    assert rows[("training", "t03.png")]["sha256"] == sha256_file(source / "t03.png")
    assert rows[("training", "notes.txt")]["status"] == "skipped"
    assert "skipped by novelty prepare" in rows[("training", "notes.txt")]["reason"]

    larger = tmp_path / "masks64"  # prepared at another size than analyze embeds: resized, cached apart
    prepare(source, larger, 64, "crop", progress=False)
    resized = analyze(larger, tmp_path / "run64", generated=data["gen"], options=OPTIONS, extractor=extractor)
    assert resized.embedded["training"] == 12
    ids, _ = FeatureStore(tmp_path / "run64" / "features").load("training", "block5_pool")
    assert ids == [f"t{i:02d}.png" for i in range(12)]
    assert FeatureStore(tmp_path / "run64" / "features").meta("training", "block5_pool")["sha256"] != \
        [sha256_file(source / ident) for ident in ids]

    shutil.rmtree(source)  # the pixels come from the shards: the analysis does not need the source
    again = analyze(prepared, tmp_path / "run2", generated=data["gen"], options=OPTIONS, extractor=extractor)
    assert again.counts["training"] == 12
    assert read_json(tmp_path / "run2" / "run.json")["train_dir"] == str(prepared.resolve())
    assert len(again.warnings) == 1 and f"prepared from {source.resolve()}, which is gone" in again.warnings[0]
    assert load_neighbors(tmp_path / "run2" / "neighbors" / "block5_pool.json") == \
        load_neighbors(run / "neighbors" / "block5_pool.json")


@pytest.mark.slow
def test_a_checkpoint_is_sampled_into_the_run_folder(data: dict[str, Path], extractor: Extractor,
                                                     tmp_path: Path) -> None:
    from novelty.gan.dcgan import GENERATOR_FILE, GanConfig, build_generator

    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    config = GanConfig(image_size=32, z_dim=8, base_filters=4)
    config.save(checkpoint)
    build_generator(config).save_weights(checkpoint / GENERATOR_FILE)
    out = tmp_path / "run"
    result = analyze(data["train"], out, checkpoint=checkpoint, n=4, seed=3, options=OPTIONS, extractor=extractor)
    manifest = read_json(out / "run.json")
    assert manifest["checkpoint"] == str(checkpoint.resolve()) and manifest["n"] == 4 and manifest["seed"] == 3
    assert manifest["generated_dir"] == str((out / "generated" / "samples").resolve())
    assert result.counts["generated"] == 4 and "generate" in manifest["timings"]
    assert len(load_neighbors(out / "neighbors" / "block5_pool.json")) == 4


@pytest.mark.parametrize(("args", "message"), [
    ([], "give exactly one of --generated DIR or --checkpoint PATH"),
    (["--generated", "{gen}", "--checkpoint", "{gen}"], "give exactly one of"),
    (["--generated", "{gen}", "--k", "50"], "k=50 neighbours requested but only 12 usable training images"),
    (["--generated", "{gen}", "--layers", "block1_pool,fc1"], "unknown layer 'fc1'"),
    (["--generated", "{gen}", "--block1-reduce", "pca:3"], "must be none, sketch:D"),
    (["--generated", "{root}/nowhere"], "generated image folder not found"),
    (["--generated", "{gen}", "--weights", "{root}/missing.h5"], "weights file not found"),
])
def test_bad_input_gives_one_line_errors(data: dict[str, Path], args: list[str], message: str, judged: list) -> None:
    args = [a.format(gen=data["gen"], root=data["root"]) for a in args]
    weights = [] if "--weights" in args else ["--weights", "none"]
    result = CliRunner().invoke(main, ["analyze", "--train", str(data["train"]), "--out",
                                       str(data["root"] / "bad-run"), "--input-size", "32", *weights, *args])
    assert result.exit_code == (2 if "--block1-reduce" in args else 1), result.output  # 2: refused while parsing
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.output


def test_special_files_among_the_images_are_listed_with_reasons(data: dict[str, Path], special_files,
                                                                 tmp_path: Path, judged: list) -> None:
    train = Path(shutil.copytree(data["train"], tmp_path / "train"))
    planted = special_files(train, "t03.png")
    out = tmp_path / "run"
    with unblocked(train) as waited:  # before the fix: a traceback on a symlink (or a wait on the pipe)
        result = CliRunner().invoke(main, ["analyze", "--train", str(train), "--generated", str(data["gen"]),
                                           "--out", str(out), "--weights", "none", "--input-size", str(SIZE),
                                           "--k", str(K), "--no-mirror", "--no-align"])
    assert not waited and result.exit_code == 0 and "Traceback" not in result.output, result.output
    with open(out / "files.csv", encoding="utf-8", newline="") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle) if row["set"] == "training"}
    assert set(rows) == {f"t{i:02d}.png" for i in range(N_TRAIN)} | {"good-link.png"} | set(planted)
    for ident, reason in planted.items():
        assert rows[ident]["status"] == "skipped" and reason in rows[ident]["reason"], rows[ident]
        assert rows[ident]["sha256"] == ""
    used = {ident for ident, row in rows.items() if row["status"] == "used"}
    assert used == {f"t{i:02d}.png" for i in range(N_TRAIN)} | {"good-link.png"}
    assert rows["good-link.png"]["sha256"] == rows["t03.png"]["sha256"]


def test_the_run_folder_may_not_sit_inside_an_image_folder(data: dict[str, Path], extractor: Extractor) -> None:
    with pytest.raises(NoveltyError, match="must not lie inside the training folder"):
        analyze(data["train"], data["train"] / "run", generated=data["gen"], options=OPTIONS, extractor=extractor)
    assert not (data["train"] / "run").exists()
