"""judge_run on a planted run folder: memorised copies flagged, unseen samples not, files written."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from novelty.embed.featurestore import FeatureStore
from novelty.errors import NoveltyError
from novelty.files import sha256_file, write_json
from novelty.judge.verdicts import assess, judge_run, layer_agreement
from novelty.search.neighbors import save_neighbors, top_k

N_TRAIN = 1000
LAYERS = ("block1_pool", "block5_pool")


def _features(rng: np.random.Generator, n: int, centres: np.ndarray) -> np.ndarray:
    return np.abs(centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, centres.shape[1])))


def _layers(x: np.ndarray, mix: np.ndarray) -> dict[str, np.ndarray]:
    return {"block1_pool": x, "block5_pool": np.sqrt(x) @ mix}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A run folder: 1,000 training images (3 near-duplicate pairs, 1 outlier), 40 generated samples.

    Generated 0-2 copy reference-side images, 3 copies a training image whatever its side, 4-39 are
    fresh draws of the training distribution.
    """
    root = tmp_path_factory.mktemp("planted")
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((15, 32)) * 2
    mix = np.abs(rng.standard_normal((32, 24)))
    train = _features(rng, N_TRAIN, centres)
    train[[11, 21, 31]] = train[[10, 20, 30]] * 1.0001
    train[-1] = 0.0
    train[-1, :3] = 40.0
    fresh = _features(rng, 36, centres)
    generated = np.vstack([train[[100, 200, 300]] * 1.0002, train[[500]] + 1e-3, fresh])
    train_ids = [f"t{i:04d}.png" for i in range(N_TRAIN)]
    gen_ids = [f"s{i:02d}.png" for i in range(len(generated))]
    t_layers, g_layers = _layers(train, mix), _layers(generated, mix)
    store = FeatureStore(root / "run" / "features", "float32")
    for layer in LAYERS:
        store.save("training", layer, train_ids, t_layers[layer], {"layer": layer})
        store.save("generated", layer, gen_ids, g_layers[layer], {"layer": layer})
        idx, sims = top_k(g_layers[layer], t_layers[layer], 24)
        save_neighbors(root / "run" / "neighbors" / f"{layer}.json", gen_ids, train_ids, idx, sims)
    train_dir = root / "train"
    train_dir.mkdir()
    for i, tid in enumerate(train_ids):  # tiny images for the pixel flags: one blank, one 3:1
        if i == 7:
            img = np.full((16, 16, 3), 255, np.uint8)
        elif i == 8:
            img = rng.integers(0, 256, (8, 24, 3), dtype=np.uint8)
        else:
            img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(img).save(train_dir / tid)
    write_json(root / "run" / "run.json", {"layers": list(LAYERS), "k": 24, "seed": 3,
                                           "train_dir": str(train_dir)})
    result = judge_run(root / "run", fpr=0.02, mirror=False, progress=False)
    return root / "run", result


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_memorised_copies_are_flagged_and_unseen_samples_are_not(planted):
    run, result = planted
    rows = _rows(run / "samples.csv")
    assert [r["is_copy"] for r in rows[:4]] == ["true"] * 4
    assert [r["verdict"] for r in rows[:4]] == ["copy"] * 4
    assert sum(r["is_copy"] == "true" for r in rows[4:]) <= 2  # 36 fresh samples at 2%
    assert rows[0]["block1_pool_nearest_id"] == "t0100.png" and rows[3]["block5_pool_nearest_id"] == "t0500.png"
    assert float(rows[0]["copy_score"]) > 0.99 and float(rows[0]["block1_pool_heldout_share"]) == 0.0
    expected = {"id", "verdict", "copy_score", "is_copy", "copy_p_value", "layer_agreement", "duplicate_group",
                "identical_id", "identical_kind", "mode"}
    for layer in LAYERS:
        expected |= {f"{layer}_{c}" for c in ("nearest_id", "similarity", "mirrored", "heldout_share", "p_value")}
    assert set(rows[0]) == expected
    assert result.summary["copies"]["count"] >= 4


def test_training_table_outlier_duplicates_and_flags(planted):
    run, _ = planted
    rows = {r["id"]: r for r in _rows(run / "training.csv")}
    assert len(rows) == N_TRAIN
    ranked = sorted(rows.values(), key=lambda r: -float(r["outlier_score"]))
    assert ranked[0]["id"] == f"t{N_TRAIN - 1:04d}.png" and ranked[0]["is_outlier"] == "true"
    for a, b in ((10, 11), (20, 21), (30, 31)):
        group = rows[f"t{a:04d}.png"]["duplicate_group"]
        assert group and group == rows[f"t{b:04d}.png"]["duplicate_group"]
    assert sum(bool(r["duplicate_group"]) for r in rows.values()) == 6
    assert rows["t0007.png"]["is_near_blank"] == "true" and rows["t0008.png"]["is_odd_aspect_ratio"] == "true"
    assert rows["t0009.png"]["is_near_blank"] == "false"
    assert int(rows["t0100.png"]["times_retrieved"]) >= 2
    sides = {r["split"] for r in (rows["t0010.png"], rows["t0011.png"])}
    assert len(sides) == 1  # a duplicate group never straddles the split


def test_modes_are_columns_of_both_tables_and_a_summary_section(planted):
    run, _ = planted
    summary = json.loads((run / "summary.json").read_text())["modes"]
    training, samples = _rows(run / "training.csv"), _rows(run / "samples.csv")
    k = summary["k"]
    assert 2 <= k <= 25 and str(k) in summary["bic"] and min(summary["bic"], key=summary["bic"].get) == str(k)
    assert {int(r["mode"]) for r in training} == set(range(1, k + 1))
    assert {int(r["mode"]) for r in samples} <= set(range(1, k + 1))
    assert sum(m["training_count"] for m in summary["modes"]) == len(training) == 1000
    for m in summary["modes"]:
        assert m["generated_count"] == sum(int(r["mode"]) == m["mode"] for r in samples)
    # 40 samples from the training distribution: no mode can be shown missed
    assert summary["counts"]["missed"] == 0


def test_summary_records_settings_and_statistics(planted):
    run, result = planted
    summary = json.loads((run / "summary.json").read_text())
    assert summary == json.loads(json.dumps(result.summary))
    assert summary["settings"]["seed"] == 3 and summary["settings"]["holdout_fraction"] == 0.1
    assert summary["settings"]["false_positive_rate"] == 0.02
    assert summary["counts"] == {"training": 1000, "reference": 900, "heldout": 100, "generated": 40}
    copies = summary["copies"]
    assert copies["exact_interval"][0] <= copies["rate"] <= copies["exact_interval"][1]
    assert set(summary["prdc"]) == set(LAYERS) and set(summary["copying_test"]) == set(LAYERS)
    assert any("PRDC" in w for w in summary["warnings"])  # 40 samples: the numbers carry a warning
    for layer in LAYERS:
        assert len(summary["calibration"][layer]["quantiles"]) == 101
        assert summary["calibration"][layer]["threshold"] is not None
    assert summary["curation"]["duplicate_groups"] == 3 and summary["curation"]["outliers"] >= 1
    assert summary["curation"]["self_search"] == {layer: "exact" for layer in LAYERS}  # 32 and 24 values: no sketch
    rule = summary["curation"]["outlier_rule"]
    assert rule.startswith("max(z_knn, (z_knn + z_T2) / 2) above 2.5") and "Hotelling T^2 on 32" in rule
    assert "k = 5, 10, 20, 40, 80, and z_T2" in rule  # up to 10% of 1,000
    assert summary["settings"]["outlier_scales"] == [5, 10, 20, 40, 80]
    assert summary["curation"]["flags"]["near_blank"] == 1
    assert set(summary["plots"]) == {"similarity_block1_pool.png", "similarity_block5_pool.png",
                                     "copy_rate.png", "outlier_scores.png", "copying_cells.png",
                                     "closest_heldout_pairs.png", "modes.png"}
    closest = summary["calibration"]["closest_heldout"]
    assert len(closest) == 8
    p_values = [pair["copy_p_value"] for pair in closest]
    assert p_values == sorted(p_values) and p_values[0] < p_values[-1] <= 1
    groups = {r["id"]: r["duplicate_group"] for r in _rows(run / "training.csv")}
    for pair in closest:  # a held-out image is never paired with itself or a member of its own group
        assert pair["heldout_id"] != pair["nearest_id"] and pair["layer"] in LAYERS
        assert set(pair["similarity"]) == set(LAYERS)
        assert not groups[pair["heldout_id"]] or groups[pair["heldout_id"]] != groups[pair["nearest_id"]]
    for name in summary["plots"]:
        assert (run / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_evidence_json_is_written_and_a_stale_one_goes(planted):
    """The web app groups neighbours from neighbors/ and training.csv: evidence.json was read by nothing."""
    run, result = planted
    assert not (run / "evidence.json").exists()
    assert {p.name for p in result.files} >= {"samples.csv", "training.csv", "summary.json"}
    (run / "evidence.json").write_text("{}")
    judge_run(run, fpr=0.02, mirror=False, pixel_flags=False, plots=False, progress=False, cache=False)
    assert not (run / "evidence.json").exists()


def test_layer_agreement_is_jaccard():
    lists = {"x": np.array([[1, 2, 3, 4]]), "y": np.array([[3, 4, 5, 6]])}
    assert layer_agreement(lists)[0] == pytest.approx(2 / 6)
    assert np.isnan(layer_agreement({"x": lists["x"]})[0])


def test_assess_rejects_mismatched_input():
    x = np.ones((10, 4))
    with pytest.raises(NoveltyError, match="same layers"):
        assess({"a": x}, {"b": x}, [str(i) for i in range(10)], [str(i) for i in range(10)])
    with pytest.raises(NoveltyError, match="training rows"):
        assess({"a": x}, {"a": x}, [str(i) for i in range(9)], [str(i) for i in range(10)])


def test_judge_run_needs_a_run_folder(tmp_path):
    with pytest.raises(NoveltyError, match="not a run folder"):
        judge_run(tmp_path)


def _pixel_run(tmp_path):
    """A run folder with features from a pixel stand-in extractor; sample 0 is training image 5
    flipped left-right, sample 1 is training image 7. Returns (run folder, extractor, generated folder)."""
    from test_validate import PixelExtractor

    from novelty.images.decode import load

    rng = np.random.default_rng(5)
    train_dir, gen_dir = tmp_path / "train", tmp_path / "gen"
    train_dir.mkdir()
    gen_dir.mkdir()
    train_imgs = rng.integers(0, 256, (400, 32, 32, 3), dtype=np.uint8)
    for i, img in enumerate(train_imgs):
        Image.fromarray(img).save(train_dir / f"t{i:03d}.png")
    gen_imgs = [train_imgs[5][:, ::-1], train_imgs[7], *rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)]
    for i, img in enumerate(gen_imgs):
        Image.fromarray(np.ascontiguousarray(img)).save(gen_dir / f"s{i}.png")
    fake = PixelExtractor()
    store = FeatureStore(tmp_path / "run" / "features", "float32")
    for set_name, folder in (("training", train_dir), ("generated", gen_dir)):
        ids = sorted(p.name for p in folder.iterdir())
        feats = fake.embed(np.stack([load(folder / i, 32) for i in ids]))
        for layer in fake.layers:
            store.save(set_name, layer, ids, feats[layer], fake.params(layer), [sha256_file(folder / i) for i in ids])
    write_json(tmp_path / "run" / "run.json", {"layers": list(fake.layers), "k": 10, "seed": 0, "input_size": 32,
                                               "fit": "crop", "train_dir": str(train_dir),
                                               "generated_dir": str(gen_dir)})
    return tmp_path / "run", fake, gen_dir


def test_mirror_search_catches_a_mirrored_copy(tmp_path):
    run, fake, gen_dir = _pixel_run(tmp_path)
    plain = judge_run(run, fpr=0.05, mirror=False, pixel_flags=False, plots=False, progress=False)
    rows = _rows(run / "samples.csv")
    assert rows[0]["is_copy"] == "false" and rows[1]["is_copy"] == "true"
    assert plain.summary["settings"]["mirror_search"] is False
    mirrored = judge_run(run, fpr=0.05, extractor=fake, pixel_flags=False, plots=False, progress=False)
    rows = _rows(run / "samples.csv")
    assert rows[0]["is_copy"] == "true" and rows[0]["fine_mirrored"] == "true"
    assert rows[0]["fine_nearest_id"] == "t005.png" and rows[1]["fine_mirrored"] == "false"
    assert sum(r["is_copy"] == "true" for r in rows[2:]) <= 1  # fresh noise at 5%, 40 held out
    assert mirrored.summary["settings"]["mirror_search"] is True
    # the image gone and its mirrored features not cached: judged without the mirror search, told why
    (gen_dir / "s0.png").unlink()
    shutil.rmtree(run / "features" / "generated_mirrored")
    fallback = judge_run(run, fpr=0.05, extractor=fake, pixel_flags=False, plots=False, progress=False, cache=False)
    assert any(w.startswith("mirror search off") for w in fallback.summary["warnings"])


def test_a_rerun_reuses_the_verdicts_and_the_mirrored_features(tmp_path):
    run, fake, _ = _pixel_run(tmp_path)
    calls = []
    embed_batches = fake.embed_batches

    def counting(images, *args, **kwargs):
        calls.append(len(images))
        return embed_batches(images, *args, **kwargs)

    fake.embed_batches = counting
    first = judge_run(run, fpr=0.05, extractor=fake, pixel_flags=False, plots=False, progress=False)
    embedded = sum(calls)
    assert not first.cached and embedded == 5 + first.summary["counts"]["heldout"]  # samples, held-out, flipped
    stamp = (run / "samples.csv").stat().st_mtime_ns
    again = judge_run(run, fpr=0.05, extractor=fake, pixel_flags=False, plots=False, progress=False)
    assert again.cached and sum(calls) == embedded and (run / "samples.csv").stat().st_mtime_ns == stamp
    assert again.summary["copies"] == first.summary["copies"]
    # another setting: recomputed, but the mirrored features come from the feature store
    other = judge_run(run, fpr=0.1, extractor=fake, pixel_flags=False, plots=False, progress=False)
    assert not other.cached and sum(calls) == embedded
    assert other.summary["settings"]["false_positive_rate"] == 0.1
    # a verdict file gone: recomputed
    (run / "training.csv").unlink()
    assert not judge_run(run, fpr=0.1, extractor=fake, pixel_flags=False, plots=False, progress=False).cached
    assert (run / "training.csv").is_file()


def test_mirror_duplicates_do_not_inflate_the_calibration():
    """30 training images are mirror images of 30 others; held-out ones must not match their twin."""
    from test_validate import PixelExtractor

    from novelty.judge.verdicts import calibrate_training
    from novelty.search.neighbors import normalize

    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8)
    images[1:60:2] = images[0:60:2][:, :, ::-1]
    fake = PixelExtractor()
    feats = {layer: normalize(x) for layer, x in fake.embed(images).items()}

    def mirrored(rows):
        return fake.embed(np.ascontiguousarray(images[rows][:, :, ::-1]))

    tc = calibrate_training(feats, k=10, holdout_fraction=0.3, fpr=0.05, seed=0, mirrored=mirrored)
    twins = np.isin(tc.heldout, np.arange(60))
    assert twins.sum() >= 5  # some held-out images have their mirror twin in the training set
    for layer in fake.layers:
        assert tc.heldout_nearest[layer][1].max() < 0.99


def _cropped_copy_run(tmp_path):
    """A run folder whose features cannot see a crop: 400 training pictures in 100 clusters of 4 in
    feature space; sample 0 is training picture 5 cropped to 80% and scaled back, with the features of a
    fresh member of its cluster (as close as its cluster mates are); samples 1-4 are new pictures."""
    from test_alignment import crop, texture

    rng = np.random.default_rng(8)
    train_dir, gen_dir = tmp_path / "train", tmp_path / "gen"
    train_dir.mkdir()
    gen_dir.mkdir()
    train_imgs = [texture(1000 + i, 32) for i in range(400)]
    for i, img in enumerate(train_imgs):
        Image.fromarray(img).save(train_dir / f"t{i:03d}.png")
    gen_imgs = [crop(train_imgs[5], 0.8, 3, 2), *(texture(5000 + i, 32) for i in range(4))]
    for i, img in enumerate(gen_imgs):
        Image.fromarray(img).save(gen_dir / f"s{i}.png")
    centres = rng.standard_normal((100, 16)) * 3
    train = centres[np.arange(400) // 4] + rng.standard_normal((400, 16))
    generated = centres[[1, *rng.integers(0, 100, 4)]] + rng.standard_normal((5, 16))
    train_ids, gen_ids = [f"t{i:03d}.png" for i in range(400)], [f"s{i}.png" for i in range(5)]
    store = FeatureStore(tmp_path / "run" / "features", "float32")
    for layer, f in (("a", lambda x: x), ("b", np.abs)):
        store.save("training", layer, train_ids, f(train), {"layer": layer})
        store.save("generated", layer, gen_ids, f(generated), {"layer": layer})
        idx, sims = top_k(f(generated), f(train), 10)
        save_neighbors(tmp_path / "run" / "neighbors" / f"{layer}.json", gen_ids, train_ids, idx, sims)
    write_json(tmp_path / "run" / "run.json", {"layers": ["a", "b"], "k": 10, "seed": 0, "input_size": 32,
                                               "fit": "crop", "train_dir": str(train_dir),
                                               "generated_dir": str(gen_dir)})
    return tmp_path / "run", gen_dir


def test_the_aligned_pixel_match_catches_a_crop_the_features_miss(tmp_path):
    run, gen_dir = _cropped_copy_run(tmp_path)
    options = {"fpr": 0.05, "mirror": False, "pixel_flags": False, "plots": False, "progress": False}
    features_only = judge_run(run, align=False, **options)
    rows = _rows(run / "samples.csv")
    assert rows[0]["is_copy"] == "false" and "aligned_similarity" not in rows[0]
    assert features_only.summary["settings"]["aligned_pixel_match"] is False
    aligned = judge_run(run, **options)
    rows = _rows(run / "samples.csv")
    assert rows[0]["is_copy"] == "true" and rows[0]["aligned_nearest_id"] == "t005.png"
    assert float(rows[0]["aligned_similarity"]) > 0.9 and float(rows[0]["aligned_heldout_share"]) == 0.0
    assert rows[0]["aligned_crop"] == "sample" and float(rows[0]["aligned_scale"]) in (0.8, 0.85)
    assert float(rows[0]["a_p_value"]) > 0.05 and float(rows[0]["b_p_value"]) > 0.05  # the features alone: no
    assert sum(r["is_copy"] == "true" for r in rows[1:]) <= 1
    summary = aligned.summary
    assert summary["settings"]["aligned_pixel_match"] is True
    assert summary["calibration"]["aligned"]["quantiles"][-1] < 0.9  # no held-out picture lines up so well
    # the image folders gone: judged on the features, told why
    shutil.rmtree(gen_dir)
    fallback = judge_run(run, cache=False, **options)
    assert any(w.startswith("aligned pixel match off") for w in fallback.summary["warnings"])
    assert fallback.summary["settings"]["aligned_pixel_match"] is False
