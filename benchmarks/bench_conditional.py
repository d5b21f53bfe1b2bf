"""Conditional verdicts (``novelty analyze --inputs``) on planted pix2pix generators, real images, ImageNet VGG16.

Pairs are made in code from the embedded masks (``data/masks/images``): each target a mask fitted to
the size, each input its OpenCV Canny edge map (:func:`novelty.judge.planted.edge_pairs`), written as
a pair folder ``A/`` (inputs) and ``B/`` (targets). A seeded share of the pairs is held out exactly as
``novelty train --model pix2pix --holdout`` draws it (:func:`novelty.images.pairs.holdout_ids`); the
held-out inputs are the generators' inputs. Three planted generators write their outputs as folders
(no model, :mod:`novelty.judge.planted`):

- ``memorising``: the target of the training pair whose input is nearest (pixel L2): an exact copy;
- ``memorising, noisy``: the same with +-3 uniform pixel noise (no longer the training file's pixels,
  so only the calibrated rule can catch it);
- ``truthful``: each held-out input's own target.

Each is judged by the real pipeline (:func:`novelty.conditional.analyze_conditional`, one run folder,
so the training targets are embedded once) and the share of outputs flagged is reported, with the
calibrated rule's flags before the conditional rule and the identical matches.
Goals: memorising flagged on >= 90% of its outputs, truthful on <= 5%.

    python benchmarks/bench_conditional.py                       # 1,000 pairs, 64 px, ImageNet weights
    python benchmarks/bench_conditional.py --pairs 300 --weights none
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from novelty import defaults

MASKS = Path(__file__).resolve().parents[1] / "data" / "masks" / "images"
KINDS = ("memorising", "memorising, noisy", "truthful")


def main(argv: list[str] | None = None) -> int:
    from novelty.analysis import AnalyzeOptions
    from novelty.conditional import analyze_conditional
    from novelty.images.decode import save_png
    from novelty.images.pairs import holdout_ids
    from novelty.judge import planted
    from novelty.run import tables

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--heldout", type=float, default=0.1, help="pairs held out (the generators' inputs)")
    parser.add_argument("--calibration-holdout", type=float, default=0.15,
                        help="analyze --holdout: share of the training targets held out for the calibration")
    parser.add_argument("--fpr", type=float, default=defaults.FALSE_POSITIVE_RATE)
    parser.add_argument("--weights", default="imagenet")
    args = parser.parse_args(argv)

    edges, masks, ids = planted.edge_pairs(MASKS, args.size, args.pairs)
    names = [f"{Path(i).stem}.png" for i in ids]
    held_names = set(holdout_ids(names, args.heldout, 0))
    held = np.array([j for j, name in enumerate(names) if name in held_names])
    train = np.array([j for j, name in enumerate(names) if name not in held_names])
    options = AnalyzeOptions(weights=args.weights, input_size=args.size, holdout_fraction=args.calibration_holdout,
                             fpr=args.fpr, progress=False)
    print(f"{len(ids)} edge -> mask pairs at {args.size} px from {MASKS}; {len(held)} held out (inputs), "
          f"{len(train)} training targets; weights {args.weights}, fpr {args.fpr}, calibration holdout "
          f"{args.calibration_holdout}")
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        for name, edge, mask in zip(names, edges, masks, strict=True):
            save_png(edge, temp / "pairs" / "A" / name)
            save_png(mask, temp / "pairs" / "B" / name)
        queries = [names[j] for j in held]
        for j in held:
            save_png(edges[j], temp / "inputs" / names[j])
        outputs = {KINDS[0]: planted.memorising(temp / "memorising", queries, edges[held], edges[train], masks[train]),
                   KINDS[1]: planted.memorising(temp / "noisy", queries, edges[held], edges[train], masks[train],
                                                noise=3),
                   KINDS[2]: planted.truthful(temp / "truthful", queries, masks[held])}
        print(f"{'generator':20s} {'flagged':>14s} {'calibrated':>11s} {'identical':>10s} {'cleared':>8s} "
              f"{'truth rank 1':>13s} {'seconds':>8s}")
        for kind, folder in outputs.items():
            start = time.perf_counter()
            result = analyze_conditional(temp / "pairs", temp / "run", inputs=temp / "inputs", generated=folder,
                                         options=options)
            seconds = time.perf_counter() - start
            rows = tables.read_table(temp / "run" / "samples.csv", tables.SAMPLES).rows
            summary, n = result.verdicts, len(rows)
            flagged = sum(row["is_copy"] for row in rows)
            first = summary["conditional"]["truth_first"]["block5_pool"]
            print(f"{kind:20s} {flagged:4d}/{n} = {flagged / n:.3f} {summary['copies']['calibrated']:11d} "
                  f"{summary['copies'].get('identical', 0):10d} {summary['conditional']['cleared']:8d} "
                  f"{first:6d}/{n:<6d} {seconds:8.1f}")
            for warning in summary.get("warnings") or []:
                print(f"  warning: {warning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
