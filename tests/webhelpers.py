"""Helpers for the web demo and export tests (and benchmarks/bench_web.py): a fixture run folder with
planted answers, a stand-in feature extractor, a live uvicorn server, the one error shape, Chromium.

The fixture run (:func:`make_run`) is tiny and seeded. Planted answers:

- generated ``g000.png`` is a byte copy of training ``t003.png``: similarity 1 at both layers, verdict
  "copy", ``identical_kind`` "same file"; every other sample is "novel" except
- generated ``g001.png``, a copy of ``dup/a.png``; ``dup/a.png`` / ``dup/b.png`` are identical files
  (duplicate group "1"): its neighbour lists show them as ONE tile counted x2;
- training ``outlier.png`` is the outlier, ``blank.png`` carries the pixel flag ``is_blank``;
- ids with a folder and with spaces/unicode exist (``sub/deep/t010.png``, ``ünï code.png``).

:class:`StubExtractor` makes cheap deterministic features (a 4x4 thumbnail for block5_pool, colour
histograms for block1_pool), so queries run end to end without TensorFlow.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from novelty.curate.curation import Outliers
from novelty.embed.featurestore import FeatureStore
from novelty.files import sha256_file
from novelty.judge import modes
from novelty.run import tables
from novelty.search.neighbors import save_neighbors, top_k

LAYERS = ("block1_pool", "block5_pool")
SIZE = 32
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


class StubExtractor:
    """Extractor stand-in: ``layers``, ``params(layer)``, ``embed(images, batch_size, progress)``."""

    layers = LAYERS
    input_size = SIZE

    def params(self, layer: str) -> dict:
        return {"weights_sha256": "stub", "preprocess": "caffe", "input_size": SIZE, "layer": layer,
                "block1_reduce": None}

    def embed(self, images: np.ndarray, batch_size: int = 32, progress: bool = False,
              desc: str = "") -> dict[str, np.ndarray]:
        images = np.asarray(images, np.float32)
        n = len(images)
        small = images.reshape(n, 4, SIZE // 4, 4, SIZE // 4, 3).mean(axis=(2, 4)).reshape(n, -1)
        bins = np.stack([np.stack([np.histogram(img[..., c], bins=8, range=(0, 256))[0] for c in range(3)])
                         for img in images]).reshape(n, -1).astype(np.float32)
        return {"block1_pool": bins + 1.0, "block5_pool": small + 1.0}


def _pattern(rng: np.random.Generator) -> np.ndarray:
    """A random blocky colour image, distinct enough for both stub layers."""
    base = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
    img = np.kron(base, np.ones((SIZE // 4, SIZE // 4, 1), np.uint8))
    return np.clip(img.astype(np.int16) + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)


def _png(arr: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class FixtureRun:
    root: Path
    train_dir: Path
    generated_dir: Path
    generated_ids: list[str]
    training_ids: list[str]

    def plain_sample(self) -> str:
        """A generated id with no duplicate training image in its neighbour lists (24 distinct tiles)."""
        lists = [json.loads((self.root / "neighbors" / f"{layer}.json").read_text()) for layer in LAYERS]
        for ident in self.generated_ids:
            if all(not n["id"].startswith("dup/") for table in lists for n in table[ident]):
                return ident
        raise AssertionError("every sample lists a duplicate; make the fixture bigger")


ODD_TRAINING_ID, ODD_GENERATED_ID = "t0\n04 #1?%&+.png", "g\n003 #?%.png"  # with odd_ids=True


def make_run(base: Path, *, n_generated: int = 30, n_training: int = 60, k: int = 24,
             verdicts: bool = True, curation: bool = True, features: bool = True, seed: int = 0,
             odd_ids: bool = False) -> FixtureRun:
    """Write image folders and a run folder under ``base`` (see the module docstring for the answers).

    ``odd_ids``: training ``t004.png`` and generated ``g003.png`` are named ``ODD_TRAINING_ID`` and
    ``ODD_GENERATED_ID`` instead, names with a newline and the characters URLs treat specially."""
    rng = np.random.default_rng(seed)
    train_dir, generated_dir, root = base / "train", base / "generated", base / "run"
    for folder in (train_dir, generated_dir, root / "neighbors", root / "plots"):
        folder.mkdir(parents=True, exist_ok=True)

    training_files: dict[str, bytes] = {}
    for i in range(n_training - 5):
        name = f"sub/deep/t{i:03d}.png" if i == 10 else f"t{i:03d}.png"
        training_files[name] = _png(_pattern(rng))
    duplicate = _png(_pattern(rng))
    training_files["dup/a.png"] = duplicate
    training_files["dup/b.png"] = duplicate
    training_files["outlier.png"] = _png(np.full((SIZE, SIZE, 3), (250, 0, 250), np.uint8))
    training_files["blank.png"] = _png(np.full((SIZE, SIZE, 3), 255, np.uint8))
    training_files["ünï code.png"] = _png(_pattern(rng))
    generated_files: dict[str, bytes] = {"g000.png": training_files["t003.png"], "g001.png": duplicate}
    for i in range(2, n_generated):
        generated_files[f"g{i:03d}.png"] = _png(_pattern(rng))
    if odd_ids:
        training_files[ODD_TRAINING_ID] = training_files.pop("t004.png")
        generated_files[ODD_GENERATED_ID] = generated_files.pop("g003.png")
    for folder, files in ((train_dir, training_files), (generated_dir, generated_files)):
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)

    training_ids, generated_ids = sorted(training_files), sorted(generated_files)
    stub = StubExtractor()

    def load(folder: Path, ids: list[str]) -> np.ndarray:
        return np.stack([np.asarray(Image.open(folder / i).convert("RGB")) for i in ids])

    train_features = stub.embed(load(train_dir, training_ids))
    generated_features = stub.embed(load(generated_dir, generated_ids))
    nearest: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for layer in LAYERS:
        indices, sims = top_k(generated_features[layer], train_features[layer], k)
        nearest[layer] = (indices, sims)
        save_neighbors(root / "neighbors" / f"{layer}.json", generated_ids, training_ids, indices, sims)
        if features:
            store = FeatureStore(root / "features", "float32")
            store.save("training", layer, training_ids, train_features[layer], stub.params(layer))
            store.save("generated", layer, generated_ids, generated_features[layer], stub.params(layer))

    files_rows = [{"set": s, "id": i, "sha256": sha256_file(folder / i), "width": SIZE, "height": SIZE,
                   "mode": "RGB", "status": "used", "reason": None}
                  for s, folder, ids in (("training", train_dir, training_ids),
                                         ("generated", generated_dir, generated_ids)) for i in ids]
    tables.write_table(root / "files.csv", tables.FILES, files_rows)
    run = {"version": "0.1.0", "created": "2024-01-01T00:00:00+00:00", "train_dir": str(train_dir),
           "generated_dir": str(generated_dir), "checkpoint": None, "layers": list(LAYERS), "k": k,
           "weights": {"requested": "none", "source": "random", "sha256": "stub", "seed": 0},
           "preprocess": "caffe", "input_size": SIZE, "fit": "crop", "index": "exact",
           "features": {"block1_reduce": None},
           "counts": {"training": len(training_ids), "generated": len(generated_ids), "skipped": 0},
           "timings": {}, "versions": {}}
    (root / "run.json").write_text(json.dumps(run, indent=2), encoding="utf-8")

    # samples.csv, training.csv and summary.json in the format novelty.judge.verdicts writes
    heldout = {layer: np.linspace(0.5, 0.99, 60) for layer in LAYERS}  # held-out nearest similarities
    if verdicts:
        rows = []
        for g, ident in enumerate(generated_ids):
            shares = {layer: float(np.mean(heldout[layer] >= nearest[layer][1][g, 0])) for layer in LAYERS}
            copy_p = (1 + 60 * min(shares.values())) / 61
            top = float(nearest["block5_pool"][1][g, 0])
            row = {"id": ident, "verdict": "copy" if top > 0.9999 else ("borderline" if ident == "g002.png" else "novel"),
                   "copy_score": round(1 - copy_p, 6), "is_copy": top > 0.9999,
                   "copy_p_value": round(copy_p, 6), "layer_agreement": 0.25, "duplicate_group": None,
                   "identical_id": training_ids[int(nearest["block5_pool"][0][g, 0])] if top > 0.9999 else None,
                   "identical_kind": "same file" if top > 0.9999 else None}
            for layer in LAYERS:
                indices, sims = nearest[layer]
                row[f"{layer}_nearest_id"] = training_ids[int(indices[g, 0])]
                row[f"{layer}_similarity"] = round(float(sims[g, 0]), 6)
                row[f"{layer}_heldout_share"] = round(shares[layer], 6)
                row[f"{layer}_mirrored"] = False
                row[f"{layer}_p_value"] = round(copy_p, 6)
            crop = ident == "g002.png"  # the aligned pixel match: g002 is a mirrored crop to 80%
            row |= {"aligned_nearest_id": row["block5_pool_nearest_id"],
                    "aligned_similarity": 1.0 if top > 0.9999 else (0.93 if crop else 0.3),
                    "aligned_mirrored": crop, "aligned_heldout_share": 0.0 if crop else 0.5,
                    "aligned_p_value": round(1 / 61 if crop else 0.5, 6), "aligned_scale": 0.8 if crop else 1.0,
                    "aligned_crop": "sample"}
            rows.append(row)
        tables.write_table(root / "samples.csv", tables.SAMPLES, rows)
    if curation:
        counts = {i: 0 for i in training_ids}
        for layer in LAYERS:
            for row in nearest[layer][0]:
                for j in row:
                    counts[training_ids[int(j)]] += 1
        rows = [{"id": i, "outlier_score": round(4.2 if i == "outlier.png" else 0.1 + 0.01 * n, 6),
                 "is_outlier": i == "outlier.png",
                 "duplicate_group": 1 if i.startswith("dup/") else None,
                 "duplicate_count": 2 if i.startswith("dup/") else None,
                 "hub_score": 1.0, "is_hub": False, "times_retrieved": counts[i],
                 "retrieval_hub_score": round(counts[i] / 24, 6),
                 "is_retrieval_hub": counts[i] >= 40, "split": "reference",
                 "near_blank_score": 1.0 if i == "blank.png" else 0.1,
                 "is_near_blank": i == "blank.png"} for n, i in enumerate(training_ids)]
        tables.write_table(root / "training.csv", tables.TRAINING, rows)
        calibration = {"false_positive_rate": 0.01, "n_heldout": 60,
                       "thresholds": {layer: 0.99 for layer in LAYERS}}
        calibration |= {layer: {"threshold": 0.99, "quantiles": [round(float(q), 6) for q in np.quantile(
            heldout[layer], np.linspace(0, 1, 101))]} for layer in LAYERS}
        summary = {"format": tables.SUMMARY_FORMAT, "counts": {"training": len(training_ids), "generated": len(generated_ids)},
                   "copies": {"count": 2, "n": len(generated_ids), "rate": 2 / len(generated_ids),
                              "exact_interval": [0.01, 0.2], "confidence": 0.95, "borderline": 1},
                   "calibration": calibration, "copying_test": {layer: {"c_t": -1.25} for layer in LAYERS},
                   "curation": {"outliers": 1, "outlier_rule": Outliers(np.zeros(1), np.zeros(1, bool), (5,)).rule()},
                   "warnings": ["a planted warning"],
                   "modes": _modes(training_ids, generated_ids)}
        (root / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
        (root / "plots" / "similarity.png").write_bytes(_png(np.full((40, 60, 3), 120, np.uint8)))
    return FixtureRun(root, train_dir, generated_dir, generated_ids, training_ids)


def _modes(training_ids: list[str], generated_ids: list[str]) -> dict:
    """Three modes of a third of the training set each; every sample in the first: it is
    over-produced and the other two are missed (modes.mode_report on planted assignments)."""
    t_modes, g_modes = np.arange(len(training_ids)) % 3, np.zeros(len(generated_ids), dtype=int)
    report = modes.mode_report(3, {2: -10.0, 3: -12.0, 4: -11.0},
                               (t_modes, -np.arange(len(training_ids), dtype=float), training_ids),
                               (g_modes, -np.arange(len(generated_ids), dtype=float), generated_ids))
    return report.summary()


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The one error shape: ``{"error": {"status", "code", "message"}}`` with the right status."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"status", "code", "message"} <= set(error) <= {"status", "code", "message", "details"}, error
    assert error["status"] == status
    assert isinstance(error["message"], str) and error["message"] and "\n" not in error["message"]
    assert "Traceback" not in response.text
    if code is not None:
        assert error["code"] == code, error
    return error


def png_bytes(arr: np.ndarray) -> bytes:
    return _png(arr)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def live_server(app, timeout: float = 20.0):
    """Run ``app`` with a real uvicorn server on 127.0.0.1 in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: install Debian's chromium (make browser) to run the browser tests"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is missing: pip install playwright (no `playwright install`)"
    return None


def artifact_dir(name: str) -> Path:
    folder = ARTIFACTS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class ConditionalRun:
    """A conditional (pix2pix) run folder made by the real pipeline: ``root``; its pair folder, input
    folder (the held-out inputs), the held-out pair ids and the (untrained, seeded) checkpoint."""

    root: Path
    pairs: Path
    inputs: Path
    held: list[str]
    checkpoint: Path


def make_conditional_run(base: Path, *, size: int = SIZE, n_pairs: int = 40, n_held: int = 8,
                         weights: str = "none", base_filters: int = 8) -> ConditionalRun:
    """Edge -> mask pairs of the embedded masks (``A/`` Canny edges, ``B/`` masks), a pix2pix checkpoint
    built untrained (seeded) with ``holdout.json`` naming ``n_held`` pairs, and ``novelty analyze --inputs``
    of its outputs for the held-out inputs (``weights``; random VGG by default; ``base_filters``: the
    U-Net's width)."""
    import keras

    from novelty.analysis import AnalyzeOptions
    from novelty.conditional import analyze_conditional
    from novelty.files import write_json
    from novelty.gan.dcgan import GENERATOR_FILE
    from novelty.gan.pix2pix import Pix2PixConfig, build_unet
    from novelty.gan.pix2pix_family import HOLDOUT_FILE
    from novelty.images.decode import save_png
    from novelty.judge.planted import edge_pairs

    masks = Path(__file__).resolve().parents[1] / "data" / "masks" / "images"
    edges, targets, ids = edge_pairs(masks, size, n_pairs)
    names = [f"{Path(i).stem}.png" for i in ids]
    for name, edge, target in zip(names, edges, targets, strict=True):
        save_png(edge, base / "pairs" / "A" / name)
        save_png(target, base / "pairs" / "B" / name)
    held = names[::n_pairs // n_held][:n_held]
    for name in held:
        save_png(edges[names.index(name)], base / "inputs" / name)
    checkpoint = base / "p2p"
    checkpoint.mkdir(parents=True, exist_ok=True)
    config = Pix2PixConfig(image_size=size, base_filters=base_filters)
    config.save(checkpoint)
    keras.utils.set_random_seed(0)
    build_unet(config).save_weights(checkpoint / GENERATOR_FILE)
    write_json(checkpoint / HOLDOUT_FILE, {"fraction": n_held / n_pairs, "seed": 0, "source": str(base / "pairs"),
                                           "count": len(held), "ids": held})
    options = AnalyzeOptions(weights=weights, input_size=max(size, 32), holdout_fraction=0.5, fpr=0.3, align=False,
                             mirror=False, progress=False)
    analyze_conditional(base / "pairs", base / "run", inputs=base / "inputs", checkpoint=checkpoint, options=options)
    return ConditionalRun(base / "run", base / "pairs", base / "inputs", held, checkpoint)
