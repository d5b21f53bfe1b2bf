"""Embedding on Apache Beam's DirectRunner against in-process embedding of the same images.

    .venv/bin/python benchmarks/bench_beam.py [--n 400] [--weights imagenet] [--repeats 2] [--multi]

Both sides start from an image folder and end with a filled feature store: a fresh run folder and a
fresh model each time (TensorFlow is imported and the weights found once, before timing). In-process is what ``novelty analyze`` does for the training set
(``scan_set``, then ``FeatureStore.update`` with an ``Extractor``); Beam is ``novelty embed``
(``embed_on_beam``: the pipeline reads, decodes and embeds with RunInference, the driver stores the
shards). Sides alternate, ``--repeats`` times each, and the best rate of each side counts (the machine
is shared). Rates are images/s of wall clock, and of CPU time (this process and its children).
``--multi`` also times ``--direct_running_mode multi_processing --direct_num_workers 2``.
Goal: Beam >= 0.7x the in-process rate. Images: the first N masks of ``data/masks/images``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from novelty.analysis import AnalyzeOptions, extractor_for  # noqa: E402
from novelty.embed.featurestore import FeatureStore  # noqa: E402
from novelty.embed.runners import embed_on_beam  # noqa: E402
from novelty.images.decode import find_images  # noqa: E402
from novelty.images.sets import scan_set  # noqa: E402

MASKS = ROOT / "data" / "masks" / "images"
GOAL = 0.7
MULTI = ["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"]


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (Beam's worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def in_process(images: Path, out: Path, options: AnalyzeOptions) -> int:
    """What analyze does for the training set; returns the images embedded."""
    image_set = scan_set("training", images, options.input_size, options.fit_mode, progress=False)
    store = FeatureStore(out / "features", options.feature_dtype)
    return store.update("training", image_set.ids, image_set.sha256, image_set.images, extractor_for(options, 0),
                        options.batch_size, progress=False)


def on_beam(images: Path, out: Path, options: AnalyzeOptions, args: list[str]) -> int:
    return embed_on_beam(images, out, options=options, pipeline_args=args, progress=False).embedded


def timed(work, n: int) -> tuple[float, float]:
    """``(images/s of wall clock, images/s of CPU time)`` of ``work()``, which must embed ``n`` images."""
    start, start_cpu = time.perf_counter(), cpu_seconds()
    embedded = work()
    wall, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
    if embedded != n:
        raise SystemExit(f"expected {n} images embedded, got {embedded}")
    return n / wall, n / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--multi", action="store_true", help="also time two DirectRunner worker processes")
    args = parser.parse_args()

    options = AnalyzeOptions(weights=args.weights, progress=False)
    work = Path(tempfile.mkdtemp(prefix="bench-beam-"))
    try:
        images = work / "images"
        images.mkdir()
        for path in find_images(MASKS)[:args.n]:
            shutil.copy(path, images / path.name)
        n = len(find_images(images))
        sides = {"in-process": lambda out: in_process(images, out, options),
                 "Beam DirectRunner": lambda out: on_beam(images, out, options, [])}
        if args.multi:
            sides["Beam DirectRunner, 2 worker processes"] = lambda out: on_beam(images, out, options, MULTI)
        extractor_for(options, 0).model  # noqa: B018 -- import TensorFlow and find the weights before timing
        best: dict[str, tuple[float, float]] = {}
        for repeat in range(args.repeats):
            for name, side in sides.items():
                out = work / f"run-{repeat}-{len(best)}-{name.split()[0]}"
                rate = timed(lambda side=side, out=out: side(out), n)
                print(f"{name:<40} {rate[0]:6.1f} img/s wall, {rate[1]:6.1f} img/s CPU", flush=True)
                old = best.get(name, (0.0, 0.0))
                best[name] = (max(old[0], rate[0]), max(old[1], rate[1]))
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = best["in-process"]
    print(f"\n{n} masks at {options.input_size} px, {args.weights} weights, best of {args.repeats}:")
    for name, (wall, cpu) in best.items():
        print(f"  {name:<40} {wall:6.1f} img/s ({wall / base[0]:.2f}x wall, {cpu / base[1]:.2f}x CPU)")
    ratio = best["Beam DirectRunner"][0] / base[0]
    print(f"Beam DirectRunner / in-process: {ratio:.2f}x (goal >= {GOAL}x: {'met' if ratio >= GOAL else 'missed'})")


if __name__ == "__main__":
    main()
