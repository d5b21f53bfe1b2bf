"""Bundle the latest complete checkpoint of a masks64 training run as data/checkpoints/masks64.

    .venv/bin/python benchmarks/bundle_masks64.py RUN_DIR --started UNIX_TIME [--machine TEXT]

RUN_DIR is the training folder of ``novelty train data/masks/images --out RUN_DIR ...`` (the command is
in data/README.md). The script is safe while the run goes on: it copies a complete step (``state.npz``
is written last) and checks the step is still there afterwards. It writes

- ``data/checkpoints/masks64/{config.json,generator.weights.h5}``: what ``generate`` and ``analyze`` load
  (the averaged generator under ``--ema``), ``grid.png`` (``novelty generate --n 64 --seed 0``),
  ``quality.csv`` and ``quality.png`` (the PRDC curve so far);
- ``data/checkpoints/masks64/resume/``: the complete training folder at that step (``train.json``,
  ``config.json``, ``quality.csv``, ``checkpoints/step-N`` with the discriminator, the optimisers and the
  noise state, ``checkpoints/latest``), so that a new machine continues the run where it stopped:
  copy ``resume/`` to a working folder and run the same ``novelty train`` command with ``--out`` there;
- ``resume/segments.csv``: one row per sitting (machine, wall-clock start, seconds, first and last step),
  the current sitting's row replaced, so that the totals add up over sittings;
- the lines between the ``masks64 totals`` markers of data/README.md.
Commits nothing.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from novelty.files import read_json, write_text  # noqa: E402
from novelty.gan.dcgan import latest_checkpoint  # noqa: E402
from novelty.gan.tracking import QUALITY_CSV, QUALITY_PNG, read_quality  # noqa: E402
from novelty.gan.training import RESULT_OPTIONS  # noqa: E402
from novelty.images.assets import MASKS_COUNT  # noqa: E402

DEST = ROOT / "data" / "checkpoints" / "masks64"
SEGMENTS = ("machine", "started", "seconds", "first_step", "last_step")
BEGIN, END = "<!-- masks64 totals: written by benchmarks/bundle_masks64.py -->", "<!-- /masks64 totals -->"


def copy_latest(run: Path, stage: Path) -> Path:
    """Copy the run's newest complete step and its folder files into ``stage``; the step's folder."""
    for _ in range(5):  # the run may prune the step while we copy it: take the new latest then
        step_dir = latest_checkpoint(run, "state.npz")
        if step_dir is None:
            sys.exit(f"error: no complete checkpoint in {run}")
        shutil.rmtree(stage, ignore_errors=True)
        target = stage / "resume" / "checkpoints" / step_dir.name
        try:
            shutil.copytree(step_dir, target)
        except (FileNotFoundError, shutil.Error):
            continue
        if (step_dir / "state.npz").is_file():
            write_text(target.parent / "latest", step_dir.name + "\n")
            for name in ("train.json", "config.json"):
                shutil.copy2(run / name, stage / "resume" / name)
            return step_dir
    sys.exit("error: the checkpoints kept changing while copying; try again")


def _identity(train_json: Path) -> tuple:
    """What makes a run the same run across sittings: its network and the options resume refuses to change
    (``--steps`` may grow)."""
    record = read_json(train_json)
    return record["config"], {name: record["options"].get(name) for name in RESULT_OPTIONS}


def segments(path: Path | None, machine: str, started: float, seconds: float, first: int, last: int) -> list[dict]:
    """The sittings so far, this one's row (same machine and start) replaced or added."""
    rows = []
    if path is not None and path.is_file():
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [r for r in csv.DictReader(handle)
                    if not (r["machine"] == machine and float(r["started"]) == started)]
    rows.append({"machine": machine, "started": f"{started:.0f}", "seconds": f"{seconds:.0f}",
                 "first_step": first, "last_step": last})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--started", type=float, required=True, help="unix time this sitting's run started")
    parser.add_argument("--first-step", type=int, default=0, help="the step this sitting resumed from")
    parser.add_argument("--machine", default="2-core AMD EPYC VM, CPU, shared with other jobs")
    args = parser.parse_args()
    stage = DEST.parent / ".masks64.staging"
    step_dir = copy_latest(args.run, stage)
    step = int(step_dir.name.split("-")[1])
    quality = [r for r in read_quality(args.run / QUALITY_CSV) if r["step"] <= step]
    for name in ("config.json", "generator.weights.h5"):
        shutil.copy2(step_dir / name, stage / name)
    for name in (QUALITY_CSV, QUALITY_PNG):
        if (args.run / name).is_file():
            shutil.copy2(args.run / name, stage / name)
            shutil.copy2(args.run / name, stage / "resume" / name)
    seconds = (step_dir / "state.npz").stat().st_mtime - args.started
    old = DEST / "resume" / "segments.csv"
    if (DEST / "resume" / "train.json").is_file() and (
            _identity(DEST / "resume" / "train.json") != _identity(args.run / "train.json")):
        old = None  # the bundle in place came from another run: its sittings are not this run's
    rows = segments(old, args.machine, args.started, seconds, args.first_step, step)
    with (stage / "resume" / "segments.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SEGMENTS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    subprocess.run([str(ROOT / ".venv" / "bin" / "novelty"), "generate", "--checkpoint", str(stage), "--n", "64",
                    "--seed", "0", "--out", str(stage / "grid")], check=True, capture_output=True)
    shutil.move(stage / "grid" / "grid.png", stage / "grid.png")
    shutil.rmtree(stage / "grid")
    shutil.rmtree(DEST, ignore_errors=True)  # our own bundle folder, replaced whole
    os.replace(stage, DEST)
    write_totals(read_json(args.run / "train.json")["options"], step, rows, quality)


def write_totals(options: dict, step: int, rows: list[dict], quality: list[dict]) -> None:
    """The totals over every sitting, between the markers of data/README.md."""
    wall = sum(float(r["seconds"]) for r in rows)
    seen = step * options["batch_size"]
    last = quality[-1] if quality else None
    lines = [
        f"- Bundled: step {step:,} of `--steps {options['steps']:,}`; {seen:,} images seen = {step:,} steps x batch "
        f"{options['batch_size']}: {seen / MASKS_COUNT:.0f} epochs of the {MASKS_COUNT:,} masks.",
        f"- Wall time: {int(wall // 3600)} h {int(round(wall % 3600 / 60)):02d} min over {len(rows)} sitting(s) "
        f"({wall / step:.2f} s per step on average), " + "; ".join(
            f"{r['machine']}: steps {int(r['first_step']):,} to {int(r['last_step']):,} from "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(float(r['started'])))}" for r in rows) + ".",
    ]
    if last:
        lines.append(f"- Tracked quality at step {last['step']:,} (block5_pool, {last['n_generated']} per side): "
                     f"precision {last['precision']:.2f}, recall {last['recall']:.2f}, density {last['density']:.2f}, "
                     f"coverage {last['coverage']:.2f}; the whole curve is `quality.csv` / `quality.png`.")
    readme = ROOT / "data" / "README.md"
    body = readme.read_text(encoding="utf-8")
    if BEGIN in body and END in body:
        head, rest = body.split(BEGIN, 1)
        write_text(readme, head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + rest.split(END, 1)[1])
    print("\n".join(lines))


if __name__ == "__main__":
    main()
