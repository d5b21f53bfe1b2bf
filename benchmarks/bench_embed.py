"""Embedding speed against what this CPU's float32 matmul rate allows, both measured in this run.

    .venv/bin/python benchmarks/bench_embed.py [--n 384] [--size 64] [--batch-size 32] [--weights imagenet]

The limit: images/s = (numpy float32 GEMM FLOP/s) / (VGG16 conv FLOPs per image up to block5_pool).
Goal: the Extractor reaches at least 0.8 of it. Both rates are measured twice: per second of wall
clock, and per second of CPU time this process received (``time.process_time``). On a shared
machine the wall-clock rates swing with the other jobs; the CPU-time ratio is the stable one.
Images: the masks training thumbnails when ../shared/datasets/masks is present, else seeded smooth
random images.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from novelty import defaults  # noqa: E402
from novelty.embed.features import Extractor, conv_flops  # noqa: E402

MASKS = ROOT.parent / "shared" / "datasets" / "masks" / "train"
GOAL = 0.8


def gemm_flops(n: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """Best float32 FLOP/s of numpy's ``n x n`` matrix product over ``repeats`` runs: per wall-clock
    second and per CPU second."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    a @ b
    wall = cpu = np.inf
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        a @ b
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return 2 * n ** 3 / wall, 2 * n ** 3 / cpu


def load_images(n: int, size: int) -> tuple[np.ndarray, str]:
    if MASKS.is_dir():
        from novelty.images.decode import find_images, load

        paths = find_images(MASKS)[:n]
        return np.stack([load(p, size) for p in paths]), f"{len(paths)} masks thumbnails"
    from PIL import Image

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    images = np.stack([np.asarray(Image.fromarray(s).resize((size, size), Image.Resampling.BICUBIC)) for s in small])
    return images, f"{n} random smooth images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=384)
    parser.add_argument("--size", type=int, default=defaults.INPUT_SIZE)
    parser.add_argument("--batch-size", type=int, default=defaults.EMBED_BATCH_SIZE)
    parser.add_argument("--weights", default="imagenet")
    args = parser.parse_args()

    images, what = load_images(args.n, args.size)
    extractor = Extractor(weights=args.weights, input_size=args.size)
    extractor.embed(images[: args.batch_size], batch_size=args.batch_size, progress=False)  # build + trace
    before = gemm_flops()
    start, start_cpu = time.perf_counter(), time.process_time()
    extractor.embed(images, batch_size=args.batch_size, progress=False)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    after = gemm_flops()
    rate, cpu_rate = max(before[0], after[0]), max(before[1], after[1])  # the better of two measures
    per_image = conv_flops(args.size)
    print(f"images: {what} at {args.size} px, batch {args.batch_size}, layers {','.join(extractor.layers)}; "
          f"VGG16 convs {per_image / 1e9:.2f} GFLOP/image")
    for label, gemm, spent in (("wall clock", rate, seconds), ("CPU time", cpu_rate, cpu_seconds)):
        speed = len(images) / spent
        ratio = speed * per_image / gemm
        print(f"per {label} second: numpy float32 GEMM {gemm / 1e9:.1f} GFLOP/s -> limit "
              f"{gemm / per_image:.1f} images/s; Extractor.embed {speed:.1f} images/s "
              f"({speed * per_image / 1e9:.1f} GFLOP/s); ratio {ratio:.2f} (goal >= {GOAL}): "
              f"{'met' if ratio >= GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
