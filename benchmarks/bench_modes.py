"""Modes on the masks: the 2018 observation, a planted two-mode generator, held-out images, and cost.

    .venv/bin/python benchmarks/bench_modes.py [--out runs/bench_modes] [--weights imagenet] [--repeats 5]

Embeds the 2,989 masks and the original demo's samples of its 64 px and 128 px DCGANs (once; features
are cached in OUT/m64 and OUT/m128), then with :mod:`novelty.judge.modes`:
1. 2018: the 128 px samples spread over fewer modes than the 64 px ones (effective modes, the 128 px
   set also subsampled to the 64 px set's 100 samples, 200 seeded draws, 95% range).
2. Planted generator: samples drawn only from the two largest modes (training images plus 1% noise),
   at 100, 300 and 1,000 samples: the share of the other modes reported missed (goal >= 0.8).
3. Held-out: ``--repeats`` seeded splits, modes fitted on 90% of the masks, the other 10% judged as
   if generated: modes reported missed (goal: none at the stated confidence).
4. Cost: fitting and assigning the modes against embedding the same training set (goal <= 0.3x).
Reads ../shared/datasets/masks; skips with a reason when it is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from novelty import defaults  # noqa: E402
from novelty.analysis import AnalyzeOptions, analyze  # noqa: E402
from novelty.embed.featurestore import FeatureStore  # noqa: E402
from novelty.judge import modes  # noqa: E402

MASKS = ROOT.parent / "shared" / "datasets" / "masks"
GOAL_MISSED, GOAL_COST = 0.8, 0.3


def features(run: Path, set_name: str) -> tuple[list[str], np.ndarray]:
    ids, rows = FeatureStore(run / "features").load(set_name, modes.MODES_LAYER)
    return ids, np.asarray(rows, dtype=np.float32)


def embedded(out: Path, generated: Path, weights: str) -> Path:
    options = AnalyzeOptions(layers=(modes.MODES_LAYER,), weights=weights, verdicts=False, progress=False)
    analyze(MASKS / "train", out, generated=generated, options=options)
    return out


def embedding_seconds(n: int, weights: str, sample: int = 256) -> float:
    """Seconds to embed ``n`` masks, timed on ``sample`` of them after a warm-up batch."""
    from novelty.embed.features import Extractor
    from novelty.images.decode import find_images, load

    images = np.stack([load(p, defaults.INPUT_SIZE) for p in find_images(MASKS / "train")[:sample]])
    extractor = Extractor(weights=weights)  # both layers, as analyze embeds them
    extractor.embed(images[:32], progress=False)
    start = time.perf_counter()
    extractor.embed(images, progress=False)
    return (time.perf_counter() - start) * n / sample


def planted(training: np.ndarray, labels: np.ndarray, model: modes.ModeModel, rng) -> list[str]:
    largest = set(np.argsort(-np.bincount(labels, minlength=model.k))[:2].tolist())
    pool = np.flatnonzero(np.isin(labels, list(largest)))
    lines = []
    for n in (100, 300, 1000):
        rows = training[rng.choice(pool, n)]
        rows = rows + 0.01 * rng.normal(size=rows.shape).astype(np.float32) * np.abs(rows).mean()
        table = modes.compare_shares(labels, model.assign(rows)[0], model.k)
        others = [r for r in table if r["mode"] - 1 not in largest]
        share = sum(r["status"] == "missed" for r in others) / len(others)
        lines.append(f"  {n:5d} samples: {share:.2f} of the other {len(others)} modes missed"
                     f" (goal >= {GOAL_MISSED}: {'met' if share >= GOAL_MISSED else 'not met'})")
    return lines


def heldout(training: np.ndarray, repeats: int) -> list[str]:
    lines, total = [], 0
    for seed in range(repeats):
        order = np.random.default_rng(seed).permutation(len(training))
        held, reference = order[: len(order) // 10], order[len(order) // 10:]
        model = modes.fit_modes(training[reference], seed=seed)
        table = modes.compare_shares(model.assign(training[reference])[0], model.assign(training[held])[0], model.k)
        flagged = Counter(r["status"] for r in table if r["status"] != "reproduced")
        total += flagged["missed"]
        lines.append(f"  split {seed}: {model.k} modes, {len(held)} held out: {dict(flagged) or 'all reproduced'}")
    lines.append(f"  modes reported missed over {repeats} splits: {total} (goal: 0)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_modes")
    parser.add_argument("--weights", default=defaults.WEIGHTS)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if not (MASKS / "generated128").is_dir():
        print(f"skipped: the masks set is not at {MASKS}")
        return
    m64 = embedded(args.out / "m64", MASKS / "generated", args.weights)
    m128 = embedded(args.out / "m128", MASKS / "generated128", args.weights)
    _, training = features(m64, "training")
    start = time.perf_counter()
    model = modes.fit_modes(training, seed=0)
    labels, _ = model.assign(training)
    cost = time.perf_counter() - start
    embed_seconds = embedding_seconds(len(training), args.weights)
    print(f"{model.k} modes by BIC over {sorted(model.bic)}; training spreads over "
          f"{modes.effective_modes(labels, model.k):.1f} effective modes")
    print("1. the 2018 DCGAN samples:")
    rng = np.random.default_rng(0)
    for name, run in (("64 px", m64), ("128 px", m128)):
        g = model.assign(features(run, "generated")[1])[0]
        table = modes.compare_shares(labels, g, model.k)
        line = (f"  {name}: {len(g)} samples, {modes.effective_modes(g, model.k):.1f} effective modes, "
                f"{sum(r['generated_count'] > 0 for r in table)} modes hit; {dict(Counter(r['status'] for r in table))}")
        if len(g) > 100:
            draws = [modes.effective_modes(g[rng.choice(len(g), 100, replace=False)], model.k) for _ in range(200)]
            line += f"; at 100 samples {np.mean(draws):.1f} ({np.percentile(draws, 2.5):.1f}-{np.percentile(draws, 97.5):.1f})"
        print(line)
    print("2. planted generator of the two largest modes:")
    print("\n".join(planted(training, labels, model, rng)))
    print("3. held-out masks judged as samples:")
    print("\n".join(heldout(training, args.repeats)))
    print(f"4. cost: modes {cost:.1f} s; embedding the same {len(training)} images {embed_seconds:.1f} s; "
          f"ratio {cost / embed_seconds:.2f} (goal <= {GOAL_COST}: {'met' if cost <= GOAL_COST * embed_seconds else 'not met'})")


if __name__ == "__main__":
    main()
