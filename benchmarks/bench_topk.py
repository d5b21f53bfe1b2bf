"""Exact cosine top-k: novelty.search.neighbors.top_k against FAISS IndexFlatIP and the original's per-query cdist.

The 2018 demo ranked each generated sample on its own: ``scipy.spatial.distance.cdist(query, train,
"cosine")`` then a full ``argsort``. ``top_k`` does the same maths as blocked matrix products with a
running top-k. All three run here in one process on the same seeded random float32 data
(standard normal, 2,048 dimensions by default), each from raw features to a top-k list (FAISS's time
includes normalising and building its index). Times are medians of ``--repeat`` runs (a run over
30 s is not repeated); the machine may be busy, so compare ratios, not seconds.

The original is far too slow to run in full (seconds per query at 100k training rows), so it runs
on the first ``--original-queries`` queries and its median time per query is extrapolated to all N;
the output says so. Agreement: the share of (query, rank) slots, of top-1s and of whole top-k sets
equal to top_k's answer.

    python benchmarks/bench_topk.py                       # 1000x10000 and 10000x100000
    python benchmarks/bench_topk.py --sizes 1000x10000    # about a minute

The 10000x100000 size does about 4e12 flops per method: minutes on two cores, more on a busy machine
(25 minutes in all with a training run beside it).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from novelty import defaults
from novelty.search.neighbors import normalize, top_k


def original(generated: np.ndarray, training: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """The 2018 way: one cdist row per GENERATED query, full argsort, similarity = 1 - distance.

    Also returns the seconds each query took.
    """
    from scipy.spatial.distance import cdist

    indices = np.empty((len(generated), k), dtype=np.int64)
    sims = np.empty((len(generated), k), dtype=np.float32)
    seconds = []
    for q, row in enumerate(generated):
        start = time.perf_counter()
        dist = cdist(row[None, :], training, "cosine")[0]
        order = np.argsort(dist, kind="stable")[:k]
        indices[q], sims[q] = order, 1.0 - dist[order]
        seconds.append(time.perf_counter() - start)
    return indices, sims, seconds


def faiss_flat_ip(generated: np.ndarray, training: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    index = faiss.IndexFlatIP(training.shape[1])
    index.add(normalize(training))
    sims, indices = index.search(normalize(generated), k)
    return indices, sims


def timed(fn, *args, repeat: int = 1):
    """(median seconds, result) over up to ``repeat`` runs; a run over 30 s is not repeated."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
        if times[-1] > 30:
            break
    return float(np.median(times)), result


def agreement(indices: np.ndarray, reference: np.ndarray) -> str:
    slots = float((indices == reference).mean())
    top1 = float((indices[:, 0] == reference[:, 0]).mean())
    sets = float(np.mean([set(a) == set(b) for a, b in zip(indices, reference, strict=True)]))
    return f"same index per rank {slots:.4f}, same top-1 {top1:.4f}, same set {sets:.4f}"


def run(n: int, m: int, dim: int, k: int, seed: int, original_queries: int,
        chunk_size: tuple[int, int] | None, repeat: int) -> None:
    rng = np.random.default_rng(seed)
    generated = rng.standard_normal((n, dim), dtype=np.float32)
    training = rng.standard_normal((m, dim), dtype=np.float32)
    print(f"\n== {n:,} generated x {m:,} training, {dim} dims float32, k={k}, seed {seed}", flush=True)

    t_ours, (ours_i, ours_s) = timed(lambda: top_k(generated, training, k, chunk_size=chunk_size),
                                        repeat=repeat)
    print(f"top_k (exact, numpy)   {t_ours:8.2f} s", flush=True)

    try:
        t_faiss, (faiss_i, faiss_s) = timed(faiss_flat_ip, generated, training, k, repeat=repeat)
    except ImportError:
        t_faiss = None
        print("faiss IndexFlatIP      not installed (pip install faiss-cpu); skipped")
    else:
        print(f"faiss IndexFlatIP      {t_faiss:8.2f} s   top_k speed = {t_faiss / t_ours:.2f}x FAISS "
              f"(goal >= 0.8x)", flush=True)
        print(f"  agreement with FAISS: {agreement(faiss_i, ours_i)}; "
              f"max |score diff| {np.abs(faiss_s - ours_s).max():.2e}")

    q = min(original_queries, n)
    orig_i, orig_s, seconds = original(generated[:q], training, k)
    per_query = float(np.median(seconds))
    estimate = per_query * n
    note = (f"median query time x {n:,}" if q == n else
            f"EXTRAPOLATED: median of {q} timed queries ({sum(seconds):.1f} s in all) x {n:,}")
    print(f"original cdist+argsort {estimate:8.2f} s   ({note}; {per_query:.4f} s/query)")
    print(f"  top_k speed = {estimate / t_ours:.0f}x the original (goal >= 50x)")
    print(f"  agreement with the original on those {q} queries: {agreement(orig_i, ours_i[:q])}; "
          f"max |score diff| {np.abs(orig_s - ours_s[:q]).max():.2e}", flush=True)


def parse_size(text: str) -> tuple[int, int]:
    n, _, m = text.lower().partition("x")
    return int(n), int(m)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000x10000,10000x100000",
                        help="comma-separated GENERATEDxTRAINING row counts")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--k", type=int, default=defaults.TOP_K)
    parser.add_argument("--seed", type=int, default=defaults.SEED)
    parser.add_argument("--original-queries", type=int, default=50,
                        help="queries the original runs on; its time is extrapolated to all")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of top_k and FAISS per size (median reported; runs over 30 s are not repeated)")
    parser.add_argument("--chunk", default=None, help="top_k chunk sizes GENxTRAIN (default: automatic)")
    args = parser.parse_args(argv)
    chunk = parse_size(args.chunk) if args.chunk else None
    print(f"numpy {np.__version__}; top_k chunk sizes: {chunk or 'automatic'}")
    for size in args.sizes.split(","):
        run(*parse_size(size), args.dim, args.k, args.seed, args.original_queries, chunk, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
