"""Planted junk in the masks: does the outlier score put batches of foreign images at the top?

    .venv/bin/python benchmarks/bench_junk.py [--out runs/bench_junk] [--share 0.01] [--weights imagenet]
        [--exact] [--cost-only]

Plants each kind of :data:`novelty.curate.junk.KINDS` (drawn in code: catalogue pages, logos, line drawings,
noise gradients, product renders, screenshots, charts, landscapes) at ``--share`` of the 2,989 masks, alone and all
mixed, and prints precision at N per kind, the junk flagged ``is_outlier`` and the share of genuine
images flagged (goals: P@N >= 0.8 per kind and mixed, <= 3% genuine flagged). Kinds marked
``(unseen)`` were held out while the score was chosen. Also times curation (one neighbour search
per layer serving duplicate groups and the outlier score, and the modes) against embedding the same
set (the whole set, or ``--embed-sample`` images scaled up; ``--exact``: also the search without the
sketch of block1_pool, as before it; ``--cost-only``: the features cached, time only this).
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
GOAL_COST = 0.3  # most curation time (duplicates, outliers, modes) as a share of the embedding time of the same set


def cost(train: Path, out: Path, weights: str, sample: int, exact: bool = False) -> None:
    """Curation (duplicates and outliers: one search; modes) against embedding the same set, both timed
    here; with ``exact``, the same search without the sketch of block1_pool too (the rule before it)."""
    from novelty.curate.curation import outlier_stage
    from novelty.embed.features import Extractor
    from novelty.embed.featurestore import FeatureStore
    from novelty.images.decode import find_images, load
    from novelty.judge.modes import MODES_LAYER, find_modes
    from novelty.search.neighbors import normalize

    store = FeatureStore(out / "features")
    ids = store.load("training", defaults.LAYERS[0])[0]
    features = {layer: normalize(store.load("training", layer)[1]) for layer in defaults.LAYERS}
    n = len(ids)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    outlier_stage(features)
    stage = time.perf_counter() - start
    if exact:
        start = time.perf_counter()
        outlier_stage(features, sketch=0)
        print(f"duplicates and outliers with every layer searched exactly (no sketch): {time.perf_counter() - start:.1f} s "
              f"against {stage:.1f} s with block1_pool on sketch:{defaults.CURATION_SKETCH}")
    start = time.perf_counter()
    find_modes(features[MODES_LAYER], np.zeros((0, features[MODES_LAYER].shape[1]), np.float32), list(ids), [])
    modes = time.perf_counter() - start
    paths = find_images(train)[:sample] if sample else find_images(train)
    images = np.stack([load(p, defaults.INPUT_SIZE) for p in paths])
    extractor = Extractor(weights=weights)
    extractor.embed(images[:32], progress=False)  # build and warm the model
    start = time.perf_counter()
    extractor.embed(images, progress=True)
    embed = (time.perf_counter() - start) * n / len(images)
    how = "measured" if len(images) == n else f"from a timed sample of {len(images)}"
    print(f"curation: duplicates and outliers (one search, groups, both views) {stage:.1f} s, modes {modes:.1f} s, "
          f"total {stage + modes:.1f} s; embedding the same {n} images: {embed:.1f} s ({how}); ratio "
          f"{(stage + modes) / embed:.2f} (goal <= {GOAL_COST}); load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_junk")
    parser.add_argument("--share", type=float, default=SHARE)
    parser.add_argument("--weights", default=defaults.WEIGHTS)
    parser.add_argument("--embed-sample", type=int, default=0,
                        help="time embedding on this many images and scale up (0: embed the whole set)")
    parser.add_argument("--exact", action="store_true",
                        help="also time duplicates and outliers with every layer searched exactly (no sketch)")
    parser.add_argument("--cost-only", action="store_true", help="skip the planted junk; time curation only")
    args = parser.parse_args()
    train = next((p for p in MASKS if p.is_dir()), None)
    if train is None:
        print(f"skipped: no masks images in {' or '.join(map(str, MASKS))}")
        return
    if not args.cost_only:
        report = run_junk(train, args.out, weights=args.weights, share=args.share)
        print(report.table())
    cost(train, args.out, args.weights, args.embed_sample, args.exact)
    if not args.cost_only:
        print(f"goals met: {report.goals['met']}; report: {args.out / REPORT_FILE}")


if __name__ == "__main__":
    main()
