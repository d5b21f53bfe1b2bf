"""pix2pix: the paired input pipeline against the same batches from memory, and --cross-flip on held-out pairs.

Pairs are made in code from real images: the embedded masks (``data/masks/images``), each target a mask
fitted to the size, each input its OpenCV Canny edge map (white edges on black), written as side-by-side
A|B PNGs into a temporary pair folder, as the face-generator seed made sketches from photos.

Part 1 (the goal: the paired pipeline feeds training at >= 0.9 of the in-memory rate). One pix2pix
family, one compiled step. The baseline calls the step on a constant batch of pairs already in memory;
the pipeline modes feed the same step from ``novelty.images.pairs`` + ``augment_pairs_and_batch`` with
flip and jitter (both halves alike): the pair folder decoded once (what ``novelty train --model pix2pix
FOLDER`` does) and the TFRecord shards written by ``novelty prepare --pairs side-by-side``. Modes take
turns step by step; medians (see ``bench_training.py``, whose timing this reuses).

Part 2 (``--cross-flip-steps`` > 0): two short runs from the same seed, with and without ``--cross-flip``
(both with flip and jitter), on the pairs less a seeded 10% held out (``holdout_ids``, seed 0: the split
of ``novelty train --holdout 0.1``); the mean absolute error of each generator's outputs for the
held-out inputs against their targets (0-255 scale) and, with ``--cross-flip-prdc``, the block5_pool
PRDC of those outputs against those targets (the project's ``compute_prdc`` on ``Extractor`` features,
as the training curve computes it). ``--cross-flip-pairs twemoji-edges`` runs part 2 alone on the
embedded pair set (or a pair folder). A few thousand steps are far from converged: it says whether
cross-flip hurts or helps this early, not at the end.

    python benchmarks/bench_pix2pix.py                          # 64 px, batch 16, 1,000 pairs
    python benchmarks/bench_pix2pix.py --cross-flip-steps 300 --cross-flip-size 32
    python benchmarks/bench_pix2pix.py --cross-flip-pairs twemoji-edges --cross-flip-size 64 \
        --cross-flip-filters 16 --cross-flip-batch 32 --cross-flip-steps 1600 --cross-flip-prdc
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_training import pipeline_alone, race, report

from novelty import defaults
from novelty.judge.planted import edge_pairs

BASELINE = "in memory (baseline)"
MASKS = Path(__file__).resolve().parents[1] / "data" / "masks" / "images"


def write_pair_folder(inputs: np.ndarray, targets: np.ndarray, ids: list[str], out: Path) -> None:
    from novelty.images.decode import save_png

    for ident, source, target in zip(ids, inputs, targets, strict=True):
        save_png(np.concatenate([source, target], axis=1), out / f"{Path(ident).stem}.png")


def pipeline_part(args, pair_folder: Path, temp: Path) -> None:
    import tensorflow as tf

    from novelty.gan.loop import make_strategy
    from novelty.gan.pix2pix import Pix2PixConfig
    from novelty.gan.pix2pix_family import Pix2Pix, Pix2PixOptions
    from novelty.images.pairs import holdout_ids, pair_dataset, prepare_pairs, without_ids
    from novelty.images.pipeline import augment_pairs_and_batch

    config = Pix2PixConfig(image_size=args.size, base_filters=args.base_filters)
    options = Pix2PixOptions(batch_size=args.batch_size, seed=0, flip=True, jitter=True)
    strategy = make_strategy()
    print(f"pix2pix {args.size} px, base_filters {args.base_filters}, batch {args.batch_size}, "
          f"{strategy.num_replicas_in_sync} replica(s), TensorFlow {tf.__version__}")

    def batches(source, ids):
        pairs = without_ids(source, holdout_ids(ids, options.holdout, options.seed))
        stream = augment_pairs_and_batch(pairs, args.size, args.batch_size, seed=0, flip=True, jitter=True)
        return iter(strategy.experimental_distribute_dataset(stream))

    start = time.perf_counter()
    folder_pairs, ids, description = pair_dataset(pair_folder, args.size, progress=False)
    print(f"decoded {description} in {time.perf_counter() - start:.1f} s (once, before training)")
    start = time.perf_counter()
    prepared = prepare_pairs(pair_folder, temp / "shards", "side-by-side", args.size, progress=False)
    print(f"prepared {prepared.written} pairs in {len(prepared.shards)} shards in "
          f"{time.perf_counter() - start:.1f} s (once)")
    shard_pairs, shard_ids, _ = pair_dataset(temp / "shards", args.size)
    sources = {"pair folder, flip + jitter": batches(folder_pairs, ids),
               "shards, flip + jitter": batches(shard_pairs, shard_ids)}

    family = Pix2Pix(config, options, strategy)
    constant = tuple(tf.identity(part) for part in next(batches(folder_pairs, ids)))
    feeds = {BASELINE: lambda: constant}
    feeds.update({name: (lambda it=it: next(it)) for name, it in sources.items()})

    def step(feed) -> float:
        start = time.perf_counter()
        float(family.distributed_step(feed())["d_loss"])  # waits for the step to finish
        return time.perf_counter() - start

    times = race(feeds, step, args.steps, args.budget, args.warmup)
    base = report(times, args.batch_size)
    pipeline_alone(sources, args.pipeline_batches, args.batch_size, base)


def held_out_prdc(extractor, outputs: np.ndarray, targets: np.ndarray) -> dict:
    """block5_pool PRDC (the training curve's: normalised features, k = ``defaults.PRDC_K``) of the
    held-out outputs against the held-out targets."""
    from novelty.gan.tracking import LAYER
    from novelty.judge.prdc import compute_prdc
    from novelty.search.neighbors import normalize

    real, fake = (normalize(extractor.embed(images, progress=False)[LAYER]) for images in (targets, outputs))
    return compute_prdc(real, fake, defaults.PRDC_K).as_dict()


def cross_flip_part(args, inputs: np.ndarray, targets: np.ndarray, ids: list[str]) -> None:
    import tensorflow as tf
    from tqdm.auto import tqdm

    from novelty.gan.family import to_uint8
    from novelty.gan.loop import make_strategy
    from novelty.gan.pix2pix import Pix2PixConfig
    from novelty.gan.pix2pix_family import Pix2Pix, Pix2PixOptions
    from novelty.images.decode import fit
    from novelty.images.pairs import holdout_ids, without_ids

    size = args.cross_flip_size
    if size != inputs.shape[1]:
        inputs = np.stack([fit(image, size) for image in inputs])
        targets = np.stack([fit(image, size) for image in targets])
    held = holdout_ids(ids, defaults.PAIR_HOLDOUT, 0)
    rows = np.isin(ids, held)
    dataset = without_ids(tf.data.Dataset.from_tensor_slices((ids, inputs, targets)), held)
    config = Pix2PixConfig(image_size=size, base_filters=args.cross_flip_filters)
    batch = args.cross_flip_batch or args.batch_size
    print(f"\n--cross-flip: {args.cross_flip_steps} steps each, {size} px, base_filters {args.cross_flip_filters}, "
          f"batch {batch}, flip + jitter, {len(ids) - len(held)} training pairs, {len(held)} held out "
          f"(holdout_ids, {defaults.PAIR_HOLDOUT:g}, seed 0), training seed {args.cross_flip_seed}")
    extractor = None
    if args.cross_flip_prdc:
        from novelty.embed.features import Extractor
        from novelty.gan.tracking import LAYER

        extractor = Extractor(weights=args.cross_flip_weights, input_size=defaults.INPUT_SIZE, layers=(LAYER,))
        print(f"PRDC: {LAYER}, {args.cross_flip_weights} VGG16 weights, k {defaults.PRDC_K}, "
              f"{len(held)} held-out outputs against their {len(held)} targets")
    for cross in (False, True):
        options = Pix2PixOptions(batch_size=batch, seed=args.cross_flip_seed, flip=True, jitter=True, cross_flip=cross)
        family = Pix2Pix(config, options, make_strategy())
        stream = iter(family.input_stream(dataset, 0))
        start = time.perf_counter()
        for _ in tqdm(range(args.cross_flip_steps), desc=f"cross-flip {'on' if cross else 'off'}", unit="step"):
            metrics = family.distributed_step(next(stream))
        seconds = time.perf_counter() - start
        outputs = np.concatenate([to_uint8(family.generator(inputs[rows][i:i + 64] / 127.5 - 1.0, training=False))
                                  for i in range(0, int(rows.sum()), 64)])
        error = float(np.abs(outputs.astype(np.float64) - targets[rows]).mean())
        line = (f"cross-flip {'on ' if cross else 'off'}: held-out L1 {error:6.2f} (0-255), training l1 loss "
                f"{float(metrics['l1']):.3f} at the last step, {seconds:.0f} s "
                f"({seconds / args.cross_flip_steps:.3f} s/step)")
        if extractor is not None:
            prdc = held_out_prdc(extractor, outputs, targets[rows])
            line += ", PRDC " + " ".join(f"{key} {prdc[key]:.3f}" for key in ("precision", "recall",
                                                                              "density", "coverage"))
        print(line, flush=True)


def load_cross_flip_pairs(source: str, size: int):
    """``(inputs, targets, ids)`` of a pair folder, or of the embedded ``twemoji-edges`` set."""
    from novelty.images.assets import SETS
    from novelty.images.pairs import detect_layout, load_pairs

    folder = SETS[source]() if source in SETS else Path(source)
    loaded = load_pairs(folder, detect_layout(folder), size)
    print(f"cross-flip pairs: {len(loaded.ids)} from {folder} ({len(loaded.skipped)} skipped)")
    return loaded.inputs, loaded.targets, loaded.ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MASKS, help="Image folder (default: the embedded masks).")
    parser.add_argument("--pairs", type=int, default=1000, help="Pairs made from the first images.")
    parser.add_argument("--size", type=int, default=64, choices=defaults.PAIR_IMAGE_SIZES)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--base-filters", type=int, default=defaults.BASE_FILTERS)
    parser.add_argument("--steps", type=int, default=30, help="Most timed steps per mode, after warm-up.")
    parser.add_argument("--budget", type=float, default=120.0, help="Seconds for all timed steps together.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps per mode first.")
    parser.add_argument("--pipeline-batches", type=int, default=50, help="Batches drawn from each pipeline alone.")
    parser.add_argument("--cross-flip-steps", type=int, default=0, help="Steps of each cross-flip run (0: skip).")
    parser.add_argument("--cross-flip-size", type=int, default=32, choices=defaults.PAIR_IMAGE_SIZES)
    parser.add_argument("--cross-flip-filters", type=int, default=32)
    parser.add_argument("--cross-flip-seed", type=int, default=0, help="Seed of both runs' weights and "
                        "augmentation (the held-out split keeps seed 0, the bundled checkpoint's).")
    parser.add_argument("--cross-flip-batch", type=int, default=0, help="Batch of the cross-flip runs "
                        "(0: --batch-size).")
    parser.add_argument("--cross-flip-pairs", default=None, help="Pair folder, or `twemoji-edges`, for part 2 "
                        "only (part 1 is skipped); default: the Canny pairs made from --data.")
    parser.add_argument("--cross-flip-prdc", action="store_true", help="Also block5_pool PRDC of the held-out "
                        "outputs against the held-out targets.")
    parser.add_argument("--cross-flip-weights", default=defaults.WEIGHTS, help="VGG16 weights of that PRDC.")
    args = parser.parse_args(argv)
    if args.cross_flip_pairs:
        cross_flip_part(args, *load_cross_flip_pairs(args.cross_flip_pairs, args.cross_flip_size))
        return 0
    if not args.data.is_dir():
        print(f"SKIP: image folder {args.data} not found (run `python -m novelty.images.assets masks`?)")
        return 0
    start = time.perf_counter()
    inputs, targets, ids = edge_pairs(args.data, args.size, args.pairs)
    with tempfile.TemporaryDirectory(prefix="bench-pix2pix-") as name:
        temp = Path(name)
        write_pair_folder(inputs, targets, ids, temp / "pairs")
        print(f"made {len(ids)} Canny edge -> image pairs from {args.data} in {time.perf_counter() - start:.1f} s")
        pipeline_part(args, temp / "pairs", temp)
    if args.cross_flip_steps:
        cross_flip_part(args, inputs, targets, ids)
    return 0


if __name__ == "__main__":
    sys.exit(main())
