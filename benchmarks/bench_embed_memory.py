"""Peak memory of embedding an image set: the old decode-everything path against the streaming one.

    .venv/bin/python benchmarks/bench_embed_memory.py [--sizes 3000 10000] [--weights imagenet]
        [--modes before after] [--work DIR] [--verdicts]

Each (size, mode) runs in a fresh child process; its peak resident set is the ``ru_maxrss`` that
``os.wait4`` returns for that child. Both modes first build the model and embed one batch, and report
that high-water mark too (the TensorFlow floor), so what grows with the set is plain.

- ``before``: the path ``novelty analyze`` took until the embedding streamed, inlined here: every image
  decoded into one ``(N, 64, 64, 3)`` array, the feature store's ``images[missing]`` copy of it, and
  features written through writable memory maps (their dirty pages count as resident).
- ``after``: :func:`novelty.images.sets.scan_set` (files.csv rows, no pixels kept) and
  :meth:`novelty.embed.featurestore.FeatureStore.update`, which decodes the images a batch at a time
  again and writes features with positioned writes.

The two feature files of each size are then compared bit for bit. Images: the 2,989 masks of
``data/masks/images`` and the ~4,000 Twemoji PNGs (``python -m novelty.images.assets twemoji``),
linked into one folder, topped up to 10,000 with left-right mirrored copies written as PNG; the
3,000 set is the first 3,000 files of that folder. ``--verdicts`` also measures ``novelty analyze``'s
verdict stage (:func:`novelty.judge.verdicts.judge_run`) on the largest set, reusing its features.

Measured (imagenet weights, 64 px, block1_pool + block5_pool, 2 shared cores; TF floor ~830 MiB):

    images  before (decode all)  after (streaming)  before/after
     3,000            1,530 MiB            972 MiB         1.57x  (4.7x above the floor)
    10,000            2,605 MiB            985 MiB         2.64x  (12.1x above the floor)

Features bit for bit equal in both sizes; after, 10,000 images peak at 1.01x the 3,000 peak. Not
streamed yet: search (``analyze`` without verdicts peaked at 2,678 MiB on 10,000) and the verdicts
(10,034 MiB on 10,000 training images, 300 generated).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from novelty import defaults  # noqa: E402
from novelty.analysis import TRAINING  # noqa: E402
from novelty.embed.featurestore import FeatureStore  # noqa: E402
from novelty.images.assets import masks_folder, twemoji_folder  # noqa: E402
from novelty.images.decode import decode, find_images, save_png  # noqa: E402
from novelty.images.sets import decode_set, scan_set  # noqa: E402

SIZE = 64


def peak_mb() -> float:
    """This process's resident high-water mark so far (``VmHWM``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build_folder(work: Path, n: int) -> Path:
    """A folder of ``n`` real images (see the module docstring); made once under ``work``."""
    full = work / "set-10000"
    if not full.is_dir():
        sources = [("masks", p) for p in find_images(masks_folder())] + \
            [("twemoji", p) for p in find_images(twemoji_folder())]
        for kind, path in sources:
            (full / kind).mkdir(parents=True, exist_ok=True)
            (full / kind / path.name).symlink_to(path)
        for kind, path in sources[:max(0, 10_000 - len(sources))]:
            (full / f"{kind}-mirrored").mkdir(parents=True, exist_ok=True)
            save_png(np.ascontiguousarray(decode(path)[0][:, ::-1]), full / f"{kind}-mirrored" / f"{path.stem}.png")
    if n == 10_000:
        return full
    subset = work / f"set-{n}"
    if not subset.is_dir():
        for path in find_images(full)[:n]:
            link = subset / path.relative_to(full)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path.resolve())
    return subset


def embed_before(images_dir: Path, out: Path, extractor, batch_size: int) -> None:
    """The old path: decode everything, copy the rows to embed, write through writable memory maps."""
    image_set = decode_set(TRAINING, images_dir, SIZE, progress=False)
    missing = np.arange(len(image_set.ids))
    images = image_set.images[missing]  # what FeatureStore.update did with a fresh cache
    maps = {layer: np.lib.format.open_memmap(out / f"{layer}.npy", mode="w+", dtype=np.float16,
                                             shape=(len(images), extractor.feature_dim(layer)))
            for layer in extractor.layers}
    done = 0
    for batch in extractor.embed_batches(images, batch_size, progress=False):
        for layer, features in batch.items():
            maps[layer][done:done + len(features)] = features
        done += len(features)
    for array in maps.values():
        array.flush()


def embed_after(images_dir: Path, out: Path, extractor, batch_size: int) -> None:
    """The streaming path that ``novelty analyze`` takes now."""
    image_set = scan_set(TRAINING, images_dir, SIZE, progress=False)
    FeatureStore(out / "features").update(TRAINING, image_set.ids, image_set.sha256, image_set.images,
                                          extractor, batch_size, progress=False)


def child(mode: str, images_dir: Path, out: Path, weights: str, batch_size: int) -> None:
    """Run one measurement; print a JSON line with the TensorFlow floor and the seconds taken."""
    from novelty.embed.features import Extractor

    extractor = Extractor(weights=weights, input_size=SIZE, layers=defaults.LAYERS)
    list(extractor.embed_batches(np.zeros((batch_size, SIZE, SIZE, 3), np.uint8), batch_size, progress=False))
    floor = peak_mb()
    start = time.perf_counter()
    if mode == "verdicts":
        judge(images_dir, out, extractor)
    else:
        (embed_before if mode == "before" else embed_after)(images_dir, out, extractor, batch_size)
    print(json.dumps({"floor_mb": floor, "seconds": time.perf_counter() - start, "peak_mb": peak_mb()}))


def judge(images_dir: Path, run: Path, extractor) -> None:
    """``novelty analyze`` without verdicts (training features cached by the ``after`` run), then the
    verdicts alone with the peak reset in between: the verdict stage's own high-water mark."""
    from novelty.analysis import AnalyzeOptions, analyze
    from novelty.judge.verdicts import judge_run

    generated = run.parent / "generated-300"
    if not generated.is_dir():
        generated.mkdir()
        for path in find_images(images_dir)[::33][:300]:
            (generated / path.name).symlink_to(path.resolve())
    analyze(images_dir, run, generated=generated, options=AnalyzeOptions(verdicts=False, progress=False),
            extractor=extractor)
    print(json.dumps({"analyze_without_verdicts_peak_mb": peak_mb(), "generated": len(find_images(generated))}))
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    judge_run(run, extractor=extractor, progress=False)


def measure(mode: str, images_dir: Path, out: Path, weights: str, batch_size: int) -> dict:
    """One fresh child process: its own report plus the ``ru_maxrss`` that the kernel kept for it."""
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, __file__, "--child", mode, str(images_dir), str(out), "--weights", weights,
               "--batch-size", str(batch_size)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{mode} on {images_dir} failed with exit code {process.returncode}")
    report = {}
    for line in output.splitlines():
        report.update(json.loads(line))
    return report | {"maxrss_mb": usage.ru_maxrss / 1024}  # kilobytes on Linux


def same_features(out: Path) -> bool:
    """Whether the ``before`` and ``after`` features of one size are equal bit for bit, every layer."""
    store = FeatureStore(out / "after" / "features")
    for layer in defaults.LAYERS:
        before = np.load(out / "before" / f"{layer}.npy", mmap_mode="r")
        _, after = store.load(TRAINING, layer)
        if before.dtype != after.dtype or not np.array_equal(before, after):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 10_000],
                        help="set sizes, at most 10000")
    parser.add_argument("--modes", nargs="+", default=["before", "after"], choices=["before", "after"])
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--batch-size", type=int, default=defaults.EMBED_BATCH_SIZE)
    parser.add_argument("--work", type=Path, default=None, help="keep the image folders and features here")
    parser.add_argument("--verdicts", action="store_true", help="also measure the verdict stage")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "IMAGES", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, images_dir, out = args.child
        return child(mode, Path(images_dir), Path(out), args.weights, args.batch_size)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-embed-memory-"))
    print(f"weights={args.weights}, input {SIZE} px, layers {', '.join(defaults.LAYERS)}, batch "
          f"{args.batch_size}, float16 features; work folder {work}")
    rows = {}
    for n in args.sizes:
        images_dir = build_folder(work, n)
        for mode in args.modes:
            rows[n, mode] = measure(mode, images_dir, work / f"out-{n}" / mode, args.weights, args.batch_size)
            print(f"  {n:>6} {mode:<6} peak {rows[n, mode]['maxrss_mb']:8.0f} MiB", flush=True)
    print(f"\n{'images':>7} {'mode':<7} {'peak RSS MiB':>12} {'TF floor MiB':>12} {'above floor':>11} {'seconds':>8}")
    for (n, mode), row in rows.items():
        print(f"{n:>7} {mode:<7} {row['maxrss_mb']:12.0f} {row['floor_mb']:12.0f} "
              f"{row['maxrss_mb'] - row['floor_mb']:11.0f} {row['seconds']:8.0f}")
    if set(args.modes) == {"before", "after"}:
        for n in args.sizes:
            before, after = rows[n, "before"], rows[n, "after"]
            print(f"{n} images: before/after peak {before['maxrss_mb'] / after['maxrss_mb']:.2f}x, above the "
                  f"floor {(before['maxrss_mb'] - before['floor_mb']) / max(after['maxrss_mb'] - after['floor_mb'], 1):.1f}x; "
                  f"features identical: {same_features(work / f'out-{n}')}")
    if len(args.sizes) == 2 and "after" in args.modes:
        small, large = (rows[n, "after"]["maxrss_mb"] for n in sorted(args.sizes))
        print(f"after: peak at {max(args.sizes)} / peak at {min(args.sizes)} images = {large / small:.2f}")
    if args.verdicts and "after" in args.modes:
        n = max(args.sizes)
        row = measure("verdicts", build_folder(work, n), work / f"out-{n}" / "after", args.weights, args.batch_size)
        print(f"verdict stage on {n} training images, {row['generated']} generated: peak {row['peak_mb']:.0f} MiB (reset after "
              f"analyze without verdicts, whose peak was {row['analyze_without_verdicts_peak_mb']:.0f} MiB), "
              f"{row['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
