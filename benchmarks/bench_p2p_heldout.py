"""A pix2pix checkpoint on its held-out pairs: L1 against the true targets, and an input | output | truth grid.

The outputs come from the command line, ``novelty generate --checkpoint CKPT --inputs DIR`` (inference
mode, deterministic), run on the held-out inputs that ``CKPT/holdout.json`` lists (the ids a ``novelty
train --model pix2pix`` run kept aside) and, for comparison, on as many training pairs drawn by a seed.
L1 is the mean absolute difference of output and target over all pixels and channels, on the 0-255
scale (the training loss's ``l1`` is on the [-1, 1] scale: divide by 127.5 to compare). Two trivial
generators give the scale: a white image, and the input edge map itself.

The grid shows ``--grid`` held-out pairs drawn by ``--seed`` (not chosen by eye), four input | output |
truth triplets per row. The pair folder defaults to the embedded ``twemoji-edges`` set.

    python benchmarks/bench_p2p_heldout.py --checkpoint data/checkpoints/twemoji-edges64 --grid-out grid.png
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TRIPLETS_PER_ROW = 4


def generate(checkpoint: Path, pairs: Path, ids: list[str], temp: Path) -> dict[str, np.ndarray]:
    """``novelty generate --inputs`` on the A halves of ``ids``: output per id, ``(64, 64, 3)`` uint8."""
    import shutil

    from novelty.images.decode import load

    inputs, out = temp / "inputs", temp / "out"
    inputs.mkdir()
    for ident in ids:
        shutil.copy(pairs / "A" / ident, inputs / ident)
    done = subprocess.run([sys.executable, "-m", "novelty.cli", "generate", "--checkpoint", str(checkpoint),
                           "--inputs", str(inputs), "--out", str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"novelty generate failed: {done.stderr.strip().splitlines()[-1:]}")
    size = json.loads((checkpoint / "config.json").read_text())["image_size"]
    return {ident: load(out / "samples" / Path(ident).with_suffix(".png").name, size) for ident in ids}


def l1(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def evaluate(checkpoint: Path, pairs: Path, ids: list[str], temp: Path) -> tuple[dict, dict]:
    """(L1 figures, images per id: (input, output, truth))."""
    from novelty.images.decode import load

    outputs = generate(checkpoint, pairs, ids, temp)
    size = next(iter(outputs.values())).shape[0]
    triplets = {i: (load(pairs / "A" / i, size), outputs[i], load(pairs / "B" / i, size)) for i in ids}
    figures = {"pairs": len(ids),
               "l1": float(np.mean([l1(o, t) for _, o, t in triplets.values()])),
               "l1_white": float(np.mean([l1(np.full_like(t, 255), t) for _, _, t in triplets.values()])),
               "l1_input": float(np.mean([l1(a, t) for a, _, t in triplets.values()]))}
    return figures, triplets


def grid_of(triplets: dict, ids: list[str]) -> np.ndarray:
    from novelty.images.decode import grid

    cells = [image for ident in ids for image in triplets[ident]]
    return grid(np.stack(cells), columns=3 * TRIPLETS_PER_ROW)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a pix2pix checkpoint with holdout.json")
    parser.add_argument("--pairs", type=Path, help="the pair folder (A/, B/); default: the twemoji-edges set")
    parser.add_argument("--grid", type=int, default=32, help="held-out pairs in the grid")
    parser.add_argument("--grid-out", type=Path, help="write the input | output | truth grid here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from novelty.gan.pix2pix_family import read_holdout
    from novelty.images.decode import save_png

    pairs = args.pairs
    if pairs is None:
        from novelty.images.edges import twemoji_edges_folder
        pairs = twemoji_edges_folder()
    held = read_holdout(args.checkpoint)
    if not held:
        raise SystemExit(f"{args.checkpoint} lists no held-out pairs (holdout.json)")
    every = sorted(p.relative_to(pairs / "A").as_posix() for p in (pairs / "A").rglob("*.png"))
    rng = np.random.default_rng(args.seed)
    trained = sorted(rng.choice(sorted(set(every) - set(held)), size=len(held), replace=False).tolist())
    report = {}
    with tempfile.TemporaryDirectory() as temp:
        for name, ids in (("held_out", held), ("training", trained)):
            (Path(temp) / name).mkdir()
            report[name], triplets = evaluate(args.checkpoint, pairs, ids, Path(temp) / name)
            if name == "held_out" and args.grid_out:
                shown = sorted(rng.choice(held, size=min(args.grid, len(held)), replace=False).tolist())
                save_png(grid_of(triplets, shown), args.grid_out)
    for name, fig in report.items():
        print(f"{name:9s} {fig['pairs']:4d} pairs: L1 {fig['l1']:6.2f} (0-255); a white image {fig['l1_white']:6.2f}, "
              f"the input itself {fig['l1_input']:6.2f}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
