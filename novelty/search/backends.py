"""Search backends: one interface for every neighbour question, and the rule that picks one.

Every nearest-neighbour search of novelty (GENERATED samples -> TRAINING top-k in ``analyze``, the
TRAINING set's self-neighbours behind duplicates, outliers and hubs, held-out and mirrored queries in
the verdicts, the web query) goes through :func:`novelty.search.neighbors.top_k`, which hands it to a
:class:`SearchBackend`; "more like these" scores every TRAINING row against one direction through
:meth:`SearchBackend.similarities`. The implementations, in :data:`BACKENDS`:

- :class:`ExactBackend` (``exact``): blocked numpy matrix products, a running top-k per query
  (:mod:`novelty.search.neighbors`); memory stays bounded by the block size, time grows as N x M.
- :class:`FaissBackend` (``faiss``): a FAISS HNSW graph (inner product of L2-normalised rows) with
  its parameters, and the precision of its copy of the rows, chosen from the TRAINING set's size by
  :func:`faiss_params`; below ``defaults.FAISS_ANN_MIN_TRAINING`` rows a flat (exact) FAISS index;
  an inverted file (IVF-Flat) when asked for by ``params``. A FAISS search is never silent: every
  one measures its recall@k against exact search on a seeded sample of its queries
  (:func:`recall_at_k`), kept in :attr:`SearchBackend.searches` and written to ``run.json`` and
  ``summary.json`` ("search_index").

Which backend a run uses: :func:`resolve_index` (``--index exact|faiss|auto``). The verdicts and the
web query re-use the run's choice (``run.json`` "search_index"), made active with :func:`using`.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from novelty import defaults
from novelty.errors import NoveltyError

INDEX_CHOICES: tuple[str, ...] = ("exact", "faiss", "auto")


class SearchBackend:
    """How the k most cosine-similar TRAINING rows of GENERATED rows are found.

    Subclasses implement :meth:`search`; inputs arrive checked by :func:`novelty.search.neighbors.top_k`.
    ``searches`` lists every approximate search made, with its measured recall.
    """

    name = "base"
    approximate = False

    def __init__(self, seed: int = defaults.SEED, recall_queries: int = defaults.RECALL_QUERIES,
                 folder: str | os.PathLike | None = None) -> None:
        """``seed``: of anything random (an index's training sample, the recall queries);
        ``recall_queries``: queries sampled per approximate search to measure its recall; ``folder``:
        where an index worth keeping is saved and found again (a run's ``index/``; None: nowhere)."""
        self.seed, self.recall_queries = int(seed), int(recall_queries)
        self.folder = Path(folder) if folder is not None else None
        self.searches: list[dict] = []

    def release(self) -> None:
        """Forget any index held in memory (the searches made are kept)."""

    def search(self, generated: np.ndarray, training: np.ndarray, k: int, chunks: tuple[int, int],
               progress: bool) -> tuple[np.ndarray, np.ndarray]:
        """(indices int64 (N, k) into TRAINING, similarities float32 (N, k)), best first; ``generated``
        (N, D) and ``training`` (M, D) raw rows (any float dtype, memory-mapped is fine)."""
        raise NotImplementedError

    def similarities(self, training: np.ndarray, direction: np.ndarray, block: int | None = None) -> np.ndarray:
        """Cosine of every TRAINING row (M, D) with a unit ``direction`` (D,) float64: (M,) float64.

        Always exact (ranking a whole set needs every score), read ``block`` rows at a time (None: as
        many as ``defaults.TOPK_BLOCK_BYTES`` hold in float64)."""
        from novelty.search.neighbors import normalize

        block = block or max(1, defaults.TOPK_BLOCK_BYTES // (8 * max(1, training.shape[1])))
        out = np.empty(len(training), dtype=np.float64)
        for start in range(0, len(training), block):
            out[start:start + block] = normalize(training[start:start + block]).astype(np.float64) @ direction
        return out

    def describe(self) -> dict:
        """What ``run.json``/``summary.json`` record of this backend (its name, kind and parameters)."""
        return {"backend": self.name, "approximate": self.approximate}


class ExactBackend(SearchBackend):
    """Exact cosine top-k: blocked matrix products (:func:`novelty.search.neighbors.exact_top_k`)."""

    name = "exact"

    def search(self, generated, training, k, chunks, progress):
        from novelty.search.neighbors import exact_top_k

        return exact_top_k(generated, training, k, chunks, progress)


HNSW_KINDS = ("hnsw_flat", "hnsw_fp16")  # graph indexes: float32 rows, float16 rows (faiss IndexHNSWSQ QT_fp16)


def faiss_params(training_rows: int, dims: int = 0) -> dict:
    """The FAISS index for a TRAINING set of ``training_rows`` rows of ``dims`` values, by a fixed rule:

    - fewer than ``defaults.FAISS_ANN_MIN_TRAINING`` rows: ``{"kind": "flat"}`` (exact inner product;
      approximation saves nothing worth having there);
    - else HNSW with ``M`` = ``defaults.FAISS_HNSW_M`` links, ``efConstruction`` =
      ``defaults.FAISS_HNSW_EF_CONSTRUCTION`` and ``efSearch`` = ``defaults.FAISS_HNSW_EF_SEARCH`` up to
      100k rows, doubled for each tenfold beyond (1M: 128), and never below the k asked for. The graph
      keeps its own copy of the rows: float32 (``hnsw_flat``) while that copy stays within
      ``defaults.FAISS_GRAPH_FLOAT32_MAX_BYTES``, float16 beyond (``hnsw_fp16``: the precision the
      feature store keeps by default, at half the memory; 1M x 4,096 values: 8 GB instead of 16).

    Why HNSW and not an inverted file: on the masks' VGG16 features an IVF-Flat index needed an
    eighth of the set scanned per query for a recall@24 of 0.90 (IVF scans are memory-bound, and at
    that share slower here than exact blocked search), where HNSW gave 0.998 at efSearch 64.
    """
    m = int(training_rows)
    if m < defaults.FAISS_ANN_MIN_TRAINING:
        return {"kind": "flat"}
    decades = max(0, math.ceil(math.log10(m / 100_000)))
    kind = "hnsw_fp16" if m * int(dims) * 4 > defaults.FAISS_GRAPH_FLOAT32_MAX_BYTES else "hnsw_flat"
    return {"kind": kind, "M": defaults.FAISS_HNSW_M, "efConstruction": defaults.FAISS_HNSW_EF_CONSTRUCTION,
            "efSearch": defaults.FAISS_HNSW_EF_SEARCH * 2 ** decades}


def _faiss():
    try:
        import faiss
    except ImportError:
        raise NoveltyError("backend='faiss' needs the faiss package: pip install 'novelty[faiss]' "
                           "(or faiss-cpu), or use backend='exact'") from None
    return faiss


class FaissBackend(SearchBackend):
    """FAISS over L2-normalised rows (inner product = cosine): flat or HNSW by :func:`faiss_params`,
    or by the ``params`` given (also IVF-Flat). Approximate: each search measures its recall@k (:func:`recall_at_k`)."""

    name = "faiss"
    approximate = True

    def __init__(self, seed: int = defaults.SEED, recall_queries: int = defaults.RECALL_QUERIES,
                 folder: str | os.PathLike | None = None, params: dict | None = None) -> None:
        super().__init__(seed, recall_queries, folder)
        _faiss()
        self.params = params  # None: faiss_params(training shape); else {"kind": "flat"}, an HNSW kind or ivf_flat
        self._built: dict[int, tuple[np.ndarray, object, dict]] = {}  # id(training) -> (training, index, params)

    def release(self) -> None:
        self._built.clear()

    def index(self, training: np.ndarray, chunk: int) -> tuple[object, dict]:
        """The index over ``training`` and its parameters: built once per array (every neighbour
        question of a run searches one set many times) and, for an HNSW graph over a stored file with
        a ``folder``, saved there and read back by later runs (:func:`graph_path`)."""
        if id(training) in self._built and self._built[id(training)][0] is training:
            return self._built[id(training)][1:]
        params = dict(self.params or faiss_params(*training.shape))
        path = graph_path(self.folder, training, params) if params["kind"] in HNSW_KINDS else None
        index = _read_graph(path, training.shape) if path is not None else None
        if index is None:
            index = self._build(training, params, chunk)
            if path is not None:
                _write_graph(index, path)
                params["graph"] = f"{path.name}: built and saved"
        else:
            params["graph"] = f"{path.name}: read"
        self._built[id(training)] = (training, index, params)
        return index, params

    def _build(self, training: np.ndarray, params: dict, chunk: int):
        from tqdm.auto import tqdm

        from novelty.search.neighbors import normalize

        faiss = _faiss()
        m, d = training.shape
        if params["kind"] == "flat":
            index = faiss.IndexFlatIP(d)
        elif params["kind"] in HNSW_KINDS:
            index = (faiss.IndexHNSWFlat(d, int(params["M"]), faiss.METRIC_INNER_PRODUCT)
                     if params["kind"] == "hnsw_flat" else
                     faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_fp16, int(params["M"]), faiss.METRIC_INNER_PRODUCT))
            index.hnsw.efConstruction = int(params["efConstruction"])
        elif params["kind"] == "ivf_flat":
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, int(params["nlist"]), faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = self.seed
            sample = np.sort(np.random.default_rng(self.seed).choice(m, min(m, int(params["nlist"]) * 40), replace=False))
            index.train(np.concatenate([normalize(training[sample[s:s + chunk]]) for s in range(0, len(sample), chunk)]))
            index.nprobe = int(params["nprobe"])
        else:
            raise NoveltyError(f"unknown FAISS index kind {params['kind']!r}; expected flat, hnsw_flat, hnsw_fp16 "
                               f"or ivf_flat")
        for start in tqdm(range(0, m, chunk), desc=f"search index ({params['kind']})", unit="block",
                          disable=m < defaults.FAISS_ANN_MIN_TRAINING):
            index.add(normalize(training[start:start + chunk]))
        return index

    def search(self, generated, training, k, chunks, progress):
        from tqdm.auto import tqdm

        from novelty.search.neighbors import exact_top_k, normalize, sort_best_first

        index, params = self.index(training, chunks[1])
        if params["kind"] in HNSW_KINDS:
            index.hnsw.efSearch = max(int(params["efSearch"]), k)  # fewer candidates than k leaves holes
        n = generated.shape[0]
        indices = np.empty((n, k), dtype=np.int64)
        sims = np.empty((n, k), dtype=np.float32)
        for g0 in tqdm(range(0, n, chunks[0]), desc="nearest neighbours (faiss)", disable=not progress):
            queries = normalize(generated[g0:g0 + chunks[0]])
            found_s, found_i = index.search(queries, k)
            holes = np.flatnonzero((found_i < 0).any(axis=1))
            if holes.size:  # a graph search that reached fewer than k rows: those queries searched exactly
                found_i[holes], found_s[holes] = exact_top_k(queries[holes], training, k, chunks)
            # FAISS orders ties its own way: restore ours (score desc, then lower index) within the k
            indices[g0:g0 + chunks[0]], sims[g0:g0 + chunks[0]] = sort_best_first(np.clip(found_s, -1.0, 1.0), found_i)
        recall, queries = recall_at_k(generated, training, indices, self.recall_queries, self.seed, chunks)
        self.searches.append({"queries": int(n), "training": int(training.shape[0]), "k": int(k),
                              "recall_at_k": recall, "recall_queries": queries, **params})
        return indices, sims

    def describe(self) -> dict:
        return {**super().describe(), "params": self.params or "by training-set size (faiss_params)"}


BACKENDS: dict[str, type[SearchBackend]] = {"exact": ExactBackend, "faiss": FaissBackend}


def graph_path(folder: Path | None, training, params: dict) -> Path | None:
    """Where the graph of ``params`` over ``training`` is kept in ``folder``: named after the feature
    store's data file behind it (``<set>-<layer>-<token>``: the store renames it on every change, so
    the name is the content's key) and the parameters; None without a folder or a whole stored file.
    Each search records which it used (``"graph"``: ``<file>: read`` or ``<file>: built and saved``)."""
    name = getattr(training, "filename", None)
    if folder is None or not name or getattr(training, "rows", None) is not None:
        return None
    data = Path(name)
    storage = "-fp16" if params["kind"] == "hnsw_fp16" else ""
    return folder / f"{data.parent.name}-{data.stem}-hnsw-M{params['M']}-efc{params['efConstruction']}{storage}.faiss"


def _read_graph(path: Path, shape: tuple[int, int]):
    """The graph saved at ``path``, or None when absent, unreadable or not of ``shape``'s rows."""
    faiss = _faiss()
    if not path.is_file():
        return None
    try:
        index = faiss.read_index(str(path))
    except RuntimeError:
        return None
    return index if (index.ntotal, index.d) == tuple(shape) else None


def _write_graph(index, path: Path) -> None:
    """Save ``index`` at ``path`` atomically; graphs of older data of the same set and layer go (they
    are this cache's own files, never a user's)."""
    faiss = _faiss()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, path)
    set_layer = path.name.split("-hnsw-")[0].rsplit("-", 1)[0]
    for old in path.parent.glob(f"{set_layer}-*.faiss"):
        if old != path and old.name.split("-hnsw-")[0].rsplit("-", 1)[0] == set_layer:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()


def recall_at_k(generated: np.ndarray, training: np.ndarray, found: np.ndarray, sample: int = defaults.RECALL_QUERIES,
                seed: int = defaults.SEED, chunks: tuple[int, int] | None = None) -> tuple[float, int]:
    """Recall@k of neighbour lists ``found`` (N, >=k) of GENERATED rows against exact search, with
    k = ``min(defaults.TOP_K, found.shape[1])``, on a seeded random sample of ``sample`` queries
    (all when fewer): (mean share of each query's exact top-k that ``found`` holds, queries used)."""
    from novelty.search.neighbors import exact_top_k

    n = len(generated)
    k = min(defaults.TOP_K, found.shape[1])
    rows = np.sort(np.random.default_rng(seed).choice(n, min(n, sample), replace=False))
    truth, _ = exact_top_k(np.asarray(generated[rows]), training, k,
                           chunks or (len(rows), defaults.TOPK_TRAINING_CHUNK), progress=False)
    hits = sum(len(np.intersect1d(truth[i], found[row, :k])) for i, row in enumerate(rows))
    return round(hits / (len(rows) * k), 4), int(len(rows))


def resolve_index(requested: str, training_rows: int, explicit: bool = True) -> str:
    """The backend name for ``--index requested`` over ``training_rows`` TRAINING rows.

    ``auto``: FAISS from ``defaults.FAISS_AUTO_TRAINING`` rows on (when faiss is installed), exact below.
    Exact search over ``defaults.EXACT_MAX_TRAINING`` rows or more is refused unless ``explicit``
    (the user asked for exact by name): it would take hours.
    """
    if requested not in INDEX_CHOICES:
        raise NoveltyError(f"unknown index {requested!r}; must be one of: {', '.join(INDEX_CHOICES)}")
    name = requested
    if requested == "auto":
        name = "faiss" if training_rows >= defaults.FAISS_AUTO_TRAINING and faiss_available() else "exact"
        explicit = False
    if name == "exact" and training_rows >= defaults.EXACT_MAX_TRAINING and not explicit:
        raise NoveltyError(f"exact search over {training_rows:,} training images would take hours; use "
                           f"--index faiss (pip install faiss-cpu), or --index exact to insist")
    return name


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def make_backend(name: str, seed: int = defaults.SEED, recall_queries: int = defaults.RECALL_QUERIES,
                 folder: str | os.PathLike | None = None) -> SearchBackend:
    """A new backend by name (:data:`BACKENDS`); ``folder``: where it keeps its indexes (a run's ``index/``)."""
    if name not in BACKENDS:
        raise NoveltyError(f"unknown backend {name!r}; expected one of: {', '.join(BACKENDS)}")
    return BACKENDS[name](seed, recall_queries, folder)


def run_backend(record: dict | None, seed: int = defaults.SEED, recall_queries: int = defaults.RECALL_QUERIES,
                folder: str | os.PathLike | None = None) -> SearchBackend:
    """The backend a run recorded (``run.json`` "search_index"; exact when absent: older runs)."""
    return make_backend(str((record if isinstance(record, dict) else {}).get("backend") or "exact"),
                        seed, recall_queries, folder)


_ACTIVE: contextvars.ContextVar[SearchBackend | None] = contextvars.ContextVar("novelty_search_backend", default=None)


def active() -> SearchBackend:
    """The backend :func:`novelty.search.neighbors.top_k` uses when given none: set by :func:`using`, else exact."""
    return _ACTIVE.get() or BACKENDS["exact"]()


@contextlib.contextmanager
def using(backend: SearchBackend) -> Iterator[SearchBackend]:
    """Make ``backend`` the one every search without an explicit backend goes through, inside the block."""
    token = _ACTIVE.set(backend)
    try:
        yield backend
    finally:
        _ACTIVE.reset(token)


def report(backend: SearchBackend, requested: str, earlier: list | tuple = ()) -> dict:
    """The "search_index" record of ``run.json``/``summary.json``: the backend, what was asked for,
    every approximate search (``earlier`` ones first) with its recall@k, and ``recall_at_k``: the
    lowest of them (None when exact)."""
    searches = [*earlier, *backend.searches]
    recalls = [s["recall_at_k"] for s in searches if isinstance(s, dict) and s.get("recall_at_k") is not None]
    return {**backend.describe(), "requested": requested, "recall_k": defaults.TOP_K,
            "recall_queries": defaults.RECALL_QUERIES if backend.approximate else None,
            "recall_at_k": min(recalls) if recalls else None, "searches": searches}


def judged_report(recorded: dict | None, backend: SearchBackend) -> dict:
    """``summary.json`` "search_index": the run's record (``run.json``) with the verdicts' own searches
    (self-neighbours, held-out and mirrored queries) added."""
    recorded = recorded if isinstance(recorded, dict) else {}
    tagged = [{"search": "verdicts", **s} for s in backend.searches]
    backend.searches[:] = tagged
    return report(backend, str(recorded.get("requested") or backend.name), recorded.get("searches") or ())
