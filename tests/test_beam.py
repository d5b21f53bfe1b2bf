"""``novelty embed`` on Apache Beam (novelty.embed.runners, .beam, .shards): the DirectRunner fills a
run's feature store that ``novelty analyze`` then reuses, bad files get the in-process reasons.

Offline: Beam's DirectRunner (in this process, and with two worker processes), tiny seeded images at
32 px and a randomly initialised VGG16 (``weights="none"``). Planted answers: ``g_copy.png`` is training
``t05.png`` pixel for pixel, so its top neighbour in both layers must be ``t05.png``; ``notes.txt`` is
not an image.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from novelty.analysis import AnalyzeOptions, analyze, files_csv
from novelty.embed.features import Extractor
from novelty.embed.featurestore import FeatureStore
from novelty.errors import NoveltyError
from novelty.images.sets import scan_set
from novelty.search.neighbors import load_neighbors

pytest.importorskip("apache_beam", reason="apache-beam is not installed (pip install -e '.[beam]'; make test does)")

from novelty.cli import main  # noqa: E402
from novelty.embed.runners import embed_on_beam  # noqa: E402

SIZE, K, N_TRAIN = 32, 3, 12
LAYERS = ("block1_pool", "block5_pool")
# float32 storage, so the comparison with in-process features is not blurred by float16 rounding
OPTIONS = AnalyzeOptions(weights="none", input_size=SIZE, k=K, progress=False, verdicts=False, feature_dtype="float32")
MULTI = ["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"]


def _save(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """12 seeded training images (one 48 x 40, fitted like the rest), a non-image, 3 generated images."""
    root = tmp_path_factory.mktemp("beam")
    rng = np.random.default_rng(7)
    train = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(N_TRAIN)]
    for i, image in enumerate(train):
        _save(root / "train" / f"t{i:02d}.png", image)
    _save(root / "train" / "sub" / "wide.png", rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    (root / "train" / "notes.txt").write_text("not an image\n")
    _save(root / "gen" / "g_copy.png", train[5])
    for i in range(2):
        _save(root / "gen" / f"g{i}.png", rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    return {"root": root, "train": root / "train", "gen": root / "gen"}


@pytest.fixture(scope="module")
def in_process(data) -> Path:
    """The reference: a purely in-process ``analyze`` of the same images."""
    out = data["root"] / "in-process"
    analyze(data["train"], out, generated=data["gen"], options=OPTIONS)
    return out


def _assert_same_features(run: Path, reference: Path) -> None:
    """Same ids in the same rows, and features equal within float tolerance (see test body)."""
    for layer in LAYERS:
        ids, features = FeatureStore(run / "features", "float32").load("training", layer)
        ref_ids, expected = FeatureStore(reference / "features", "float32").load("training", layer)
        assert ids == ref_ids
        # Bit-identical on the development machine (both modes), but Beam batches other images together
        # than the in-process run, and TensorFlow's CPU kernels may then round differently in the last
        # bits elsewhere: the tolerance tests/test_features.py allows across batch sizes.
        np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def _assert_analyze_reuses(data: dict, run: Path, reference: Path) -> None:
    extractor = Extractor(weights="none", input_size=SIZE, layers=LAYERS)
    result = analyze(data["train"], run, generated=data["gen"], options=OPTIONS, extractor=extractor)
    assert result.embedded == {"training": 0, "generated": 3}  # no training image embedded a second time
    assert extractor.embedded == 3
    for layer in LAYERS:
        _assert_same_neighbours(run, reference, layer)


def _assert_same_neighbours(run: Path, reference: Path, layer: str) -> None:
    """The same neighbour ids in the same order, scores within float tolerance, and the planted copy first."""
    found, expected = (load_neighbors(folder / "neighbors" / f"{layer}.json") for folder in (run, reference))
    assert {g: [e["id"] for e in found[g]] for g in found} == {g: [e["id"] for e in expected[g]] for g in expected}
    for g in expected:
        np.testing.assert_allclose([e["score"] for e in found[g]], [e["score"] for e in expected[g]], atol=1e-4)
    assert found["g_copy.png"][0]["id"] == "t05.png"


def test_direct_runner_fills_the_store_that_analyze_reuses(data, in_process, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = embed_on_beam(data["train"], run, options=OPTIONS, progress=False)
    assert (result.used, result.skipped, result.embedded, result.stored) == (N_TRAIN + 1, 1, N_TRAIN + 1, N_TRAIN + 1)
    assert not list((run / "features").glob(".beam-*"))  # the staged shards are gone once stored
    _assert_same_features(run, in_process)
    lines = (in_process / "files.csv").read_text().splitlines(keepends=True)
    assert (run / "files.csv").read_text() == "".join(line for line in lines if not line.startswith("generated,"))
    _assert_analyze_reuses(data, run, in_process)

    again = embed_on_beam(data["train"], run, options=OPTIONS, progress=False)
    assert (again.used, again.embedded, again.stored) == (N_TRAIN + 1, 0, 0)  # all in the store already


@pytest.mark.slow  # two worker processes, each importing TensorFlow: about 18 s on 2 cores
def test_multi_processing_workers_give_the_same_store(data, in_process, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = embed_on_beam(data["train"], run, options=OPTIONS, pipeline_args=MULTI, progress=False)
    assert (result.embedded, result.stored) == (N_TRAIN + 1, N_TRAIN + 1)
    _assert_same_features(run, in_process)
    _assert_analyze_reuses(data, run, in_process)


def test_bad_files_get_the_in_process_reasons(bad_images, tmp_path: Path) -> None:
    folder, outcomes = bad_images()
    result = embed_on_beam(folder, tmp_path / "run", options=OPTIONS, progress=False)
    expected = files_csv([scan_set("training", folder, SIZE, progress=False)])
    assert (tmp_path / "run" / "files.csv").read_text() == expected  # every row and reason, in folder order
    bad = sum(reason is not None for reason in outcomes.values())
    assert result.skipped == bad and result.used == len(outcomes) - bad
    ids, _ = FeatureStore(tmp_path / "run" / "features", "float32").load("training", "block5_pool")
    assert sorted(ids) == sorted(ident for ident, reason in outcomes.items() if reason is None)


def test_prepared_shards_fill_the_store_too(data, in_process, tmp_path: Path) -> None:
    from novelty.images.records import prepare

    prepared = tmp_path / "prepared"
    prepare(data["train"], prepared, SIZE, "crop", shard_size=5, progress=False)
    run = tmp_path / "run"
    result = embed_on_beam(prepared, run, options=OPTIONS, progress=False)
    assert (result.used, result.skipped, result.embedded) == (N_TRAIN + 1, 1, N_TRAIN + 1)
    assert "skipped by novelty prepare" in (run / "files.csv").read_text()
    extractor = Extractor(weights="none", input_size=SIZE, layers=LAYERS)
    again = analyze(prepared, run, generated=data["gen"], options=OPTIONS, extractor=extractor)
    assert again.embedded == {"training": 0, "generated": 3}
    for layer in LAYERS:
        _assert_same_neighbours(run, in_process, layer)


def test_cli_embed_passes_beam_options_through(data, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["embed", str(data["train"]), "--out", str(out), "--weights", "none", "--input-size", str(SIZE),
            "--layers", "block5_pool", "--direct_num_workers", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"Embedded {N_TRAIN + 1} images on DirectRunner ({N_TRAIN + 1} usable training images" in result.output
    assert "1 files skipped" in result.output
    bad = CliRunner().invoke(main, ["embed", str(data["train"]), "--out", str(out), "--runner", "DaskRunner"])
    assert bad.exit_code == 2 and "DaskRunner" in bad.output and "Traceback" not in bad.output


def test_bad_requests_are_one_line_errors(data, tmp_path: Path) -> None:
    with pytest.raises(NoveltyError, match="image folder not found"):
        embed_on_beam(tmp_path / "absent", tmp_path / "run", options=OPTIONS)
    with pytest.raises(NoveltyError, match="must not lie inside the image folder"):
        embed_on_beam(data["train"], data["train"] / "run", options=OPTIONS)
    with pytest.raises(NoveltyError, match="unknown Beam runner 'DaskRunner'; must be one of: DirectRunner"):
        embed_on_beam(data["train"], tmp_path / "run", options=OPTIONS, runner="DaskRunner")
    with pytest.raises(NoveltyError, match="unknown Beam pipeline option: --no_such_flag"):
        embed_on_beam(data["train"], tmp_path / "run", options=OPTIONS, pipeline_args=["--no_such_flag", "3"])
    with pytest.raises(NoveltyError, match="invalid Beam pipeline option: argument --direct_running_mode: "
                                           "invalid choice: 'bogus'"):
        embed_on_beam(data["train"], tmp_path / "run", options=OPTIONS,
                      pipeline_args=["--direct_running_mode", "bogus"])
    assert not (tmp_path / "run").exists()  # refused before any work


def test_importing_the_cli_imports_neither_beam_nor_tensorflow() -> None:
    code = ("import sys, novelty, novelty.cli, novelty.embed.runners, novelty.embed.shards; "
            "print(sorted(m for m in ('apache_beam', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
