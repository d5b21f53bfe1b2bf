"""The training recipe: what one PRDC evaluation costs against a training step, and short runs of each
recipe option on the masks, with the curve each run tracked.

    python benchmarks/bench_recipe.py cost [--base-filters 64] [--batch-size 64] [--steps 5]
    python benchmarks/bench_recipe.py compare [--steps 300] [--base-filters 16] [--quality-every 100]
    python benchmarks/bench_recipe.py evaluate RUN [RUN ...] [--at 2000,4000] [--quality-samples 1000]

``cost``: the median of ``--steps`` training steps (after one traced step) at the given width and
batch, and the median of two :meth:`QualityTracker.evaluate` calls (generate ``--quality-samples``
fixed-noise images, embed them with VGG16, PRDC against the cached training side; the one-off
embedding of the training side is timed apart), and their ratio: the share of a run that
``--quality-every N`` costs is about ratio / N.

``compare``: one run per option (baseline, --ema 0.999, --diffaugment color,translation,cutout, all
three: those and --label-smoothing 0.1) from the same seed on the same images, ``--steps`` each, and the
block5_pool PRDC at every ``--quality-every`` steps. Runs of a few hundred steps at a small width say
little about a 15,000-step run: they show the options work and what they cost, not which is best.

``evaluate``: for each training folder RUN and each step in ``--at`` (default: every checkpoint it still
holds), block5_pool PRDC of ``--quality-samples`` fixed-noise samples against as many training images
(the quality curve's measure at a larger n) for BOTH generators of the checkpoint: the trained one
(``generator.training.weights.h5``) and, when the run has ``--ema``, the averaged one. The average never
feeds back into training, so one run with ``--ema`` gives the option's effect at every step for free,
and two runs (with and without DiffAugment, both with ``--ema``) give all four combinations.

Images: data/masks/images (the embedded masks set) at 64 px, or ``--data FOLDER``.

Measured on 2 shared CPU cores (December 2026), masks at 64 px, ImageNet weights, 256 per side:
``cost`` at the defaults (base_filters 64, batch 64): a step 6.8 s, an evaluation 21.4 s (ratio 3.2;
0.3% of a run at --quality-every 1000), the training side embedded once in 18 s. ``compare``
(base_filters 16, 300 steps, seed 0), block5_pool precision / recall / coverage at step 300:
baseline 0.00 / 0.00 / 0.00, ema 0.999 0.00 / 0.00 / 0.00, diffaugment 0.37 / 0.00 / 0.02, all
three 0.19 / 0.00 / 0.01 (all 0 at step 150 but diffaugment's 0.01). One seed, 300 steps, a quarter
of the width: no ranking of the options follows from this.
``evaluate`` (base_filters 32, batch 64, --flip, two long runs with and without DiffAugment, both with
--ema 0.999, 1,000 per side), P / R / D / C at step 5,000: plain 0.716 / 0.393 / 0.442 / 0.458, plain +
EMA 0.743 / 0.431 / 0.517 / 0.562, DiffAugment 0.724 / 0.199 / 0.521 / 0.463, DiffAugment + EMA 0.720 /
0.169 / 0.578 / 0.467 (step 4,000 in the README): --ema 0.999 became the default, DiffAugment stays off.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from novelty import defaults  # noqa: E402

MASKS = ROOT / "data" / "masks" / "images"
OFF = {"ema": 0.0, "diffaugment": "", "label_smoothing": 0.0}  # Radford et al.'s DCGAN, whatever the defaults
VARIANTS = {
    "baseline": OFF,
    "ema 0.999": {**OFF, "ema": 0.999},
    "diffaugment": {**OFF, "diffaugment": "color,translation,cutout"},
    "ema+diffaugment": {**OFF, "ema": 0.999, "diffaugment": "color,translation,cutout"},
    "all three": {"ema": 0.999, "diffaugment": "color,translation,cutout", "label_smoothing": 0.1},
}


def cost(args, dataset) -> None:
    from novelty.gan.dcgan import GanConfig
    from novelty.gan.tracking import QualityTracker
    from novelty.gan.training import TrainOptions, _Trainer, make_strategy
    from novelty.images.pipeline import augment_and_batch

    config = GanConfig(image_size=args.size, base_filters=args.base_filters)
    options = TrainOptions(batch_size=args.batch_size, seed=0)
    trainer = _Trainer(config, options, make_strategy())
    batches = iter(augment_and_batch(dataset, args.size, args.batch_size, seed=0))

    def step() -> float:
        start = time.perf_counter()
        float(trainer.distributed_step(next(batches))["d_loss"])
        return time.perf_counter() - start

    traced = step()
    steps = [step() for _ in range(args.steps)]
    with tempfile.TemporaryDirectory(prefix="bench-recipe-") as out:
        tracker = QualityTracker(Path(out), dataset, args.weights, args.quality_samples, 0, config.z_dim)
        start = time.perf_counter()
        tracker.prepare()
        prepare = time.perf_counter() - start
        evals = []
        for i in range(2):
            start = time.perf_counter()
            row = tracker.evaluate(trainer.generator, i + 1)
            evals.append(time.perf_counter() - start)
    step_s, eval_s = float(np.median(steps)), float(np.median(evals))
    print(f"{args.size} px, base_filters {args.base_filters}, batch {args.batch_size}, weights {args.weights}, "
          f"{args.quality_samples} samples per side")
    print(f"training step: {step_s:.3f} s (median of {len(steps)}; the first, traced, {traced:.1f} s)")
    print(f"training side embedded once: {prepare:.1f} s; one evaluation: {eval_s:.2f} s "
          f"(median of 2: {', '.join(f'{e:.2f}' for e in evals)}); precision at init {row['precision']:.2f}")
    print(f"ratio evaluation / step: {eval_s / step_s:.1f}; at --quality-every {defaults.QUALITY_EVERY} the "
          f"evaluations add {eval_s / step_s / defaults.QUALITY_EVERY:.2%} to a run")


def compare(args, dataset) -> None:
    from novelty.gan.dcgan import GanConfig
    from novelty.gan.tracking import QUALITY_CSV, read_quality
    from novelty.gan.training import TrainOptions, train

    config = GanConfig(image_size=args.size, base_filters=args.base_filters)
    print(f"{args.size} px, base_filters {args.base_filters}, batch {args.batch_size}, {args.steps} steps per "
          f"run, seed {args.seed}, PRDC ({args.weights}, {args.quality_samples} per side) every "
          f"{args.quality_every} steps")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-recipe-") as temp:
        for name in args.variants.split(","):
            recipe = VARIANTS[name]
            options = TrainOptions(steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                                   checkpoint_every=args.steps, log_every=args.steps,
                                   quality_every=args.quality_every, quality_samples=args.quality_samples,
                                   weights=args.weights, flip=args.flip, **recipe)
            out = Path(temp) / name.replace(" ", "-")
            start = time.perf_counter()
            train(dataset, out, config, options, progress=False)
            results[name] = (read_quality(out / QUALITY_CSV), time.perf_counter() - start)
            rows, seconds = results[name]
            curve = "  ".join(f"{r['step']}: P {r['precision']:.2f} R {r['recall']:.2f} "
                              f"C {r['coverage']:.2f}" for r in rows)
            print(f"{name:<20} {seconds:6.0f} s  {curve}", flush=True)
            if args.out:
                _append_curve(args.out, name, rows, seconds)


def _append_curve(path: Path, name: str, rows: list[dict], seconds: float) -> None:
    """Append one run's curve to ``path`` (CSV: variant, seconds, then quality.csv's columns)."""
    import csv

    from novelty.gan.tracking import COLUMNS

    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(("variant", "seconds", *COLUMNS))
        for row in rows:
            writer.writerow((name, f"{seconds:.0f}", *(row[c] for c in COLUMNS)))


def evaluate(args, dataset) -> None:
    from novelty.gan.dcgan import GENERATOR_FILE, GanConfig, build_generator, load_checked
    from novelty.gan.dcgan_family import TRAINING_GENERATOR_FILE
    from novelty.gan.tracking import QualityTracker

    cache = args.cache or Path(tempfile.mkdtemp(prefix="bench-recipe-"))
    tracker = None
    print(f"block5_pool PRDC ({args.weights}), {args.quality_samples} fixed-noise samples against as many training "
          f"images (seed {args.seed})")
    for run in args.runs:
        steps = sorted((run / "checkpoints").glob("step-*"))
        if args.at:
            steps = [run / "checkpoints" / f"step-{int(s):06d}" for s in args.at.split(",")]
        for folder in steps:
            config = GanConfig.load(folder)
            if tracker is None:
                tracker = QualityTracker(Path(cache), dataset, args.weights, args.quality_samples, args.seed,
                                         config.z_dim)
                tracker.prepare()
            with_ema = (folder / TRAINING_GENERATOR_FILE).is_file()  # without --ema: the trained one alone
            for label, name in ((("trained", TRAINING_GENERATOR_FILE), ("averaged", GENERATOR_FILE)) if with_ema
                                else (("trained", GENERATOR_FILE),)):
                generator = build_generator(config)
                load_checked(generator, folder / name, f"{config.base_filters} filters")
                row = tracker.evaluate(generator, int(folder.name.split("-")[1]))
                print(f"{run.name:<16} {folder.name:<12} {label:<9} P {row['precision']:.3f} R {row['recall']:.3f} "
                      f"D {row['density']:.3f} C {row['coverage']:.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("cost", "compare", "evaluate"))
    parser.add_argument("runs", nargs="*", type=Path, help="evaluate: training folders")
    parser.add_argument("--at", default="", help="evaluate: comma-separated steps (default: every checkpoint kept)")
    parser.add_argument("--data", type=Path, default=MASKS)
    parser.add_argument("--size", type=int, default=64, choices=defaults.IMAGE_SIZES)
    parser.add_argument("--base-filters", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=defaults.BATCH_SIZE)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--quality-every", type=int, default=100)
    parser.add_argument("--quality-samples", type=int, default=defaults.QUALITY_SAMPLES)
    parser.add_argument("--weights", default=defaults.WEIGHTS)
    parser.add_argument("--seed", type=int, default=defaults.SEED)
    parser.add_argument("--flip", action="store_true", help="compare: random horizontal flips in every run")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="compare: comma-separated names from: " + ", ".join(VARIANTS))
    parser.add_argument("--out", type=Path, default=None, help="compare: append every curve to this CSV")
    parser.add_argument("--cache", type=Path, default=None,
                        help="evaluate: folder for the training side's features (reused by a later call)")
    args = parser.parse_args()
    if args.base_filters is None:
        args.base_filters = defaults.BASE_FILTERS if args.mode == "cost" else 16
    if args.steps is None:
        args.steps = 5 if args.mode == "cost" else 300

    from novelty.images.pipeline import training_images

    dataset, description = training_images(args.data, args.size, progress=False)
    print(f"data: {description}")
    {"cost": cost, "compare": compare, "evaluate": evaluate}[args.mode](args, dataset)


if __name__ == "__main__":
    main()
