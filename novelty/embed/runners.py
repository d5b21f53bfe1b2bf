"""Embedding runners: where VGG16 runs to fill a run's feature store.

- in-process: :meth:`FeatureStore.update <novelty.embed.featurestore.FeatureStore.update>` with an
  :class:`~novelty.embed.features.Extractor` (what ``novelty analyze`` does);
- Apache Beam (:func:`embed_on_beam`, ``novelty embed``): the images are read and embedded by a Beam
  pipeline (:mod:`novelty.embed.beam`) on one of :data:`BEAM_RUNNERS`, which writes feature shards
  (:mod:`novelty.embed.shards`); the driver then fills the store from them through the same
  ``update``, so rows, cache keys, params and storage dtype are those of an in-process run and a later
  ``novelty analyze`` with the same settings embeds none of those images.

``apache_beam`` is imported only inside :func:`embed_on_beam`.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from novelty import defaults
from novelty.errors import NoveltyError
from novelty.files import is_inside, write_text
from novelty.run import tables
from novelty.run.folder import RunFolder

BEAM_RUNNERS: tuple[str, ...] = ("DirectRunner", "FlinkRunner", "SparkRunner", "DataflowRunner")
SETS: tuple[str, ...] = ("training", "generated")
STAGING_PREFIX = ".beam-"  # RUN/features/.beam-<token>/: the pipeline's shards, removed once stored


@dataclass
class EmbedResult:
    """What ``novelty embed`` did to ``run``'s store for ``set_name``."""

    run: Path
    set_name: str
    used: int  # usable images of the set
    skipped: int  # files left out, each with its reason in files.csv
    embedded: int  # images the pipeline's workers ran through VGG16 (Beam's counter)
    stored: int  # rows filled from the pipeline's shards (the others were in the store already)
    runner: str


def embed_on_beam(images: str | os.PathLike, out: str | os.PathLike, *, set_name: str = "training",
                  options=None, seed: int = defaults.SEED, runner: str = "DirectRunner",
                  pipeline_args: Sequence[str] = (), progress: bool = True) -> EmbedResult:
    """Embed the images in ``images`` (a folder, or a ``novelty prepare`` output) on a Beam ``runner``
    into the feature store of the run folder ``out``, as set ``set_name``, and write its files.csv rows.

    ``options``: an :class:`novelty.analysis.AnalyzeOptions` (layers, weights, preprocess, input size,
    fit, batch size, feature dtype, block1 reduction: give ``novelty analyze`` the same ones to reuse
    the features). ``pipeline_args`` are Beam's own flags, passed through. The pipeline's shards are
    staged under ``out/features`` (so every worker must reach ``out``: a shared filesystem off the
    DirectRunner) and removed once stored.
    """
    from novelty.analysis import AnalyzeOptions, extractor_for
    from novelty.embed.featurestore import FeatureStore
    from novelty.embed.shards import KeyRows, ShardFeatures, ShardIndex

    options = options or AnalyzeOptions()
    images, run = Path(images), RunFolder(out)
    _check_request(images, run, set_name, runner)
    try:
        from novelty.embed import beam as beam_pipeline
    except ImportError as exc:
        raise NoveltyError(f"novelty embed needs Apache Beam ({exc}); pip install 'novelty[beam]'") from None
    beam_options = beam_pipeline.pipeline_options(runner, pipeline_args)
    extractor = extractor_for(options, seed)
    store = FeatureStore(run.features_dir, options.feature_dtype)
    cached = _cached_keys(store, set_name, extractor)
    source, listed = _source(images, set_name, options, cached)
    staging = run.features_dir / f"{STAGING_PREFIX}{secrets.token_hex(4)}"
    staging.mkdir(parents=True)
    try:
        handler = beam_pipeline.VGG16Handler(_settings(extractor, options, seed), extractor.weights.sha256,
                                             options.batch_size)
        try:
            with _watch(staging / "shards", f"embedding {set_name} on {runner}", progress):
                embedded = beam_pipeline.run(source, handler, str(staging / "shards"), str(staging / "rows"),
                                             beam_options)
        except NoveltyError:
            raise
        except Exception as exc:  # a worker's error comes back wrapped, with its traceback as text
            raise NoveltyError(f"the Beam pipeline failed on {runner}: {_last_line(exc)}") from None
        rows = listed if listed is not None else _read_rows(staging / "rows")
        used = [row for row in rows if row["status"] == "used"]
        if not used:
            raise NoveltyError(f"no usable {set_name} images in {images} ({len(rows)} files, all skipped)")
        ids, keys = [row["id"] for row in used], [row.pop("key", row["sha256"]) for row in used]
        features = ShardFeatures(extractor, ShardIndex(staging / "shards"))
        stored = store.update(set_name, ids, keys, KeyRows(keys, options.input_size), features,
                              options.batch_size, progress)
        _write_files_csv(run, set_name, rows)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return EmbedResult(run.root, set_name, len(used), len(rows) - len(used), embedded, stored, runner)


@contextlib.contextmanager
def _watch(folder: Path, desc: str, enabled: bool, every: float = 0.5) -> Iterator[None]:
    """A progress bar of the images embedded while the pipeline runs: the rows of the finished shards
    in ``folder``, counted by a thread every ``every`` seconds (the pipeline's workers may be other
    processes, or other machines)."""
    from tqdm.auto import tqdm

    from novelty.embed.shards import shard_rows

    stop = threading.Event()
    seen: set[str] = set()

    def poll(bar) -> None:
        while True:
            stopping = stop.wait(every)
            bar.update(shard_rows(folder, seen))
            if stopping:
                return

    with tqdm(desc=desc, unit="img", disable=not enabled) as bar:
        thread = threading.Thread(target=poll, args=(bar,), daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def _check_request(images: Path, run: RunFolder, set_name: str, runner: str) -> None:
    if runner not in BEAM_RUNNERS:
        raise NoveltyError(f"unknown Beam runner {runner!r}; must be one of: {', '.join(BEAM_RUNNERS)}")
    if set_name not in SETS:
        raise NoveltyError(f"unknown image set {set_name!r}; must be one of: {', '.join(SETS)}")
    if not images.is_dir():
        raise NoveltyError(f"image folder not found: {images}")
    if is_inside(run.root, images):
        raise NoveltyError(f"the run folder {run.root} must not lie inside the image folder {images}")


def _settings(extractor, options, seed: int) -> dict:
    """The keyword arguments that rebuild ``extractor`` on a worker."""
    return {"weights": options.weights, "preprocess": extractor.preprocess, "input_size": extractor.input_size,
            "layers": list(extractor.layers), "block1_reduce": options.block1_reduce, "seed": seed,
            "fit_mode": extractor.fit_mode}


def _cached_keys(store, set_name: str, extractor) -> set[str]:
    """Keys whose features the store holds for every layer with ``extractor``'s params: not embedded again."""
    keys: set[str] | None = None
    for layer in extractor.layers:
        rows, _ = store.cached_rows(set_name, layer, extractor.params(layer))
        keys = set(rows) if keys is None else keys & set(rows)
    return keys or set()


def _source(images: Path, set_name: str, options, cached: set[str]) -> tuple[dict, list[dict] | None]:
    """The pipeline's input, and for prepared shards the files.csv rows (with each image's ``key``)
    known from the manifest (None for a folder: the workers make its rows)."""
    from novelty.images.decode import find_images
    from novelty.images.pipeline import is_shard_folder

    common = {"size": options.input_size, "fit_mode": options.fit_mode, "cached": sorted(cached)}
    if not is_shard_folder(images):
        paths = find_images(images)
        if not paths:
            raise NoveltyError(f"no files found in image folder: {images}")
        files = [(order, os.fsencode(path)) for order, path in enumerate(paths)]
        return {**common, "files": files, "root": str(images), "set_name": set_name}, None
    from novelty.images.records import manifest_entries, read_manifest, read_skipped
    from novelty.images.sets import prepared_rows

    manifest = read_manifest(images)
    shards = [images / name for name in manifest["shards"]]
    absent = [path.name for path in shards if not path.is_file()]
    if absent or not shards:
        raise NoveltyError(f"shard {absent[0] if absent else '(none listed)'} missing from {images}: "
                           "run `novelty prepare` again")
    used, keys, skipped = prepared_rows(set_name, manifest, manifest_entries(manifest), read_skipped(images),
                                        options.input_size, options.fit_mode)
    for row, key in zip(used, keys, strict=True):
        row["key"] = key
    by_id = {row["id"]: key for row, key in zip(used, keys, strict=True)}
    return {**common, "records": [str(path) for path in shards], "keys": by_id}, used + skipped


def _read_rows(prefix: Path) -> list[dict]:
    """The files.csv rows the workers wrote (JSON lines), in the folder's order."""
    rows = []
    for path in sorted(glob.glob(f"{glob.escape(str(prefix))}*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            rows.extend(json.loads(line) for line in handle if line.strip())
    rows.sort(key=lambda row: row.pop("order"))
    return rows


def _write_files_csv(run: RunFolder, set_name: str, rows: list[dict]) -> None:
    """RUN/files.csv with ``set_name``'s rows replaced by ``rows`` (another set's rows are kept)."""
    kept = []
    if run.files_csv.is_file():
        try:
            header, old = tables.raw_rows(run.files_csv)
        except NoveltyError:
            header, old = [], []
        if sorted(header) == sorted(rows[0]):  # a files.csv of another layout is replaced, not mixed
            kept = [row for row in old if row["set"] != set_name]
    ordered = [row for row in kept if row["set"] == "training"] + rows + \
              [row for row in kept if row["set"] != "training"]
    write_text(run.files_csv, tables.table_text(tables.FILES, ordered))


def _last_line(exc: BaseException) -> str:
    """The last non-empty line of an exception's text (where a wrapped worker error says what went wrong)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]
