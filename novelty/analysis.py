"""``novelty analyze``: orchestration only. Images -> features -> neighbours -> verdicts, into a run folder.

Steps (each timed into ``run.json`` "timings"):

1. ``generate`` (with a checkpoint): seeded samples into ``RUN/generated`` (:mod:`novelty.gan.generate`);
2. ``decode``: both folders scanned (:mod:`novelty.images.decode`; no pixels kept), every image fitted to ``input_size`` by
   ``images.fit`` (centre crop by default, ``fit_mode="pad"`` to keep everything), so training images and generated samples of any size meet VGG16 at one
   size (default 64, the 2018 demo's native size); an undecodable file is listed in ``files.csv`` with
   its reason and left out, never embedded as zeros;
3. ``embed_training``, ``embed_generated``: :class:`novelty.embed.features.Extractor` through the
   content-hash cache of :class:`novelty.embed.featurestore.FeatureStore` (``RUN/features``); only the
   images not cached are decoded again, a batch at a time (:class:`novelty.images.sets.FolderPixels`),
   so memory stays flat as a set grows;
4. ``search``: top-k per layer (:func:`novelty.search.neighbors.top_k`) through the backend
   :func:`novelty.search.backends.resolve_index` picks (exact by default; FAISS with its measured
   recall@24 in ``run.json`` "search_index") -> ``RUN/neighbors/<layer>.json``, skipped for a layer
   whose features, k and backend are those of the lists already there;
5. ``verdicts``: :func:`novelty.judge.verdicts.judge_run` when that module is installed.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from novelty import __version__, bounds, defaults
from novelty.errors import NoveltyError
from novelty.files import is_inside, read_json, write_json, write_text
from novelty.images.sets import ImageSet, scan_set
from novelty.run import tables
from novelty.run.folder import RunFolder
from novelty.search.backends import INDEX_CHOICES, make_backend, report, resolve_index
from novelty.stopwatch import Stopwatch

VERSION_PACKAGES = ("numpy", "pillow", "keras", "tensorflow", "tensorflow-cpu", "onnx", "faiss-cpu")
TRAINING, GENERATED = "training", "generated"


@dataclass(frozen=True)
class AnalyzeOptions:
    """How features and neighbours are computed; every field is recorded in ``run.json``."""

    layers: tuple[str, ...] = defaults.LAYERS
    k: int = defaults.TOP_K
    weights: str = defaults.WEIGHTS
    preprocess: str = defaults.PREPROCESS
    input_size: int = defaults.INPUT_SIZE
    batch_size: int = defaults.EMBED_BATCH_SIZE
    fit_mode: str = defaults.FIT_MODE
    feature_dtype: str = defaults.FEATURE_DTYPE
    block1_reduce: str = defaults.BLOCK1_REDUCE
    index: str = defaults.INDEX
    progress: bool = True
    verdicts: bool = True  # run novelty.judge.verdicts.judge_run at the end
    holdout_fraction: float = defaults.HOLDOUT_FRACTION  # the verdicts' settings (judge_run; in summary.json)
    fpr: float = defaults.FALSE_POSITIVE_RATE
    mirror: bool = True
    align: bool = True

    def __post_init__(self) -> None:
        bounds.check_all(("top_k", "k", self.k), ("input_size", "input_size", self.input_size),
                         ("embed_batch_size", "batch_size", self.batch_size),
                         ("holdout_fraction", "holdout_fraction", self.holdout_fraction),
                         ("false_positive_rate", "fpr", self.fpr))


@dataclass
class AnalyzeResult:
    run: Path
    counts: dict
    timings: dict
    embedded: dict  # set -> images embedded in this run (0 for a fully cached re-run)
    verdicts: dict | None = None  # the verdicts' summary.json, when they ran
    warnings: list[str] = field(default_factory=list)
    search_index: dict | None = None  # the search backend and, when approximate, its measured recall


def files_csv(sets: Sequence[ImageSet]) -> str:
    """``files.csv``: one row per file of every set, as :data:`novelty.run.tables.FILES` declares."""
    return tables.table_text(tables.FILES, [row for image_set in sets for row in image_set.rows])


def versions() -> dict[str, str]:
    out = {"novelty": __version__}
    for package in VERSION_PACKAGES:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _previous_manifest(run: RunFolder) -> dict:
    """An earlier ``run.json`` in this folder, or {}."""
    try:
        manifest = read_json(run.run_json)
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _previous_search(run: RunFolder) -> dict:
    """The ``"search"`` entry of an earlier ``run.json`` in this folder (what its neighbour lists
    were computed from), or {}."""
    search = _previous_manifest(run).get("search")
    return search if isinstance(search, dict) else {}


def resolve_generated(out: Path, generated: str | os.PathLike | None, checkpoint: str | os.PathLike | None,
                      n: int, seed: int) -> Path:
    """The folder of generated images: given, or sampled from ``checkpoint`` into ``RUN/generated``."""
    from novelty.gan.generate import samples_folder

    if (generated is None) == (checkpoint is None):
        raise NoveltyError("give exactly one of --generated DIR or --checkpoint PATH")
    if generated is not None:
        return samples_folder(generated)
    from novelty.gan.generate import generate

    return samples_folder(generate(checkpoint, RunFolder(out).generated_dir, n=n, seed=seed))


def analyze(train: str | os.PathLike, out: str | os.PathLike, *, generated: str | os.PathLike | None = None,
            checkpoint: str | os.PathLike | None = None, n: int = defaults.N_SAMPLES,
            seed: int = defaults.SEED, options: AnalyzeOptions = AnalyzeOptions(),
            extractor=None) -> AnalyzeResult:
    """Compare the GENERATED images (a folder, or ``n`` samples of ``checkpoint``) with the TRAINING
    images in ``train``; write the run folder ``out`` and return its counts and timings.

    ``extractor``: an existing :class:`novelty.embed.features.Extractor` to reuse (its layers, weights and
    preprocessing are used; its input size and fit mode must match ``options``); None builds one.
    """
    from novelty.embed.featurestore import FeatureStore
    from novelty.gan.generate import check_request
    check_request(n, seed)
    run = RunFolder(out)
    train = Path(train)
    if options.index not in INDEX_CHOICES:
        raise NoveltyError(f"unknown index {options.index!r}; must be one of: {', '.join(INDEX_CHOICES)}")
    if train.is_dir() and is_inside(run.root, train):
        raise NoveltyError(f"the run folder {run.root} must not lie inside the training folder {train}")
    watch = Stopwatch()
    lap, timings = watch.lap, watch.timings
    extractor = extractor_for(options, seed, extractor)
    lap("weights")
    generated_dir = resolve_generated(run.root, generated, checkpoint, n, seed)
    if not generated_dir.is_dir():
        raise NoveltyError(f"generated image folder not found: {generated_dir}")
    if is_inside(run.root, generated_dir) and checkpoint is None:
        raise NoveltyError(f"the run folder {run.root} must not lie inside the generated folder {generated_dir}")
    if checkpoint is not None:
        lap("generate")

    sets = [scan_set(TRAINING, train, options.input_size, options.fit_mode, options.progress),
            scan_set(GENERATED, generated_dir, options.input_size, options.fit_mode, options.progress)]
    training, generated_set = sets
    if options.k > len(training.ids):
        raise NoveltyError(f"k={options.k} neighbours requested but only {len(training.ids)} usable training "
                           f"images; use --k {len(training.ids)} or less")
    index = resolve_index(options.index, len(training.ids))
    write_text(run.files_csv, files_csv(sets))
    lap("decode")

    store = FeatureStore(run.features_dir, options.feature_dtype)
    embedded = {}
    for image_set in sets:
        embedded[image_set.name] = store.update(image_set.name, image_set.ids, image_set.sha256,
                                                image_set.images, extractor, options.batch_size,
                                                options.progress)
        lap(f"embed_{image_set.name}")
    search_keys, search_index = _search(run, store, extractor.layers, options, make_backend(index, seed, folder=run.index_dir))
    lap("search")

    counts = {"training": len(training.ids), "generated": len(generated_set.ids),
              "skipped": training.skipped + generated_set.skipped}
    warnings = [f"{image_set.root} was prepared from {image_set.source}, which is gone: the web demo shows no "
                f"{image_set.name} images and curate cannot move them"
                for image_set in sets if image_set.prepared and image_set.files_dir == image_set.root]
    manifest = _manifest(train, sets, checkpoint, extractor, options, store, seed=seed, n=n, counts=counts,
                         embedded=embedded, index=index, search=(search_keys, search_index), timings=timings)
    write_json(run.run_json, manifest)
    summary = judge(run, options, watch) if options.verdicts else None
    return AnalyzeResult(run.root, counts, timings, embedded, summary, warnings,
                         (summary or {}).get("search_index") or search_index)


def _manifest(train: Path, sets, checkpoint, extractor, options: AnalyzeOptions, store, *, seed: int, n: int,
              counts: dict, embedded: dict, index: str, search: tuple, timings: dict) -> dict:
    """``run.json``: where the images came from, how they were embedded and searched, counts, timings."""
    training, generated_set = sets
    search_keys, search_index = search
    return {
        "version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "train_dir": str(training.files_dir.resolve()),
        "train_prepared": str(train.resolve()) if training.prepared else None,
        "generated_dir": str(generated_set.files_dir.resolve()),
        "checkpoint": str(Path(checkpoint).resolve()) if checkpoint is not None else None,
        "layers": list(extractor.layers),
        "k": options.k,
        "weights": extractor.weights.to_json(),
        "preprocess": extractor.preprocess,
        "input_size": options.input_size,
        "fit": options.fit_mode,
        "features": {"dtype": {image_set.name: {layer: store.meta(image_set.name, layer)["dtype"]
                                                for layer in extractor.layers} for image_set in sets},
                     "block1_reduce": options.block1_reduce},
        "index": index,
        "search_index": search_index,
        "seed": seed,
        "n": n if checkpoint is not None else None,
        "counts": counts,
        "embedded": embedded,
        "search": search_keys,
        "timings": timings,
        "versions": versions(),
    }


def extractor_for(options: AnalyzeOptions, seed: int, extractor=None):
    """``extractor`` checked against ``options``, or a new one built from them."""
    from novelty.embed.features import Extractor

    if extractor is None:
        return Extractor(weights=options.weights, preprocess=options.preprocess, input_size=options.input_size,
                         layers=options.layers, block1_reduce=options.block1_reduce, seed=seed,
                         fit_mode=options.fit_mode)
    if (extractor.input_size, extractor.fit_mode) != (options.input_size, options.fit_mode):
        raise NoveltyError(f"the extractor embeds at {extractor.input_size} px ({extractor.fit_mode}) but the "
                           f"options ask for {options.input_size} px ({options.fit_mode})")
    return extractor


def _search(run: RunFolder, store, layers: Sequence[str], options: AnalyzeOptions, backend
            ) -> tuple[dict[str, dict], dict]:
    """Write each layer's neighbour file through ``backend`` unless the previous one came from the same
    features, k and backend; returns the search keys and the "search_index" record of ``run.json``
    (a layer not searched again keeps its earlier recall)."""
    from novelty.search.neighbors import save_neighbors, top_k

    previous = _previous_search(run)
    earlier = (_previous_manifest(run).get("search_index") or {}).get("searches") or []
    search_keys, searches = {}, []
    for layer in layers:
        search_keys[layer] = {"training": store.meta(TRAINING, layer)["data"], "k": options.k,
                              "generated": store.meta(GENERATED, layer)["data"], "index": backend.name}
        if previous.get(layer) == search_keys[layer] and run.neighbors(layer).is_file():
            # same features (data files are renamed on every change), same k and backend: still valid
            searches += [s for s in earlier if isinstance(s, dict) and s.get("layer") == layer]
            continue
        training_ids, training_features = store.load(TRAINING, layer)
        generated_ids, generated_features = store.load(GENERATED, layer)
        before = len(backend.searches)
        indices, similarities = top_k(generated_features, training_features, options.k,
                                      backend=backend, progress=options.progress)
        searches += [{"layer": layer, "search": "generated -> training", **s} for s in backend.searches[before:]]
        save_neighbors(run.neighbors(layer), generated_ids, training_ids, indices, similarities)
    backend.searches[:] = searches
    return search_keys, report(backend, options.index)


def judge(run: RunFolder, options: AnalyzeOptions, watch: Stopwatch | None = None) -> dict:
    """The verdict stage on the written run; its summary. ``run.json`` gets the final timings (those of
    ``watch``, else those it holds with the verdicts' seconds added)."""
    from novelty.judge import verdicts

    own = watch is None
    watch = Stopwatch() if own else watch
    judged = verdicts.judge_run(run.root, holdout_fraction=options.holdout_fraction, fpr=options.fpr,
                                mirror=options.mirror, align=options.align, progress=options.progress)
    watch.lap("verdicts")
    manifest = read_json(run.run_json)  # keep anything judge_run added
    manifest["timings"] = (dict(manifest.get("timings") or {}) | watch.timings) if own else watch.timings
    write_json(run.run_json, manifest)
    return judged.summary
