"""What the aligned pixel match costs, against embedding the same images with VGG16, both in this run.

    .venv/bin/python benchmarks/bench_alignment.py [--n 200] [--candidates 20] [--weights imagenet]

The verdicts align every generated sample (and every held-out image) with up to 20 training images
(the 5 nearest of each layer's list and of its mirror image's list, two layers; fewer when the
lists overlap). This times :func:`novelty.judge.alignment.best_match` for ``n`` queries against
``candidates`` distinct training images each, the views included, and ``Extractor.embed`` of the
same ``n`` images (model built beforehand), and prints both rates and their ratio per wall-clock and
per CPU second. No goal: it says how much the pixel match adds to a run (reported in the README).
Images: as ``bench_embed.py`` chooses them (the masks training thumbnails when
../shared/datasets/masks is present, else seeded smooth random images).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_analyze import clocks, since  # noqa: E402  (benchmarks/ is on the path when run as a script)
from bench_embed import load_images  # noqa: E402

from novelty import defaults  # noqa: E402
from novelty.judge.alignment import TrainingPixels, best_match, grey  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--weights", default="imagenet")
    args = parser.parse_args()

    from novelty.embed.features import Extractor

    images, what = load_images(args.n, defaults.INPUT_SIZE)
    rng = np.random.default_rng(1)
    candidates = np.stack([rng.choice(len(images), args.candidates, replace=False) for _ in range(len(images))])

    start = clocks()
    best_match(grey(images), candidates, TrainingPixels(lambda rows: images[rows]))
    align = since(start)

    extractor = Extractor(weights=args.weights, input_size=defaults.INPUT_SIZE)
    extractor.embed(images[:defaults.EMBED_BATCH_SIZE], progress=False)  # build and trace
    start = clocks()
    extractor.embed(images, progress=False)
    embed = since(start)

    print(f"images: {what} at {defaults.INPUT_SIZE} px; {args.candidates} candidates per query")
    for i, label in enumerate(("wall clock", "CPU time")):
        print(f"per {label} second: aligned pixel match {len(images) / align[i]:.1f} queries/s, "
              f"VGG16 embedding {len(images) / embed[i]:.1f} images/s; the match costs "
              f"{align[i] / embed[i]:.2f}x an embedding")


if __name__ == "__main__":
    main()
