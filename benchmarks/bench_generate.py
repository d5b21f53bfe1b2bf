"""Generation throughput: images per second for N samples from a checkpoint.

Three measurements in one process, on the same generator and the same seeded noise:
- baseline: the network alone, called batch by batch on noise already in memory;
- ``novelty.gan.generate.sample``: load the checkpoint, make the noise, run the network, convert to uint8;
- ``novelty.gan.generate.generate``: all that plus one PNG per sample, the grid and the manifest.

Without ``--checkpoint`` an untrained generator is saved in the checkpoint format (weights do not
change the cost).

    python benchmarks/bench_generate.py                       # 64 px, default width, 1000 samples
    python benchmarks/bench_generate.py --checkpoint runs/twemoji64 --n 2000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from novelty import defaults


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="A checkpoint or training folder (default: an untrained one).")
    parser.add_argument("--size", type=int, default=64, choices=defaults.IMAGE_SIZES,
                        help="Image size of the untrained checkpoint.")
    parser.add_argument("--base-filters", type=int, default=defaults.BASE_FILTERS,
                        help="Width of the untrained checkpoint.")
    parser.add_argument("--n", type=int, default=1000, help="Samples to generate.")
    parser.add_argument("--batch-size", type=int, default=256, help="Generator batch size.")
    args = parser.parse_args(argv)

    from novelty.gan.dcgan import GENERATOR_FILE, GanConfig, build_generator, load_generator
    from novelty.gan.generate import generate, sample
    from novelty.gan.training import fixed_noise, to_uint8

    temp = tempfile.TemporaryDirectory(prefix="bench-generate-")
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = Path(temp.name) / "checkpoint"
        checkpoint.mkdir()
        config = GanConfig(image_size=args.size, base_filters=args.base_filters)
        config.save(checkpoint)
        build_generator(config).save_weights(checkpoint / GENERATOR_FILE)

    model, config = load_generator(checkpoint)
    print(f"generator {config.image_size} px, base_filters {config.base_filters}, "
          f"{model.count_params():,} parameters; {args.n} samples in batches of {args.batch_size}")
    noise = fixed_noise(args.n, config.z_dim, defaults.SEED)

    def network_only() -> None:
        for i in range(0, args.n, args.batch_size):
            to_uint8(model(noise[i:i + args.batch_size], training=False))

    network_only()  # warm-up: first calls build kernels
    timings = {}
    start = time.perf_counter()
    network_only()
    timings["network only (baseline)"] = time.perf_counter() - start
    start = time.perf_counter()
    sample(checkpoint, args.n, defaults.SEED, batch_size=args.batch_size)
    timings["sample(): load + noise + network"] = time.perf_counter() - start
    start = time.perf_counter()
    generate(checkpoint, Path(temp.name) / "out", args.n, defaults.SEED)
    timings["generate(): sample + PNGs + grid"] = time.perf_counter() - start

    base = timings["network only (baseline)"]
    width = max(map(len, timings))
    print(f"\n{'stage':<{width}}  seconds  images/s  time vs baseline")
    for name, seconds in timings.items():
        print(f"{name:<{width}}  {seconds:7.2f}  {args.n / seconds:8.1f}  {seconds / base:6.2f}x")
    temp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
