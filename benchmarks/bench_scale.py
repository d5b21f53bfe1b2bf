"""Every stage after embedding at 10k, 100k and 1M training images x 10k samples: time and peak RSS,
exact against FAISS, with FAISS's recall@24 against exact search.

Features. Synthetic, written as the feature store keeps them (float16 ``.npy``, read memory-mapped),
one file per set and layer, under ``--work``. The generator: ``C = N / 200`` centres (at least 20)
drawn N(0, 1) in D dimensions; each training row is a centre plus N(0, ``--spread``^2) noise,
L2-normalised; samples are drawn the same way from the same centres, 2% of them copies of a
training row plus small noise (1% of its norm). So the data is clustered (neighbour lists are
mostly inside a cluster, as VGG features of a collection are), not uniform noise on which every
index is hopeless and recall means nothing. Layers: ``block5_pool`` at its real 2,048 dimensions
(64 px input); ``block1_pool`` at 4,096 dimensions, the size of ``--block1-reduce sketch:4096`` (or
``pool:4``): unreduced it is 65,536 values per image, 13 GB per 100k images in float16, and exact
search over it would take hours on this machine, so a large collection is analysed reduced.

Stages (each ``(size, backend, stage)`` in its own subprocess, so its peak RSS, ``ru_maxrss``, is
its own; ``ru_maxrss`` counts the store's memory-mapped pages, which the kernel drops under pressure,
so ``peak_own_mb`` gives beside it the peak of the process's own memory, ``RssAnon`` sampled every
0.1 s by :class:`OwnMemory`):

- ``search``: samples -> training top-24, both layers (``analyze``'s search);
- ``self``: the training set's self-neighbours, both layers, as deep as the outlier score needs
  (:func:`novelty.curate.outliers.outlier_depth`: 321 from 1,600 images on), the verdicts' search;
- ``curation``: near-duplicate groups and the outlier score from those lists (no search);
- ``verdicts``: the whole verdict stage, :func:`novelty.judge.verdicts.judge_run`, on a run folder
  holding these features (made beforehand by the parent process, so that copying them into a
  feature store does not count; no neighbour files, so it searches itself): samples -> training,
  self-neighbours, duplicates, outliers, hubs, held-out calibration, PRDC, C_T, modes; without the
  steps that read image files (mirror search, aligned pixel match, pixel flags, plots). This is
  "every stage after embedding"; the three above are its searches and curation on their own;
- ``recall``: FAISS only, the recall@24 its searches measured (``defaults.RECALL_QUERIES`` seeded
  queries against exact search), written as each search runs.

Embedding time of the same set is estimated, not measured: (training + samples) / ``--embed-rate``
images/s, the VGG16 rate measured on this CPU at 64 px (README "Measured": 27-28 img/s).

    python benchmarks/bench_scale.py --sizes 10000             # a minute or two
    python benchmarks/bench_scale.py --sizes 10000,100000      # most of an hour on 2 busy cores
    python benchmarks/bench_scale.py --sizes 1000000 --backends faiss --stages search
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

LAYERS = {"block1_pool": 4096, "block5_pool": 2048}
STAGES = ("search", "self", "curation", "verdicts")
ROWS_PER_CENTRE = 200
CHUNK = 8192


def write_features(path: Path, centres: np.ndarray, assign: np.ndarray, spread: float, seed: int,
                   copies_of: np.ndarray | None = None, training: np.ndarray | None = None) -> None:
    """L2-normalised float16 rows ``centre[assign[i]] + spread * noise`` into ``path`` (.npy), a chunk at a
    time; rows listed in ``copies_of`` (row -> training row) are near copies of ``training`` rows."""
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), mode="w+", dtype=np.float16,
                                    shape=(len(assign), centres.shape[1]))
    for start in range(0, len(assign), CHUNK):
        rows = centres[assign[start:start + CHUNK]] + spread * rng.standard_normal(
            (len(assign[start:start + CHUNK]), centres.shape[1]), dtype=np.float32)
        out[start:start + CHUNK] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    if copies_of is not None:
        for row, source in copies_of.items():
            x = training[source].astype(np.float32)
            x = x + 0.01 * np.linalg.norm(x) * rng.standard_normal(x.shape, dtype=np.float32) / np.sqrt(x.size)
            out[row] = x / np.linalg.norm(x)
    out.flush()
    del out
    path.with_suffix(".tmp.npy").rename(path)


def make_set(work: Path, n_train: int, n_gen: int, spread: float, seed: int) -> Path:
    """The features of one size, made once (kept under ``work``)."""
    folder = work / f"{n_train}x{n_gen}"
    folder.mkdir(parents=True, exist_ok=True)
    for layer_no, (layer, dim) in enumerate(LAYERS.items()):
        train_path, gen_path = folder / f"training-{layer}.npy", folder / f"generated-{layer}.npy"
        if train_path.is_file() and gen_path.is_file():
            continue
        rng = np.random.default_rng(seed + layer_no)
        centres = rng.standard_normal((max(20, n_train // ROWS_PER_CENTRE), dim), dtype=np.float32)
        write_features(train_path, centres, rng.integers(0, len(centres), n_train), spread, seed + 10 + layer_no)
        copy_rows = np.random.default_rng(seed).choice(n_gen, n_gen // 50, replace=False)
        sources = np.random.default_rng(seed + 1).choice(n_train, len(copy_rows), replace=False)
        write_features(gen_path, centres, rng.integers(0, len(centres), n_gen), spread, seed + 20 + layer_no,
                       dict(zip(copy_rows.tolist(), sources.tolist(), strict=True)), np.load(train_path, mmap_mode="r"))
    return folder


def make_run(folder: Path, backend_name: str) -> Path:
    """A run folder of ``folder``'s features for ``judge_run``, recording ``backend_name`` as analyze would."""
    from novelty.embed.featurestore import FeatureStore
    from novelty.files import write_json

    run = folder / f"run-{backend_name}"
    if (run / "run.json").is_file():
        return run
    store = FeatureStore(run / "features", "float16")
    for set_name in ("training", "generated"):
        for layer in LAYERS:
            x = np.load(folder / f"{set_name}-{layer}.npy", mmap_mode="r")
            store.save(set_name, layer, [f"{set_name[0]}{i:07d}.png" for i in range(len(x))], x, {"layer": layer})
    write_json(run / "run.json", {"layers": list(LAYERS), "k": 24, "seed": 0, "index": backend_name,
                                  "search_index": {"backend": backend_name, "requested": backend_name}})
    return run


class OwnMemory:
    """The peak of this process's own memory (``RssAnon`` of ``/proc/self/status``: heap and anonymous
    maps, not file pages), sampled every ``interval`` seconds by a daemon thread; None off Linux."""

    def __init__(self, interval: float = 0.1) -> None:
        self.peak_kb: int | None = None
        self._interval = interval
        threading.Thread(target=self._run, daemon=True).start()

    @staticmethod
    def now_kb() -> int | None:
        try:
            with open("/proc/self/status", encoding="ascii") as status:
                return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:"))
        except (OSError, StopIteration):
            return None

    def _run(self) -> None:
        while (kb := self.now_kb()) is not None:
            self.peak_kb = max(self.peak_kb or 0, kb)
            time.sleep(self._interval)

    def peak_mb(self) -> int | None:
        kb = self.now_kb()  # the last moment too
        peaks = [v for v in (self.peak_kb, kb) if v is not None]
        return round(max(peaks) / 1024) if peaks else None


def peaks(own: OwnMemory) -> dict:
    """``peak_rss_mb`` (``ru_maxrss``, mapped store pages included) and ``peak_own_mb`` of this process."""
    return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "peak_own_mb": own.peak_mb()}


def run_stage(folder: Path, backend_name: str, stage: str) -> dict:
    """One stage in this process (called in a child): seconds, peak RSS, recall where measured."""
    from novelty import defaults
    from novelty.curate.duplicates import duplicate_components, duplicate_rule, self_neighbours
    from novelty.curate.outliers import batch_outliers, outlier_depth
    from novelty.search.backends import make_backend, report, using
    from novelty.search.neighbors import top_k

    own = OwnMemory()
    if stage == "verdicts":
        return run_verdicts(folder / f"run-{backend_name}", own)  # made by the parent: copying features is not the stage
    backend = make_backend(backend_name)
    training = {layer: np.load(folder / f"training-{layer}.npy", mmap_mode="r") for layer in LAYERS}
    n = len(next(iter(training.values())))
    start = time.perf_counter()
    out: dict = {}
    if stage == "search":
        for layer in LAYERS:
            generated = np.load(folder / f"generated-{layer}.npy", mmap_mode="r")
            top_k(generated, training[layer], defaults.TOP_K, backend=backend)
    elif stage == "self":
        for layer in LAYERS:
            began = time.perf_counter()
            with using(backend):
                idx, sims = self_neighbours(training[layer], outlier_depth(n))
            out[f"{layer}_seconds"] = round(time.perf_counter() - began, 1)
            np.save(folder / f"self-{backend_name}-{layer}-idx.npy", idx)
            np.save(folder / f"self-{backend_name}-{layer}-sims.npy", sims)
            del idx, sims
            backend.release()  # one layer's graph and lists at a time (at 1M: 8 GB of graph, 3.9 GB of lists)
    else:
        deep = {layer: (np.load(folder / f"self-{backend_name}-{layer}-idx.npy"),
                        np.load(folder / f"self-{backend_name}-{layer}-sims.npy")) for layer in LAYERS}
        first = {layer: (idx[:, :defaults.TOP_K], sims[:, :defaults.TOP_K]) for layer, (idx, sims) in deep.items()}
        rule = duplicate_rule({layer: sims[:, 0] for layer, (_, sims) in first.items()})
        components = duplicate_components(training, first, rule)
        outliers = batch_outliers(training, deep, components)
        out["duplicate_groups"] = int((np.bincount(components) > 1).sum())
        out["outliers"] = int(outliers.is_outlier.sum())
    out["seconds"] = round(time.perf_counter() - start, 2)
    out |= peaks(own)
    if backend.approximate:
        out["recall_at_24"] = report(backend, backend_name)["recall_at_k"]
        out["searches"] = [{k: s[k] for k in ("queries", "training", "k", "recall_at_k", "kind", "nlist", "nprobe", "efSearch")
                            if k in s} for s in backend.searches]
    return out


def run_verdicts(run: Path, own: OwnMemory) -> dict:
    from novelty.judge.verdicts import judge_run

    start = time.perf_counter()
    summary = judge_run(run, mirror=False, align=False, pixel_flags=False, plots=False, progress=False,
                        cache=False).summary
    out = {"seconds": round(time.perf_counter() - start, 2), **peaks(own),
           "timings": summary.get("timings"), "copies": (summary.get("copies") or {}).get("count")}
    if (summary.get("search_index") or {}).get("approximate"):
        out["recall_at_24"] = summary["search_index"]["recall_at_k"]
        out["graphs"] = sorted({s["graph"] for s in summary["search_index"]["searches"] if s.get("graph")})
    return out


def child(folder: Path, backend: str, stage: str, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", str(folder), backend, stage]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"skipped": f"over {timeout:.0f} s"}
    if done.returncode:
        return {"failed": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="training sizes, comma-separated")
    parser.add_argument("--generated", type=int, default=10_000)
    parser.add_argument("--backends", default="exact,faiss")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--spread", type=float, default=1.0, help="noise around a centre (centres are N(0, 1))")
    parser.add_argument("--embed-rate", type=float, default=27.0, help="VGG16 images/s on this CPU at 64 px")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per stage; longer ones are skipped")
    parser.add_argument("--exact-self-max", type=int, default=20_000,
                        help="exact self-neighbours only up to this many training images (N^2: hours past it)")
    parser.add_argument("--work", type=Path, default=Path("runs/bench_scale"))
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-graphs", action="store_true",
                        help="verdicts: read the FAISS graphs an earlier run saved in RUN/index (a re-run) "
                             "instead of building them")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_stage(Path(args.child[0]), args.child[1], args.child[2])))
        return
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        start = time.perf_counter()
        folder = make_set(args.work, size, args.generated, args.spread, args.seed)
        print(f"{size} x {args.generated}: features ready ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
        embed = (size + args.generated) / args.embed_rate
        for backend in args.backends.split(","):
            row = {"training": size, "generated": args.generated, "backend": backend, "stages": {}}
            for stage in args.stages.split(","):
                if backend == "exact" and stage in ("self", "curation", "verdicts") and size > args.exact_self_max:
                    row["stages"][stage] = {"skipped": f"exact self-neighbours past {args.exact_self_max:,} images"}
                    continue
                if stage == "verdicts":
                    run = make_run(folder, backend)
                    for graph in [] if args.keep_graphs else (run / "index").glob("*.faiss"):
                        graph.unlink()  # this bench's own file: the stage then builds its graphs, as a first run does
                row["stages"][stage] = child(folder, backend, stage, args.timeout)
                print(f"  {backend} {stage}: {row['stages'][stage]}", file=sys.stderr)
            timed = [s["seconds"] for s in row["stages"].values() if "seconds" in s]
            row["seconds"] = round(sum(timed), 1)
            for peak in ("peak_rss_mb", "peak_own_mb"):
                row[peak] = max((s[peak] for s in row["stages"].values() if s.get(peak) is not None), default=None)
            row["embedding_seconds_estimate"] = round(embed)
            row["ratio_to_embedding"] = round(row["seconds"] / embed, 3)
            row["complete"] = len(timed) == len(args.stages.split(","))
            results.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "stages"}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
