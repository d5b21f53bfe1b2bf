"""`novelty analyze` on the masks against a bare VGG16 forward pass, a cached re-run, and agreements.

    .venv/bin/python benchmarks/bench_analyze.py [--limit 1000 | --full] [--preprocess original]

1. Bare forward pass: the same images (decoded beforehand, not timed), the same weights and layers,
   Keras ``predict_on_batch`` in a loop; the model build is timed with it.
2. ``analyze`` into a fresh run folder, in this process (TensorFlow already imported by step 1),
   without its verdicts stage, which is timed apart (``novelty.judge.verdicts.judge_run``, when present).
   Goal: under 1.25x the forward pass. Times are given per wall clock and per CPU second of this
   process: on a shared machine the wall clock swings with the other jobs, CPU time does not.
3. The same ``novelty analyze`` command again, as a new process: everything cached, the verdicts
   too (``summary.json`` "cache_key"). Goal: under 5 s in all.
4. Top-24 agreement, computed from the float32 features of step 1: float16 storage vs float32, the
   ``--block1-reduce`` reductions (sketch:D, pool:N) vs the exact block1_pool, the run's lists vs float32, and
   (with --full and --preprocess original) the 2018 reference lists.

Needs ../shared/datasets/masks (exits 0 with a message when absent). Default: the first 1,000
training images (about 2 minutes on 2 idle cores); --full uses all 2,989.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from novelty import defaults  # noqa: E402
from novelty.analysis import AnalyzeOptions, analyze  # noqa: E402
from novelty.embed.features import Extractor, preprocess, reduce_block1  # noqa: E402
from novelty.files import read_json  # noqa: E402
from novelty.images.decode import load_folder  # noqa: E402
from novelty.search.neighbors import load_neighbors, top_k  # noqa: E402

MASKS = ROOT.parent / "shared" / "datasets" / "masks"
K = defaults.TOP_K
RATIO_GOAL, RERUN_GOAL = 1.25, 5.0


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of each row of neighbour indices ``a`` (N, k) found in the same row of ``b``."""
    return float(np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a.tolist(), b.tolist(), strict=True)]))


def subset(limit: int | None, folder: Path) -> Path:
    """The first ``limit`` training images as symlinks (ids unchanged), or the folder itself."""
    if limit is None:
        return MASKS / "train"
    target = folder / "train"
    target.mkdir(parents=True)
    for path in sorted((MASKS / "train").iterdir())[:limit]:
        (target / path.name).symlink_to(path)
    return target


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) since ``start``."""
    now = clocks()
    return now[0] - start[0], now[1] - start[1]


def forward(extractor: Extractor, images: np.ndarray, batch_size: int
            ) -> tuple[tuple[float, float], dict[str, np.ndarray]]:
    """(wall, CPU) seconds of a bare Keras forward pass (model build included) and its float32 outputs."""
    import keras

    from novelty.embed.weights import build_vgg16

    start = clocks()
    base = build_vgg16(extractor.weights, extractor.input_size)
    model = keras.Model(base.input, [base.get_layer(name).output for name in extractor.layers])
    outputs: dict[str, list[np.ndarray]] = {layer: [] for layer in extractor.layers}
    for i in range(0, len(images), batch_size):
        for layer, out in zip(extractor.layers, model.predict_on_batch(
                preprocess(images[i:i + batch_size], extractor.preprocess)), strict=True):
            outputs[layer].append(np.asarray(out, np.float32))
    seconds = since(start)
    return seconds, {layer: np.concatenate(parts) for layer, parts in outputs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=1000, help="training images used (default 1000)")
    parser.add_argument("--full", action="store_true", help="all 2,989 training images")
    parser.add_argument("--preprocess", default="original", choices=defaults.PREPROCESS_MODES)
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--batch-size", type=int, default=defaults.EMBED_BATCH_SIZE)
    args = parser.parse_args()
    if not (MASKS / "train").is_dir():
        print(f"skipped: the masks dataset is absent (expected at {MASKS})")
        return
    limit = None if args.full else args.limit
    work = Path(tempfile.mkdtemp(prefix="bench-analyze-"))
    train = subset(limit, work)
    generated = MASKS / "generated"
    options = AnalyzeOptions(weights=args.weights, preprocess=args.preprocess, k=K,
                             batch_size=args.batch_size, progress=False, verdicts=False)
    extractor = Extractor(weights=args.weights, preprocess=args.preprocess, input_size=options.input_size)
    training_images = load_folder(train, options.input_size, progress=False)
    generated_images = load_folder(generated, options.input_size, progress=False)
    images = np.concatenate([training_images.images, generated_images.images])
    n_train = len(training_images.ids)
    print(f"masks: {n_train} training + {len(generated_images.ids)} generated images at "
          f"{options.input_size} px, weights {extractor.weights.source}, preprocess {args.preprocess}")

    forward_s, features = forward(extractor, images, args.batch_size)
    print(f"bare VGG16 forward pass (build + predict): {forward_s[0]:.1f} s wall, {forward_s[1]:.1f} s CPU "
          f"({len(images) / forward_s[0]:.1f} images/s)")

    run = work / "run"
    start = clocks()
    result = analyze(train, run, generated=generated, options=options)
    analyze_s = since(start)
    stages = ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items())
    print(f"analyze without verdicts: {analyze_s[0]:.1f} s wall, {analyze_s[1]:.1f} s CPU ({stages})")
    for label, i in (("wall clock", 0), ("CPU time", 1)):
        ratio = analyze_s[i] / forward_s[i]
        print(f"ratio analyze / forward by {label}: {ratio:.2f} (goal < {RATIO_GOAL}): "
              f"{'met' if ratio < RATIO_GOAL else 'NOT met'}")
    if importlib.util.find_spec("novelty.judge.verdicts") is not None:
        from novelty.judge import verdicts

        start = clocks()
        verdicts.judge_run(run, progress=False)
        verdicts_s = since(start)
        print(f"verdicts stage (novelty.judge.verdicts.judge_run): {verdicts_s[0]:.1f} s wall, {verdicts_s[1]:.1f} s CPU")

    command = [str(Path(sys.executable).with_name("novelty")), "analyze", "--train", str(train),
               "--generated", str(generated), "--out", str(run), "--weights", args.weights,
               "--preprocess", args.preprocess]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    rerun_s = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stderr[-2000:])
        raise SystemExit("cached re-run failed")
    manifest = read_json(run / "run.json")
    stages = ", ".join(f"{k} {v:.1f}" for k, v in manifest["timings"].items())
    print(f"cached re-run (new process, CLI, verdicts included): {rerun_s:.1f} s ({stages}), embedded "
          f"{manifest['embedded']} (goal < {RERUN_GOAL} s): {'met' if rerun_s < RERUN_GOAL else 'NOT met'}")

    print(f"top-{K} agreement (mean share of the exact float32 list found):")
    for layer, feats in features.items():
        flat = feats.reshape(len(feats), -1)
        exact, _ = top_k(flat[n_train:], flat[:n_train], K)
        half = flat.astype(np.float16)
        as_half, _ = top_k(half[n_train:], half[:n_train], K)
        table = load_neighbors(run / "neighbors" / f"{layer}.json")
        position = {ident: i for i, ident in enumerate(training_images.ids)}
        from_run = np.array([[position[e["id"]] for e in table[g]] for g in generated_images.ids])
        print(f"  {layer}: float16 storage {overlap(exact, as_half):.3f}; run lists {overlap(exact, from_run):.3f}")
        if layer == "block1_pool":
            for spec in (("sketch", 16384), ("sketch", 4096), ("sketch", 1024), ("pool", 2), ("pool", 4)):
                small = reduce_block1(feats, spec)
                reduced, _ = top_k(small[n_train:], small[:n_train], K)
                print(f"  {layer} {spec[0]}:{spec[1]} ({small.shape[1]:,} values): {overlap(exact, reduced):.3f}")
        if limit is None and args.preprocess == "original":
            reference = read_json(MASKS / "reference" / f"{layer}.json")
            shares = [len({str(e["id"]) for e in entries} & {Path(e["id"]).stem for e in table[f"{sample}.jpg"]}) / K
                      for sample, entries in reference.items()]
            print(f"  {layer}: agreement with the 2018 reference {np.mean(shares):.3f}")
    print(f"(work folder {work})")


if __name__ == "__main__":
    main()
