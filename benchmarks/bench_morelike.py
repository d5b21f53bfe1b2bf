""""More like these" on planted junk: from 3 examples of a kind, how much of the rest is in the top 2N?

    .venv/bin/python benchmarks/bench_morelike.py [--out runs/bench_junk] [--seeds 5]

Reads the features ``benchmarks/bench_junk.py`` cached in ``OUT/features`` (the masks and each kind
of :data:`novelty.curate.junk.KINDS`, N = 1% of the masks per kind; run that first), plants one kind at a
time among the masks, picks 3 of its images at random as examples (per seed) and reports the share
of the other N - 3 in the top 2N of :func:`novelty.curate.morelike.likeness_scores` (goal >= 0.9), mean and
worst over the seeds. Only reads the cache.

Measured (ImageNet weights, 2,989 masks, N = 30 per kind, 5 seeds; mean, worst): catalogue 1.00,
1.00; logo 0.99, 0.93; drawing 1.00, 1.00; noise 1.00, 1.00; product renders 0.95, 0.78 (one
seed's three examples miss part of the kind); screenshots 1.00, 1.00.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from novelty import defaults  # noqa: E402
from novelty.curate.junk import KINDS  # noqa: E402
from novelty.curate.morelike import likeness_scores  # noqa: E402
from novelty.embed.featurestore import FeatureStore  # noqa: E402

GOAL = 0.9
EXAMPLES = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_junk")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    store = FeatureStore(args.out / "features")
    if store.meta("training", defaults.LAYERS[0]) is None:
        print(f"skipped: no cached features in {args.out / 'features'}; run benchmarks/bench_junk.py first")
        return
    genuine = {layer: np.asarray(store.load("training", layer)[1], np.float32) for layer in defaults.LAYERS}
    n_genuine = len(genuine[defaults.LAYERS[0]])
    print(f"{'kind':<16} {'N':>4} {'share of the rest in top 2N (mean, worst)':>44}")
    for kind in KINDS:
        if store.meta(f"junk-{kind}", defaults.LAYERS[0]) is None:
            print(f"{kind:<16} not cached")
            continue
        junk = {layer: np.asarray(store.load(f"junk-{kind}", layer)[1], np.float32) for layer in defaults.LAYERS}
        n = len(junk[defaults.LAYERS[0]])
        features = {layer: np.concatenate([genuine[layer], junk[layer]]) for layer in defaults.LAYERS}
        shares = []
        for seed in range(args.seeds):
            picked = np.random.default_rng(seed).choice(n, EXAMPLES, replace=False) + n_genuine
            score = likeness_scores(features, picked.tolist())
            top = set(np.argsort(-score)[: 2 * n].tolist())
            rest = set(range(n_genuine, n_genuine + n)) - set(picked.tolist())
            shares.append(len(rest & top) / len(rest))
        print(f"{kind:<16} {n:>4} {np.mean(shares):>36.2f}, {min(shares):.2f}"
              f"{'' if min(shares) >= GOAL else '  (below the goal ' + str(GOAL) + ')'}")


if __name__ == "__main__":
    main()
