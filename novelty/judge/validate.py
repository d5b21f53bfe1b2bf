"""Validation harness: plant known copies and unseen real images among "generated" samples, and
measure what the copy verdict catches (``novelty validate``).

From a folder of real images:

1. every image is decoded, fitted and embedded (features cached under ``OUT/features``, keyed by
   file content like a run's feature store), and near-duplicate groups are found (:mod:`novelty.curate.curation`);
2. a seeded, group-aware ``unseen_fraction`` of the images (seed + 1) is set aside as UNSEEN real
   images: they play genuinely novel samples; the rest is the TRAINING set;
3. the training set goes through exactly the verdict path of a run
   (:func:`novelty.judge.verdicts.calibrate_training`: duplicate groups, held-out split with ``seed``, copy
   rule at ``fpr``);
4. ``copies`` training images (seeded) are copied in each way of :data:`KINDS`, on the fitted
   image: ``exact``; ``flip`` (mirrored left-right); ``crop95``, ``crop90``, ``crop80`` (a window
   keeping 95%, 90% or 80% of each side at a random place, resized back); ``jitter`` (brightness, contrast and saturation each scaled by a random factor in
   0.75-1.25); ``jpeg`` (re-encoded at quality 30);
5. copies and unseen images are judged like generated samples, by the combined rule and by each
   piece of evidence alone (calibrated at the same ``fpr``), with the mirror search of ``judge_run``
   unless ``mirror=False`` (each probe and held-out image is then also embedded flipped left-right)
   and the aligned pixel match unless ``align=False`` (:mod:`novelty.judge.alignment`).

The report gives, per kind of copy, the share flagged (true-positive rate) and, for the unseen real
images, the share flagged (false-positive rate), each with an exact 95% interval; it is written to
``OUT/validation.json``, drawn in ``OUT/validation.png`` and printed as a table.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from novelty import bounds, defaults
from novelty.curate.duplicates import duplicate_groups
from novelty.embed.features import Extractor, MirroredExtractor
from novelty.embed.featurestore import FeatureStore
from novelty.errors import NoveltyError
from novelty.files import is_inside, write_json
from novelty.images.sets import ImageSet, decode_set
from novelty.judge.alignment import TrainingPixels, grey
from novelty.judge.calibration import calibrate, holdout_split, judge
from novelty.judge.heldout import calibrate_training, nearest_training
from novelty.judge.rates import clopper_pearson
from novelty.plots import validation_rates
from novelty.search.backends import make_backend, resolve_index, using
from novelty.search.backends import report as search_report
from novelty.search.neighbors import normalize

CROPS = {"crop95": 0.95, "crop90": 0.90, "crop80": 0.80}  # share of each side a crop keeps
KINDS: tuple[str, ...] = ("exact", "flip", *CROPS, "jitter", "jpeg")
JITTER = (0.75, 1.25)  # range of the brightness, contrast and saturation factors
JPEG_QUALITY = 30
COMBINED = "combined"
UNSEEN = "unseen"
GOALS = {"flip": 0.9, **{kind: 0.9 for kind in CROPS}, "jitter": 0.9}  # least share of these copies to flag
UNSEEN_GOAL = 0.05  # most share of unseen real images to flag
REPORT_FILE = "validation.json"
PLOT_FILE = "validation.png"  # the rates as bars with their intervals and the goals


def inject(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A copy of an RGB uint8 ``(H, W, 3)`` image, made in the way ``kind`` (one of :data:`KINDS`)."""
    from PIL import Image, ImageEnhance

    if kind not in KINDS:
        raise NoveltyError(f"unknown kind of copy {kind!r}; must be one of: {', '.join(KINDS)}")
    arr = np.asarray(image, dtype=np.uint8)
    if kind == "exact":
        return arr.copy()
    if kind == "flip":
        return np.ascontiguousarray(arr[:, ::-1])
    img = Image.fromarray(arr)
    height, width = arr.shape[:2]
    if kind in CROPS:
        side = CROPS[kind]
        w, h = max(1, round(width * side)), max(1, round(height * side))
        left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        img = img.crop((left, top, left + w, top + h)).resize((width, height), Image.Resampling.LANCZOS)
    elif kind == "jitter":
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            img = enhancer(img).enhance(float(rng.uniform(*JITTER)))
    else:  # jpeg
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        buffer.seek(0)
        img = Image.open(buffer).convert("RGB")
    return np.asarray(img, dtype=np.uint8)


@dataclass(frozen=True)
class Cell:
    flagged: int
    n: int
    rate: float
    interval: tuple[float, float]


@dataclass
class ValidationReport:
    rates: dict[str, dict[str, Cell]]  # row (kind of copy, or "unseen") -> column (layer or "combined")
    settings: dict
    counts: dict
    goals: dict
    warnings: list[str] = field(default_factory=list)
    search_index: dict | None = None  # the search backend and, when approximate, its measured recall

    def as_dict(self) -> dict:
        return {"rates": {row: {col: asdict(cell) for col, cell in cols.items()} for row, cols in self.rates.items()},
                "settings": self.settings, "counts": self.counts, "goals": self.goals, "warnings": self.warnings,
                "search_index": self.search_index}

    def table(self) -> str:
        """The rates as a plain-text table: rows are kinds of copy, then the unseen real images."""
        columns = list(next(iter(self.rates.values())))
        width = max(12, *(len(c) + 2 for c in columns))
        lines = [f"{'flagged':<22}" + "".join(f"{c:>{width}}" for c in columns)]
        for row, cells in self.rates.items():
            label = f"{row} copies" if row != UNSEEN else "unseen real (FPR)"
            lines.append(f"{label:<22}" + "".join(
                f"{cells[c].rate:>{width}.3f}" for c in columns))
        n_copies = next(iter(self.rates[KINDS[0]].values())).n if KINDS[0] in self.rates else 0
        lines.append(f"({n_copies} copies per kind, {self.counts['unseen']} unseen real images, "
                     f"false positive rate {self.settings['false_positive_rate']}; exact 95% intervals in "
                     f"{REPORT_FILE})")
        return "\n".join(lines)


def _cell(flags: np.ndarray) -> Cell:
    flagged, n = int(np.sum(flags)), int(len(flags))
    return Cell(flagged, n, flagged / n if n else float("nan"), clopper_pearson(flagged, n))


def evaluate(training: dict[str, np.ndarray], probes: dict[str, dict[str, np.ndarray]], *,
             mirrored_probes: dict[str, dict[str, np.ndarray]] | None = None,
             training_mirrored: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
             probe_pixels: dict | None = None, training_pixels: Callable[[np.ndarray], object] | None = None,
             fpr: float = defaults.FALSE_POSITIVE_RATE, holdout_fraction: float = defaults.HOLDOUT_FRACTION,
             seed: int = defaults.SEED, k: int = defaults.TOP_K,
             progress: bool = False) -> tuple[dict[str, dict[str, Cell]], dict]:
    """Flag rates of PROBE sets (``{row: {layer: (n, D)}}``, judged as GENERATED) against TRAINING
    ``{layer: (N, D)}``, for the combined rule and each piece of evidence alone. Returns (rates,
    calibration summary).

    ``mirrored_probes`` (the probes flipped left-right) and ``training_mirrored`` (flipped training
    images by index) turn on the mirror search, as in :func:`novelty.judge.assess.assess`; ``probe_pixels``
    (``{row: grey images}``, :func:`novelty.judge.alignment.grey`) and ``training_pixels`` (those of training
    images by index) the aligned pixel
    match (:mod:`novelty.judge.alignment`).
    """
    train = {layer: normalize(x) for layer, x in training.items()}
    tc = calibrate_training(train, k=k, holdout_fraction=holdout_fraction, fpr=fpr, seed=seed,
                            mirrored=training_mirrored, pixels=training_pixels if probe_pixels else None,
                            progress=progress)
    names = tc.calibration.layers
    held = {name: tc.heldout_nearest[name][1] for name in names}
    rules = {COMBINED: tc.calibration} | {name: calibrate({name: held[name]}, fpr=fpr) for name in names}
    rates: dict[str, dict[str, Cell]] = {}
    for row, feats in probes.items():
        nearest, _ = nearest_training(
            {layer: normalize(feats[layer]) for layer in train}, train,
            mirrored=({layer: normalize(x) for layer, x in mirrored_probes[row].items()}
                      if mirrored_probes is not None else None),
            query_pixels=probe_pixels[row] if probe_pixels else None, training_pixels=training_pixels,
            progress=progress, desc=f"aligning {row}")
        rates[row] = {}
        for name, rule in rules.items():
            verdict = judge(rule, {layer: nearest[layer][1] for layer in rule.layers})
            rates[row][name] = _cell(verdict.is_copy)
    summary = tc.calibration.summary() | {"n_reference": len(tc.reference), "n_heldout": len(tc.heldout)}
    return rates, summary


def validate(train_dir: str | os.PathLike, out: str | os.PathLike, *, weights: str = defaults.WEIGHTS,
             preprocess: str = defaults.PREPROCESS, input_size: int = defaults.INPUT_SIZE,
             layers: tuple[str, ...] = defaults.LAYERS, fit_mode: str = defaults.FIT_MODE,
             block1_reduce: str = defaults.BLOCK1_REDUCE,
             copies: int = defaults.VALIDATE_COPIES, unseen_fraction: float = defaults.VALIDATE_UNSEEN_FRACTION,
             holdout_fraction: float = defaults.HOLDOUT_FRACTION, fpr: float = defaults.FALSE_POSITIVE_RATE,
             seed: int = defaults.SEED, batch_size: int = defaults.EMBED_BATCH_SIZE, mirror: bool = True,
             align: bool = True, index: str = defaults.INDEX, extractor=None, progress: bool = True,
             plot: bool = True) -> ValidationReport:
    """Run the harness on the images in ``train_dir``; write ``out/validation.json`` (and, with
    ``plot``, the rates as bars in ``out/validation.png``); return the report.

    ``mirror``: judge with the mirror search, as ``judge_run`` does by default (every probe and
    held-out image is also embedded flipped left-right). ``align``: add the aligned pixel match, as
    ``judge_run`` does by default (:mod:`novelty.judge.alignment`). ``index``: the search backend, as
    ``analyze --index`` picks it (:func:`novelty.search.backends.resolve_index`); a FAISS search's
    recall@24 goes into the report ("search_index"), so the flag rates of FAISS and exact search can
    be compared on one collection.

    ``extractor``: a :class:`novelty.embed.features.Extractor` to use instead of building one from
    ``weights``, ``preprocess``, ``input_size``, ``layers``, ``block1_reduce`` and ``fit_mode``.
    """
    bounds.check_all(("validate_copies", "copies", copies), ("unseen_fraction", "unseen_fraction", unseen_fraction),
                     ("holdout_fraction", "holdout_fraction", holdout_fraction), ("false_positive_rate", "fpr", fpr),
                     ("seed", "seed", seed), ("embed_batch_size", "batch_size", batch_size),
                     ("input_size", "input_size", input_size))
    out = Path(out)
    train_dir = Path(train_dir)
    if train_dir.is_dir() and is_inside(out, train_dir):
        raise NoveltyError(f"the output folder {out} must not lie inside the image folder {train_dir}")
    if extractor is None:
        extractor = Extractor(weights=weights, preprocess=preprocess, input_size=input_size, layers=layers,
                              block1_reduce=block1_reduce, seed=seed, fit_mode=fit_mode)
    layers = tuple(extractor.layers)
    images, features = _embed_images(train_dir, out, extractor, extractor.input_size or input_size, fit_mode,
                                     batch_size, progress)
    n_all = len(images.ids)

    # unseen real images: a group-aware split, so none has a near-duplicate left in the training set
    components = duplicate_groups(features)[2]
    train_idx, unseen_idx = holdout_split(n_all, unseen_fraction, seed + 1, groups=components)
    rng = np.random.default_rng(seed)
    n_copies = min(copies, len(train_idx))
    sources = np.sort(rng.choice(train_idx, n_copies, replace=False))

    flipped = _mirror_embedder(extractor, batch_size, progress)
    probes, mirrored, probe_grey = _probes(images, features, sources, unseen_idx, extractor, rng,
                                           batch_size=batch_size, mirror=mirror, align=align,
                                           progress=progress, flipped=flipped)
    backend = make_backend(resolve_index(index, len(train_idx)), seed)
    with using(backend):
        rates, calibration = evaluate(
            {layer: features[layer][train_idx] for layer in layers}, probes,
            mirrored_probes=mirrored if mirror else None,
            training_mirrored=(lambda rows: flipped(images.images[train_idx[rows]], "held-out images")) if mirror else None,
            probe_pixels=probe_grey or None,
            training_pixels=TrainingPixels(lambda rows: images.images[train_idx[rows]]) if align else None,
            fpr=fpr, holdout_fraction=holdout_fraction, seed=seed, progress=progress)
    settings = {"train_dir": str(train_dir.resolve()), "weights": extractor.weights.to_json(),
                "preprocess": extractor.preprocess, "input_size": extractor.input_size, "fit": fit_mode,
                "layers": list(layers), "copies": n_copies, "unseen_fraction": unseen_fraction,
                "holdout_fraction": holdout_fraction, "false_positive_rate": fpr, "seed": seed,
                "mirror_search": mirror, "aligned_pixel_match": align, "index": backend.name,
                "kinds": {"crop_side": CROPS, "jitter": list(JITTER), "jpeg_quality": JPEG_QUALITY}}
    counts = {"images": n_all, "training": len(train_idx), "unseen": len(unseen_idx),
              "copies_per_kind": n_copies, "skipped": images.skipped,
              "training_heldout": calibration["n_heldout"]}
    report = _report(rates, calibration, settings, counts)
    report.search_index = search_report(backend, index)
    write_json(out / REPORT_FILE, report.as_dict() | {"calibration": calibration})
    if plot:
        validation_rates(out / PLOT_FILE, {row: {col: (cell.rate, *cell.interval) for col, cell in cols.items()}
                                           for row, cols in rates.items()},
                         min(GOALS.values()), UNSEEN_GOAL, fpr, UNSEEN)
    return report


def _embed_images(train_dir: Path, out: Path, extractor, input_size: int, fit_mode: str, batch_size: int,
                  progress: bool) -> tuple[ImageSet, dict[str, np.ndarray]]:
    """The decoded images of ``train_dir`` (at least 10) and their features ``{layer: (N, D)}``,
    L2-normalised, cached in ``out/features``."""
    images = decode_set("training", train_dir, input_size, fit_mode, progress)
    n_all = len(images.ids)
    if n_all < 10:
        raise NoveltyError(f"validation needs at least 10 usable images, received {n_all} in {train_dir}")
    store = FeatureStore(out / "features")
    store.update("training", images.ids, images.sha256, images.images, extractor, batch_size, progress)
    return images, {layer: normalize(store.load("training", layer)[1]) for layer in extractor.layers}


def _mirror_embedder(extractor, batch_size: int, progress: bool) -> Callable[[np.ndarray, str], dict[str, np.ndarray]]:
    """A function embedding a batch of images flipped left-right, ``{layer: (n, D)}``."""
    mirror_extractor = MirroredExtractor(extractor)

    def flipped(batch: np.ndarray, what: str) -> dict[str, np.ndarray]:
        return mirror_extractor.embed(batch, batch_size, progress, desc=f"embedding mirrored {what}")

    return flipped


def _probes(images: ImageSet, features: dict[str, np.ndarray], sources: np.ndarray, unseen_idx: np.ndarray,
            extractor, rng: np.random.Generator, *, batch_size: int, mirror: bool, align: bool, progress: bool,
            flipped: Callable[[np.ndarray, str], dict[str, np.ndarray]]) -> tuple[dict, dict, dict]:
    """The PROBE sets judged as generated: one of copies per kind of :data:`KINDS` (made from the
    training images ``sources``) and the unseen real images. Returns (features, mirrored features
    when ``mirror``, grey pixels when ``align``), each ``{row: ...}``."""
    layers = tuple(extractor.layers)
    probes: dict[str, dict[str, np.ndarray]] = {}
    mirrored: dict[str, dict[str, np.ndarray]] = {}
    probe_grey = {}
    for kind in KINDS:
        made = np.stack([inject(images.images[i], kind, rng) for i in sources])
        if kind == "exact":  # identical pixels give identical features
            probes[kind] = {layer: features[layer][sources] for layer in layers}
        else:
            probes[kind] = extractor.embed(made, batch_size, progress, desc=f"embedding {kind} copies")
        if mirror:
            mirrored[kind] = flipped(made, f"{kind} copies")
        if align:
            probe_grey[kind] = grey(made)
    probes[UNSEEN] = {layer: features[layer][unseen_idx] for layer in layers}
    if mirror:
        mirrored[UNSEEN] = flipped(images.images[unseen_idx], "unseen images")
    if align:
        probe_grey[UNSEEN] = grey(images.images[unseen_idx])
    return probes, mirrored, probe_grey


def _report(rates: dict[str, dict[str, Cell]], calibration: dict, settings: dict, counts: dict) -> ValidationReport:
    """The report: the rates, whether each goal is met, the settings and counts, the calibration's warnings."""
    goals = {kind: {"at_least": goal, "met": rates[kind][COMBINED].rate >= goal} for kind, goal in GOALS.items()}
    goals[UNSEEN] = {"at_most": UNSEEN_GOAL, "met": rates[UNSEEN][COMBINED].rate <= UNSEEN_GOAL}
    return ValidationReport(rates=rates, settings=settings, counts=counts, goals=goals,
                            warnings=list(calibration["warnings"]))
