"""Verdicts and curation of a run folder: reads its features and neighbour lists, writes
``samples.csv``, ``training.csv``, ``summary.json`` and ``plots/*.png``.

Layers, from the bottom: the maths lives in :mod:`novelty.judge.calibration` (held-out split, calibrated
copy rule), :mod:`novelty.judge.rates` (copy-rate intervals), :mod:`novelty.judge.copying` (C_T), :mod:`novelty.judge.prdc` and
:mod:`novelty.curate.curation` (duplicates, outliers, hubs, pixel flags). The pieces of copy evidence
are objects of one interface (:mod:`novelty.judge.evidence`), listed in :data:`novelty.judge.assess.EVIDENCE`;
:mod:`novelty.judge.heldout` calibrates them on held-out training images, :mod:`novelty.judge.sets`
gives the set-level statistics and :mod:`novelty.judge.trainingset` the training table.
:func:`novelty.judge.assess.assess` combines them on loaded arrays (what a run gets is listed there);
:func:`judge_run` loads a run folder (:mod:`novelty.judge.runinputs`), calls it and writes the files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from novelty import bounds, defaults
from novelty.errors import NoveltyError
from novelty.files import read_json, write_json
from novelty.judge.alignment import AlignedMatch
from novelty.judge.assess import EVIDENCE, Assessment, assess
from novelty.judge.conditional import cache_part, load_truth
from novelty.judge.evidence import Evidence, EvidenceFailed
from novelty.judge.figures import write_plots
from novelty.judge.heldout import TrainingCalibration, calibrate_training
from novelty.judge.identical import training_overlap
from novelty.judge.modes import add_modes
from novelty.judge.runinputs import (
    RunSource,
    cache_key,
    file_hashes,
    mirror_search,
    neighbours_from_file,
)
from novelty.judge.sets import layer_agreement
from novelty.judge.trainingset import add_pixel_flags
from novelty.run import tables
from novelty.run.folder import RunFolder
from novelty.search.backends import judged_report, run_backend, using
from novelty.stopwatch import Stopwatch

VERDICTS_FORMAT = 5  # bump when what judge_run computes changes: older cached verdicts are then recomputed
STALE_FILES = ("evidence.json",)  # written by older versions and read by nothing: removed on a new verdict

# assess & co. re-exported: the verdicts' one import for callers that judge arrays as well as run folders
__all__ = ["EVIDENCE", "Assessment", "JudgeResult", "TrainingCalibration", "assess", "calibrate_training",
           "judge_run", "layer_agreement"]


@dataclass
class JudgeResult:
    run: Path
    summary: dict
    files: list[Path]
    cached: bool = False  # True: the files were already up to date and nothing was recomputed


def _manifest(run: RunFolder) -> tuple[dict, list[str]]:
    """``run.json`` and its layers; raises NoveltyError when it cannot be read or names none."""
    try:
        manifest = read_json(run.run_json)
    except (OSError, ValueError) as exc:
        raise NoveltyError(f"cannot read {run.run_json}: {exc}") from None
    layers = list(manifest.get("layers") or [])
    if not layers:
        raise NoveltyError(f"{run.run_json} names no layers; re-run `novelty analyze`")
    return manifest, layers


def _cached_result(run: RunFolder, key: str) -> JudgeResult | None:
    """The verdicts already written with cache key ``key``, when every file is still there."""
    try:
        summary = read_json(run.summary_json)
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("cache_key") != key:
        return None
    files = [run.samples_csv, run.training_csv, run.summary_json]
    files += [run.plots_dir / name for name in summary.get("plots") or []]
    if not all(path.is_file() for path in files) or run.table_problems(summary):
        return None
    return JudgeResult(run.root, summary, files, cached=True)


def _run_evidence(source: RunSource, align: bool) -> tuple[list[Evidence], list[str]]:
    """The pieces of :data:`EVIDENCE` a run folder can have (the aligned pixel match only with ``align``),
    and a warning for each kind it cannot have, saying why."""
    pieces, warnings = [], []
    for kind in EVIDENCE:
        if kind is AlignedMatch and not align:
            continue
        try:
            pieces += kind.from_run(source)
        except NoveltyError as exc:
            warnings.append(f"{kind.label} off: {exc}")
    return pieces, warnings


def _assess_without_failures(pieces: list[Evidence], off: list[str], **inputs) -> tuple[Assessment, list[Evidence]]:
    """:func:`assess` with ``pieces``, judged again without any piece whose inputs went missing (e.g. a
    training image deleted since analyze), each with a warning in ``off``; returns the pieces kept."""
    while True:
        try:
            return assess(**inputs, evidence=pieces), pieces
        except EvidenceFailed as exc:
            off.append(f"{exc.piece.label} off: {exc}")
            pieces = [piece for piece in pieces if piece is not exc.piece]


def judge_run(run_dir: str | os.PathLike, *, holdout_fraction: float = defaults.HOLDOUT_FRACTION,
              fpr: float = defaults.FALSE_POSITIVE_RATE, seed: int | None = None, mirror: bool = True,
              align: bool = True, extractor=None, pixel_flags: bool = True, plots: bool = True, progress: bool = True,
              cache: bool = True) -> JudgeResult:
    """Judge a run folder written by ``novelty analyze`` and write its verdict and curation files.

    ``seed`` None uses the run's seed (``run.json`` "seed", else ``defaults.SEED``). ``mirror``: also
    search with each generated sample (and held-out image) flipped left-right, embedded with
    ``extractor`` (None: rebuilt from ``run.json``) and cached in the run's feature store; when that is
    impossible the run is judged without it and a warning says why. ``align``: add the aligned pixel
    match (:mod:`novelty.judge.alignment`), read from the run's image folders; likewise skipped with a
    warning when they are gone (so is any piece of evidence whose inputs are gone).

    ``cache``: when the files were already written from the same features, neighbour lists, folders
    and settings by this version (``summary.json`` "cache_key", see :func:`novelty.judge.runinputs.cache_key`), return them
    as they are (``JudgeResult.cached``) instead of recomputing.
    """
    from novelty.embed.featurestore import FeatureStore

    run = RunFolder(run_dir).require()
    manifest, layers = _manifest(run)
    if seed is None:
        seed = int(manifest.get("seed", defaults.SEED))
    bounds.check_all(("holdout_fraction", "holdout_fraction", holdout_fraction),
                     ("false_positive_rate", "fpr", fpr), ("seed", "seed", seed))
    k = int(manifest.get("k") or defaults.TOP_K)
    store = FeatureStore(run.features_dir)
    settings = {"holdout_fraction": holdout_fraction, "fpr": fpr, "seed": seed, "mirror": mirror, "k": k,
                "align": align, "pixel_flags": pixel_flags, "plots": plots, "index": manifest.get("index") or "exact"}
    if (conditional := cache_part(store, manifest, layers)) is not None:
        settings["conditional"] = conditional
    key = cache_key(run, manifest, store, layers, settings, extractor, VERDICTS_FORMAT)
    if cache and (previous := _cached_result(run, key)) is not None:
        return previous
    training_ids, training, generated_ids, generated, neighbours = _load(run, store, layers)
    truth = load_truth(store, manifest, generated_ids, generated, layers)

    watch = Stopwatch()
    mirrored, warnings = (None, None), []
    if mirror:
        try:
            mirrored = mirror_search(manifest, store, layers, training_ids, generated_ids, extractor, progress)
        except NoveltyError as exc:
            warnings.append(f"mirror search off: {exc}")
    mirror_seconds = watch.lap("mirror_search")
    hashes = {set_name: file_hashes(store, set_name, layers[0], ids)
              for set_name, ids in (("training", training_ids), ("generated", generated_ids))}
    pieces, off = _run_evidence(RunSource(manifest, layers, training_ids, generated_ids, hashes), align)
    # every search of the verdicts goes through it, on the graphs analyze saved where there are some
    backend = run_backend(manifest.get("search_index"), seed, folder=run.index_dir)
    with using(backend):
        result, pieces = _assess_without_failures(
            pieces, off, training=training, generated=generated, training_ids=training_ids,
            generated_ids=generated_ids, generated_neighbours=neighbours, k=k, holdout_fraction=holdout_fraction,
            fpr=fpr, seed=seed, generated_mirrored=mirrored[0], training_mirrored=mirrored[1], truth=truth,
            progress=progress)
    backend.release()  # its indexes: the rest of the stage needs the memory
    watch.lap("assess")
    summary = result.summary
    summary["search_index"] = judged_report(manifest.get("search_index"), backend)
    summary["timings"]["mirror_search_embedding"] = mirror_seconds
    summary["warnings"] += warnings + off + [w for piece in pieces for w in piece.warnings]
    summary["overlap"] = training_overlap(manifest.get("train_dir"), manifest.get("generated_dir"),
                                          hashes["training"], hashes["generated"])
    summary["warnings"][:0] = [summary["overlap"]["warning"]] if summary["overlap"]["warning"] else []
    train_dir = Path(manifest["train_dir"]) if manifest.get("train_dir") else None
    if pixel_flags:
        summary["curation"]["flags"], warns = add_pixel_flags(result.training, train_dir, training_ids, progress)
        summary["warnings"] += warns
        summary["timings"]["pixel_flags"] = watch.lap("pixel_flags")
    summary["modes"], warns = add_modes(result.training, result.samples, training, generated, training_ids,
                                        generated_ids, seed=seed)
    summary["warnings"] += warns
    summary["timings"]["modes"] = watch.lap("modes")
    return _write(run, result, key, train_dir, plots, watch)


def _load(run: RunFolder, store, layers: list[str]):
    """``(training_ids, training, generated_ids, generated, neighbours)`` of a run: both sets' features per
    layer from the store, and analyze's neighbour lists as training rows (None when a layer's is gone)."""
    training_ids, training = store.load_layers("training", layers)
    generated_ids, generated = store.load_layers("generated", layers)
    index = {tid: j for j, tid in enumerate(training_ids)}
    neighbours = {layer: neighbours_from_file(run, layer, generated_ids, index) for layer in layers}
    return training_ids, training, generated_ids, generated, (
        None if any(v is None for v in neighbours.values()) else neighbours)


def _write(run: RunFolder, result: Assessment, key: str, train_dir: Path | None, plots: bool,
           watch: Stopwatch) -> JudgeResult:
    """Write the verdict files of ``result``, ``summary.json`` last (its cache key vouches for the rest)."""
    summary = result.summary
    written = [run.samples_csv, run.training_csv, run.summary_json]
    _write_tables(run, result)
    for name in STALE_FILES:
        (run.root / name).unlink(missing_ok=True)
    if plots:
        watch.lap("write")
        written += write_plots(run, result, train_dir)
        summary["timings"]["plots"] = watch.lap("plots")
    summary["plots"] = sorted(p.name for p in written if p.suffix == ".png")
    summary["cache_key"] = key
    summary["format"] = tables.SUMMARY_FORMAT
    write_json(run.summary_json, summary)
    return JudgeResult(run.root, summary, written)


def _write_tables(run: RunFolder, result: Assessment) -> None:
    tables.write_table(run.samples_csv, tables.SAMPLES, result.samples)
    tables.write_table(run.training_csv, tables.TRAINING, result.training)
