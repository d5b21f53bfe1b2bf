"""The bundled masks checkpoint judged by the tool's own statistics, beside the 2018 TPU model's samples.

    .venv/bin/python benchmarks/bench_masks64.py [--checkpoint data/checkpoints/masks64] [--out runs/bench_masks64]
                                                 [--ns 1000,100] [--seed 0]

For each ``n`` in ``--ns`` it runs the user's command

    novelty analyze --train data/masks/images --checkpoint CHECKPOINT --n N --out OUT/checkpoint-N

and, once, the same analysis of the 2018 demo's 100 samples of its 64 px DCGAN (trained on TPUs, batch
1024, 15k steps) from ``../shared/datasets/masks/generated``:

    novelty analyze --train data/masks/images --generated ../shared/datasets/masks/generated --out OUT/2018-100

and prints, per run, block5_pool and block1_pool precision / recall / density / coverage (PRDC on equal
set sizes: ``analyze`` draws a seeded subsample of the training set as large as the sample set, so the
n = 100 rows compare like with like), distinct top-1 training neighbours of the samples against as many
held-out real images, and the flagged-copy rate. The goals (issue 14): block5_pool precision >= 0.7 and
recall >= 0.5 at n = 1000; distinct top-1 neighbours within 0.8x of held-out images. Every run's
summary.json stays in OUT; the feature cache makes the training side's embedding a one-off.
The 2018 row needs ../shared/datasets/masks and is skipped, with the reason, when it is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from novelty.run.tables import SUMMARY, read_document  # noqa: E402

MASKS = ROOT / "data" / "masks" / "images"
SAMPLES_2018 = ROOT.parent / "shared" / "datasets" / "masks" / "generated"
GOAL_PRECISION, GOAL_RECALL, GOAL_DISTINCT = 0.7, 0.5, 0.8
LAYERS = ("block5_pool", "block1_pool")


def analyze(out: Path, source: list[str], seed: int) -> dict:
    """Run ``novelty analyze`` (the CLI, as a user would) unless OUT already holds its summary; read it back."""
    summary = out / SUMMARY.file
    if not summary.is_file():
        command = [str(ROOT / ".venv" / "bin" / "novelty"), "analyze", "--train", str(MASKS), *source,
                   "--out", str(out), "--seed", str(seed)]
        print("$", " ".join(command), flush=True)
        subprocess.run(command, check=True)
    return read_document(summary, SUMMARY)


def row(name: str, summary: dict) -> dict:
    """The figures of one run: PRDC per layer, distinct top-1 (block5_pool) against held-out, copy rate."""
    distinct = summary["mode_collapse"]["distinct_top1"]["block5_pool"]
    copies = summary["copies"]
    return {"run": name, "n": summary["counts"]["generated"],
            **{f"{layer}.{m}": summary["prdc"][layer][m] for layer in LAYERS
               for m in ("precision", "recall", "density", "coverage")},
            "distinct_top1": distinct["generated"], "distinct_top1_heldout": distinct["heldout"],
            "distinct_n": distinct["n"],
            "distinct_ratio": distinct["generated"] / distinct["heldout"],
            "copies": copies["count"], "copy_rate": copies["rate"], "copy_interval": copies["exact_interval"]}


def show(rows: list[dict]) -> None:
    print(f"\n{'run':<22}{'n':>6}  {'block5_pool P / R / D / C':<28}{'block1_pool P / R / D / C':<28}"
          f"{'distinct top-1 (held-out)':<28}copies")
    for r in rows:
        prdc = ["  ".join(f"{r[f'{layer}.{m}']:.2f}" for m in ("precision", "recall", "density", "coverage"))
                for layer in LAYERS]
        print(f"{r['run']:<22}{r['n']:>6}  {prdc[0]:<28}{prdc[1]:<28}"
              f"{r['distinct_top1']:.0f} of {r['distinct_n']} ({r['distinct_top1_heldout']:.1f}): {r['distinct_ratio']:.2f}x"
              f"{'':<6}{r['copies']} ({r['copy_rate']:.3f}, 95% {r['copy_interval'][0]:.3f}-"
              f"{r['copy_interval'][1]:.3f})")
    for r in rows:
        if r["run"].startswith("checkpoint") and r["n"] >= 1000:
            met = (r["block5_pool.precision"] >= GOAL_PRECISION and r["block5_pool.recall"] >= GOAL_RECALL)
            print(f"goal at n = {r['n']}: block5_pool precision >= {GOAL_PRECISION} and recall >= {GOAL_RECALL}: "
                  f"{'met' if met else 'missed'}; distinct top-1 >= {GOAL_DISTINCT}x held-out: "
                  f"{'met' if r['distinct_ratio'] >= GOAL_DISTINCT else 'missed'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "data" / "checkpoints" / "masks64")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_masks64")
    parser.add_argument("--ns", default="1000,100", help="comma-separated sample counts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for n in (int(v) for v in args.ns.split(",") if v):
        name = f"checkpoint-{n}"
        summary = analyze(args.out / name, ["--checkpoint", str(args.checkpoint), "--n", str(n)], args.seed)
        rows.append(row(name, summary))
    if SAMPLES_2018.is_dir():
        rows.append(row("2018 TPU samples", analyze(args.out / "2018-100", ["--generated", str(SAMPLES_2018)],
                                                    args.seed)))
    else:
        print(f"2018 row skipped: {SAMPLES_2018} is absent (the shared masks dataset)")
    show(rows)
    (args.out / "figures.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
