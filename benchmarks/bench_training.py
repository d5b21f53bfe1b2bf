"""DCGAN training speed: the real input pipeline against the same model fed a batch already in memory.

One model, one compiled training step, one process. The baseline calls the step on a constant batch
that already sits on the device, so it measures the network alone. The pipeline modes feed the same
step from ``novelty.pipeline``: the image folder decoded once by ``training_images`` then shuffled,
augmented and batched by ``augment_and_batch`` (what ``novelty train FOLDER`` does), the same with
jitter, and TFRecord shards written by ``novelty prepare`` (when ``novelty.records`` exists). Modes
take turns in short rounds so that a busy machine slows them alike. Goal: the pipeline costs under
10% of the in-memory speed.

At the default width a step at 64 px, batch 64 costs about 640 GFLOP: seconds on a CPU. The timed
part therefore fits a budget (``--budget``): up to ``--steps`` steps per mode, fewer where steps are
slow; the output says how many ran.

Needs the masks training thumbnails in ../shared/datasets/masks/train (skips when absent).

    python benchmarks/bench_training.py                      # 64 px, batch 64, about 2-3 minutes
    python benchmarks/bench_training.py --base-filters 32 --steps 60
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

from novelty import defaults

MASKS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "masks" / "train"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MASKS, help="Image folder (default: the masks).")
    parser.add_argument("--size", type=int, default=64, choices=defaults.IMAGE_SIZES)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--base-filters", type=int, default=defaults.BASE_FILTERS)
    parser.add_argument("--steps", type=int, default=30, help="Most timed steps per mode, after warm-up.")
    parser.add_argument("--budget", type=float, default=120.0,
                        help="Seconds for all timed steps together; fewer steps per mode if needed.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps per mode first.")
    parser.add_argument("--rounds", type=int, default=3, help="Turns the modes take (steps split evenly).")
    args = parser.parse_args(argv)

    if not args.data.is_dir():
        print(f"SKIP: image folder {args.data} not found (the masks dataset lives in "
              "../shared/datasets/masks; pass --data FOLDER to use another)")
        return 0

    import tensorflow as tf

    from novelty.dcgan import GanConfig
    from novelty.pipeline import augment_and_batch, training_images
    from novelty.training import TrainOptions, _Trainer, make_strategy

    config = GanConfig(image_size=args.size, base_filters=args.base_filters)
    options = TrainOptions(batch_size=args.batch_size, seed=0)
    strategy = make_strategy()
    print(f"DCGAN {args.size} px, base_filters {args.base_filters}, batch {args.batch_size}, "
          f"{strategy.num_replicas_in_sync} replica(s), TensorFlow {tf.__version__}")

    start = time.perf_counter()
    dataset, description = training_images(args.data, args.size, progress=False)
    print(f"decoded {description} in {time.perf_counter() - start:.1f} s (once, before training)")

    def batches(source, **augment):
        pipeline = augment_and_batch(source, args.size, args.batch_size, seed=0, **augment)
        return iter(strategy.experimental_distribute_dataset(pipeline))

    sources = {"folder, flip": batches(dataset, flip=True),
               "folder, flip + jitter": batches(dataset, flip=True, jitter=True)}
    temp = tempfile.TemporaryDirectory(prefix="bench-shards-")
    if importlib.util.find_spec("novelty.records") is not None:
        from novelty.records import prepare, read_shards

        start = time.perf_counter()
        prepared = prepare(args.data, temp.name, args.size, progress=False)
        print(f"prepared {prepared.written} images in {len(prepared.shards)} shards in "
              f"{time.perf_counter() - start:.1f} s (once)")
        shards, _ = read_shards(temp.name, args.size)
        sources["shards, flip"] = batches(shards, flip=True)
    else:
        print("novelty.records not found: TFRecord shards not measured")

    trainer = _Trainer(config, options, strategy)
    constant = next(iter(augment_and_batch(dataset, args.size, args.batch_size, seed=1)))
    constant = tf.identity(constant)  # an eager op: placed on the accelerator when there is one
    feeds = {"in memory (baseline)": lambda: constant}
    feeds.update({name: (lambda it=it: next(it)) for name, it in sources.items()})

    def run(feed, steps: int) -> float:
        metrics = None
        start = time.perf_counter()
        for _ in range(steps):
            metrics = trainer.distributed_step(feed())
        float(metrics["d_loss"])  # wait for the last step to finish
        return time.perf_counter() - start

    start = time.perf_counter()
    run(feeds["in memory (baseline)"], 1)
    print(f"traced the training step in {time.perf_counter() - start:.1f} s")
    warm = {name: run(feed, args.warmup) / max(args.warmup, 1) for name, feed in feeds.items()}
    step_seconds = warm["in memory (baseline)"]
    affordable = int(args.budget / (len(feeds) * step_seconds))
    per_round = max(1, min(args.steps, affordable) // args.rounds)
    print(f"{step_seconds:.2f} s per step in warm-up: {per_round * args.rounds} timed steps per mode "
          f"in {args.rounds} rounds, after {args.warmup} warm-up steps")
    seconds = dict.fromkeys(feeds, 0.0)
    steps = dict.fromkeys(feeds, 0)
    for _ in range(args.rounds):
        for name, feed in feeds.items():
            seconds[name] += run(feed, per_round)
            steps[name] += per_round

    base = steps["in memory (baseline)"] / seconds["in memory (baseline)"]
    width = max(map(len, feeds))
    print(f"\n{'mode':<{width}}  steps/s  images/s  ratio  pipeline cost")
    for name in feeds:
        rate = steps[name] / seconds[name]
        cost = "" if name.startswith("in memory") else f"{(1 - rate / base) * 100:+.1f}%"
        print(f"{name:<{width}}  {rate:7.2f}  {rate * args.batch_size:8.1f}  {rate / base:5.3f}  {cost}")
    worst = min(steps[name] / seconds[name] for name in feeds if not name.startswith("in memory"))
    verdict = "met" if worst / base >= 0.9 else "NOT met"
    print(f"goal (pipeline costs under 10%): {verdict}; worst ratio {worst / base:.3f}")
    temp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
