"""Planted junk in the masks: does the outlier score put batches of foreign images at the top?

    .venv/bin/python benchmarks/bench_junk.py [--out runs/bench_junk] [--share 0.01] [--weights imagenet]

Plants each kind of :data:`novelty.curate.junk.KINDS` (drawn in code: catalogue pages, logos, line drawings,
noise gradients, product renders, screenshots) at ``--share`` of the 2,989 masks, alone and all
mixed, and prints precision at N per kind, the junk flagged ``is_outlier`` and the share of genuine
images flagged (goals: P@N >= 0.8 per kind and mixed, <= 3% genuine flagged). Kinds marked
``(unseen)`` were held out while the score was chosen. Also times the outlier stage (one neighbour
search per layer, duplicate groups, the score) against the embedding of the same set.
Features are cached in ``OUT/features`` (the first run embeds the masks: about 2 minutes on CPU).
Reads ../shared/datasets/masks/train, or data/masks/images; skips with a reason when neither exists.
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
from novelty.curate.junk import REPORT_FILE, SHARE, run_junk  # noqa: E402

MASKS = (ROOT.parent / "shared" / "datasets" / "masks" / "train", ROOT / "data" / "masks" / "images")
GOAL_COST = 0.3  # most outlier-stage time as a share of the embedding time of the same set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_junk")
    parser.add_argument("--share", type=float, default=SHARE)
    parser.add_argument("--weights", default=defaults.WEIGHTS)
    args = parser.parse_args()
    train = next((p for p in MASKS if p.is_dir()), None)
    if train is None:
        print(f"skipped: no masks images in {' or '.join(map(str, MASKS))}")
        return
    report = run_junk(train, args.out, weights=args.weights, share=args.share)
    print(report.table())
    # the cost of the outlier stage against embedding the same set, both measured here
    from novelty.curate.curation import outlier_stage
    from novelty.embed.features import Extractor
    from novelty.embed.featurestore import FeatureStore
    from novelty.images.decode import find_images, load
    from novelty.search.neighbors import normalize

    store = FeatureStore(args.out / "features")
    features = {layer: normalize(store.load("training", layer)[1]) for layer in defaults.LAYERS}
    start = time.perf_counter()
    outlier_stage(features)
    stage = time.perf_counter() - start
    sample = find_images(train)[:256]
    images = np.stack([load(p, defaults.INPUT_SIZE) for p in sample])
    extractor = Extractor(weights=args.weights)
    extractor.embed(images[:32], progress=False)  # build and warm the model
    start = time.perf_counter()
    extractor.embed(images, progress=False)
    embed = (time.perf_counter() - start) * len(features[defaults.LAYERS[0]]) / len(sample)
    print(f"outlier stage (search, duplicate groups, score): {stage:.1f} s; embedding the same "
          f"{len(features[defaults.LAYERS[0]])} images: {embed:.1f} s (from {len(sample)}); ratio "
          f"{stage / embed:.2f} (goal <= {GOAL_COST})")
    print(f"goals met: {report.goals['met']}; report: {args.out / REPORT_FILE}")


if __name__ == "__main__":
    main()
