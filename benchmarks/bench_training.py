"""DCGAN training speed: the real input pipeline against the same model fed a batch already in memory.

One model, one compiled training step, one process. The baseline calls the step on a constant batch
that already sits on the device, so it measures the network alone. The pipeline modes feed the same
step from ``novelty.images.pipeline``: the image folder decoded once by ``training_images`` then shuffled,
augmented and batched by ``augment_and_batch`` (what ``novelty train FOLDER`` does), the same with
jitter, and TFRecord shards written by ``novelty prepare`` (when ``novelty.images.records`` exists). Modes
take turns step by step so that a busy machine slows them alike, and the median step time is
reported beside the mean (robust to load spikes). Goal: the pipeline costs under
10% of the in-memory speed.

At the default width a step at 64 px, batch 64 costs about 170 GFLOP: seconds on a CPU. The timed
part therefore fits a budget (``--budget``): up to ``--steps`` steps per mode, fewer where steps are
slow; the output says how many ran.

Needs the masks training thumbnails in ../shared/datasets/masks/train (skips when absent).

    python benchmarks/bench_training.py                      # 64 px, batch 64: 3-5 minutes on 2 busy cores
    python benchmarks/bench_training.py --base-filters 32 --steps 60
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from novelty import defaults

BASELINE = "in memory (baseline)"
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
    parser.add_argument("--pipeline-batches", type=int, default=50,
                        help="Batches drawn from each pipeline alone, without training.")
    args = parser.parse_args(argv)

    if not args.data.is_dir():
        print(f"SKIP: image folder {args.data} not found (the masks dataset lives in "
              "../shared/datasets/masks; pass --data FOLDER to use another)")
        return 0

    import tensorflow as tf

    from novelty.gan.dcgan import GanConfig
    from novelty.gan.training import TrainOptions, _Trainer, make_strategy
    from novelty.images.pipeline import augment_and_batch, training_images

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
    if importlib.util.find_spec("novelty.images.records") is not None:
        from novelty.images.records import prepare, read_shards

        start = time.perf_counter()
        prepared = prepare(args.data, temp.name, args.size, progress=False)
        print(f"prepared {prepared.written} images in {len(prepared.shards)} shards in "
              f"{time.perf_counter() - start:.1f} s (once)")
        shards, _ = read_shards(temp.name, args.size)
        sources["shards, flip"] = batches(shards, flip=True)
    else:
        print("novelty.images.records not found: TFRecord shards not measured")

    trainer = _Trainer(config, options, strategy)
    constant = next(iter(augment_and_batch(dataset, args.size, args.batch_size, seed=1)))
    constant = tf.identity(constant)  # an eager op: placed on the accelerator when there is one
    feeds = {BASELINE: lambda: constant}
    feeds.update({name: (lambda it=it: next(it)) for name, it in sources.items()})

    def step(feed) -> float:
        start = time.perf_counter()
        metrics = trainer.distributed_step(feed())
        float(metrics["d_loss"])  # wait for the step to finish (asynchronous on an accelerator)
        return time.perf_counter() - start

    times = race(feeds, step, args.steps, args.budget, args.warmup)
    base = report(times, args.batch_size)
    pipeline_alone(sources, args.pipeline_batches, args.batch_size, base)
    temp.cleanup()
    return 0


def race(feeds: dict, step, steps: int, budget: float, warmup: int) -> dict[str, list[float]]:
    """Seconds of each timed step per feed: ``warmup`` untimed steps each, then up to ``steps`` each within
    ``budget`` seconds, the feeds taking turns step by step (who goes first rotates). ``step(feed)`` runs
    one training step on ``feed()`` and returns its seconds; the first feed is the baseline."""
    baseline = next(iter(feeds))
    start = time.perf_counter()
    step(feeds[baseline])
    print(f"traced the training step in {time.perf_counter() - start:.1f} s")
    warm = {name: [step(feed) for _ in range(warmup)] for name, feed in feeds.items()}
    step_seconds = float(np.median(warm[baseline] or [step(feeds[baseline])]))
    count = max(3, min(steps, int(budget / (len(feeds) * step_seconds))))
    print(f"{step_seconds:.2f} s per step in warm-up: {count} timed steps per mode, after "
          f"{warmup} warm-up steps; the modes take turns step by step")
    times: dict[str, list[float]] = {name: [] for name in feeds}
    names = list(feeds)
    for i in range(count):
        for name in names[i % len(names):] + names[:i % len(names)]:  # rotate who goes first
            times[name].append(step(feeds[name]))
    return times


def report(times: dict[str, list[float]], batch_size: int) -> float:
    """Print each feed's step rate against the first (the baseline) and whether the goal (>= 0.9) is met;
    returns the baseline's steps per second (medians)."""
    baseline = next(iter(times))
    base = 1.0 / float(np.median(times[baseline]))
    width = max(map(len, times))
    print(f"\n{'mode':<{width}}  steps/s (median)  steps/s (mean)  images/s  ratio  pipeline cost")
    ratios = {}
    for name, taken in times.items():
        rate, mean = 1.0 / float(np.median(taken)), len(taken) / sum(taken)
        ratios[name] = rate / base
        cost = "" if name == baseline else f"{(1 - ratios[name]) * 100:+.1f}%"
        print(f"{name:<{width}}  {rate:16.3f}  {mean:14.3f}  {rate * batch_size:8.1f}  "
              f"{ratios[name]:5.3f}  {cost}")
    worst = min(ratio for name, ratio in ratios.items() if name != baseline)
    verdict = "met" if worst >= 0.9 else "NOT met"
    print(f"goal (pipeline costs under 10%): {verdict}; worst ratio {worst:.3f} (medians)")
    return base


def pipeline_alone(sources: dict, batches: int, batch_size: int, base: float) -> None:
    """Draw ``batches`` batches from each source iterator without training; print the rate and the share
    of a baseline training step (``base`` steps per second) that one batch costs."""
    width = max(map(len, sources))
    print(f"\npipeline alone, {batches} batches each, no training:")
    for name, iterator in sources.items():
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        per_batch = (time.perf_counter() - start) / batches
        print(f"{name:<{width}}  {1 / per_batch:8.1f} batches/s  {batch_size / per_batch:9.0f} images/s  "
              f"= {per_batch * base * 100:.2f}% of a training step")


if __name__ == "__main__":
    sys.exit(main())
