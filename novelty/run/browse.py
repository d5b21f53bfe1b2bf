"""A run folder's results read once, as plain records for browsing (web demo and static export).

This stage only reads what a run wrote: ``run.json`` and ``neighbors/<layer>.json`` are required;
``files.csv``, ``samples.csv``, ``training.csv``, ``summary.json`` and ``plots/*.png`` are used when
present, so a run analysed without verdicts can still be browsed. Records carry ids, never URLs: the
web app and the static export each turn an id into an image address of their own.

Duplicate training images are grouped by ``training.csv``'s ``duplicate_group`` when the run has one,
otherwise by identical file content (``files.csv`` sha256), so a neighbour list can show a copied
image once with a count instead of repeating it.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from novelty import defaults
from novelty.errors import NoveltyError
from novelty.judge.alignment import ALIGNED, EVIDENT_MATCH
from novelty.run import tables
from novelty.run.folder import RunFolder
from novelty.run.imagefiles import file_inside
from novelty.run.trainingview import rounded, training_counts, training_records

# What each VGG16 layer's neighbours mean to a person looking at them.
LAYER_INFO: dict[str, dict[str, str]] = {
    "block1_pool": {
        "label": "colour and texture",
        "description": "Early VGG16 layer (block1_pool): neighbours share colours, edges and textures.",
    },
    "block5_pool": {
        "label": "shape",
        "description": "Deep VGG16 layer (block5_pool): neighbours share shapes and object parts.",
    },
}

_DIGITS = re.compile(r"(\d+)")
CONDITIONAL_KINDS = {"input": ("inputs", "inputs_dir"), "truth": ("truth", "truth_dir")}  # run.json "conditional"

def natural_key(text: str) -> tuple:
    """Sort key that puts "2.png" before "10.png"."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(text))


def layer_info(layer: str) -> dict[str, str]:
    """Label and one-line description of a layer for display."""
    return LAYER_INFO.get(layer, {"label": layer, "description": f"VGG16 layer {layer}."})


def _number(value: object) -> float | None:
    """A finite number from ``summary.json``, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _read(path: Path, schema: tables.Schema, expected: dict | None = None) -> tables.Table | None:
    """The table at ``path`` as :func:`novelty.run.tables.read_table` types it; None when absent."""
    return tables.read_table(path, schema, expected or {}) if path.is_file() else None


def _by_id(table: tables.Table | None) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in table.rows} if table is not None else {}


class Neighbour(NamedTuple):
    """One training image in a generated sample's top-k list at one layer."""

    id: str  # TRAINING id
    similarity: float  # cosine similarity, higher = closer


@dataclass
class RunView:
    """Everything a browser of the run needs, read from the run folder once.

    ``neighbours[layer][generated id]`` lists TRAINING neighbours best first. ``samples`` and
    ``training`` hold the typed rows of ``samples.csv`` / ``training.csv`` by id (empty when absent,
    see :mod:`novelty.run.tables`); ``flag_names`` the pixel flags of ``training.csv``.
    """

    root: Path
    run: dict[str, Any]
    layers: list[str]
    k: int
    train_dir: Path
    generated_dir: Path
    neighbours: dict[str, dict[str, list[Neighbour]]]
    sample_ids: list[str]
    training_ids: list[str]
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)
    training: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    flag_names: list[str] = field(default_factory=list)
    summary_data: dict[str, Any] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)
    _groups: dict[str, str] = field(default_factory=dict)  # training id -> group key (groups of 2+)
    _group_members: dict[str, list[str]] = field(default_factory=dict)
    _retrieved: dict[str, dict[str, int]] = field(default_factory=dict)  # layer -> training id -> n
    _sample_set: set[str] = field(default_factory=set)
    _training_set: set[str] = field(default_factory=set)
    _training_records: list[dict[str, Any]] | None = None  # built on first use, then shared

    # ---- loading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, root: str | os.PathLike) -> RunView:
        """Read a run folder; a one-line :class:`NoveltyError` when required parts are missing."""
        folder = RunFolder(root).require()
        run = tables.read_document(folder.run_json, tables.RUN_JSON)
        layers = [str(layer) for layer in run["layers"]]
        neighbours = {layer: _read_neighbours(folder.neighbors(layer)) for layer in layers}
        if not neighbours:
            raise NoveltyError(f"{folder.root} has no neighbours (neighbors/<layer>.json); run `novelty analyze`")
        k = int(run.get("k") or max((len(v) for n in neighbours.values() for v in n.values()), default=0)
                or defaults.TOP_K)
        summary = tables.read_document(folder.summary_json, tables.SUMMARY) if folder.summary_json.is_file() else None
        tables.check_verdicts(folder.root, summary, layers)
        samples = _by_id(_read(folder.samples_csv, tables.SAMPLES, {"evidence": layers}))
        training_table = _read(folder.training_csv, tables.TRAINING)
        files_table = _read(folder.files_csv, tables.FILES)
        files = {(row["set"], row["id"]): row for row in (files_table.rows if files_table else [])
                 if row["status"] == "used"}
        plots = sorted(p.name for p in folder.plots_dir.glob("*.png")) if folder.plots_dir.is_dir() else []

        sample_ids = set(samples)
        training_ids = {row["id"] for row in training_table.rows} if training_table is not None else set()
        for lists in neighbours.values():
            sample_ids.update(lists)
            for items in lists.values():
                training_ids.update(n.id for n in items)
        for (set_name, ident) in files:
            (sample_ids if set_name == "generated" else training_ids).add(ident)
        view = cls(
            root=folder.root, run=run, layers=layers, k=k,
            train_dir=Path(run["train_dir"]), generated_dir=Path(run["generated_dir"]),
            neighbours=neighbours, sample_ids=sorted(sample_ids, key=natural_key),
            training_ids=sorted(training_ids, key=natural_key), samples=samples,
            files=files, summary_data=summary or {}, plots=plots, training=_by_id(training_table),
            flag_names=training_table.instances["flag"] if training_table is not None else [],
        )
        view._index()
        return view

    def _index(self) -> None:
        self._sample_set = set(self.sample_ids)
        self._training_set = set(self.training_ids)
        members: dict[str, list[str]] = {}
        if any(row["duplicate_group"] for row in self.training.values()):
            for ident, row in self.training.items():
                if row["duplicate_group"]:
                    members.setdefault(f"g{row['duplicate_group']}", []).append(ident)
        else:
            for (set_name, ident), row in self.files.items():
                if set_name == "training" and row["sha256"]:
                    members.setdefault("sha:" + row["sha256"][:16], []).append(ident)
        self._group_members = {key: sorted(ids, key=natural_key) for key, ids in members.items()
                               if len(ids) > 1}
        self._groups = {ident: key for key, ids in self._group_members.items() for ident in ids}
        for layer, lists in self.neighbours.items():
            counts: dict[str, int] = {}
            for items in lists.values():
                for n in items:
                    counts[n.id] = counts.get(n.id, 0) + 1
            self._retrieved[layer] = counts

    # ---- lookups -------------------------------------------------------------------------------
    def has_sample(self, sample_id: str) -> bool:
        return sample_id in self._sample_set

    def has_training(self, training_id: str) -> bool:
        return training_id in self._training_set

    def image_path(self, kind: str, ident: str) -> Path | None:
        """The file of a listed GENERATED or TRAINING image, or None for an unknown id or a path that
        would leave its folder (``..``, absolute paths, symlinks pointing out)."""
        if kind == "generated":
            known, folder = self.has_sample(ident), self.generated_dir
        elif kind == "training":
            known, folder = self.has_training(ident), self.train_dir
        elif kind in CONDITIONAL_KINDS and (conditional := self.run.get("conditional")):
            names, folder_key = CONDITIONAL_KINDS[kind]
            known, folder = ident in set((conditional.get(names) or {}).values()), Path(conditional[folder_key])
        else:
            return None
        if not known or "\\" in ident or "\x00" in ident:
            return None
        return file_inside(folder, ident)

    def plot_path(self, name: str) -> Path | None:
        if name not in self.plots:
            return None
        return file_inside(RunFolder(self.root).plots_dir, name)

    def group_of(self, training_id: str) -> str | None:
        """The duplicate-group key of a TRAINING image, or None when it has no duplicate."""
        return self._groups.get(training_id)

    # ---- records -------------------------------------------------------------------------------
    def calibrated(self, layer: str, similarity: float) -> float | None:
        """Share of the run's held-out images whose nearest-training similarity at ``layer`` stays
        below ``similarity`` (0..1; 0.99 = closer than 99% of unseen real images come), read from the
        held-out quantiles in ``summary.json``; None when the run has no calibration."""
        return self.calibrated_many(layer, [similarity])[0]

    def calibrated_many(self, layer: str, similarities: list[float]) -> list[float | None]:
        """:meth:`calibrated` for several similarities at once."""
        calibration = self.summary_data.get("calibration")
        table = calibration.get(layer) if isinstance(calibration, dict) else None
        quantiles = table.get("quantiles") if isinstance(table, dict) else None
        if not isinstance(quantiles, list) or len(quantiles) < 2 or not similarities:
            return [None] * len(similarities)
        return _share_below(quantiles, similarities)

    def sample(self, sample_id: str) -> dict[str, Any]:
        """One GENERATED sample: verdict and copy score (when the run has verdicts), novelty, and per
        layer its nearest TRAINING image, similarity, calibrated score and p-value; layer agreement."""
        row = self.samples.get(sample_id, {})
        layers = {layer: self._score(row, layer, self.neighbours[layer].get(sample_id) or [])
                  for layer in self.layers}
        deepest = layers[self.layers[-1]]["similarity"]
        aligned = None
        if row.get(f"{ALIGNED}_similarity") is not None:
            aligned = self._score(row, ALIGNED) | {
                "mirrored": bool(row.get(f"{ALIGNED}_mirrored")), "scale": row.get(f"{ALIGNED}_scale"),
                "crop": row.get(f"{ALIGNED}_crop") or None} | self._aligned_level()
            aligned["evident"] = aligned["similarity"] > aligned["level"]
        identical = None
        if row.get("identical_id"):
            identical = {"id": row["identical_id"], "kind": row.get("identical_kind") or None}
        group = row.get("duplicate_group")
        return {"id": sample_id, "verdict": row.get("verdict") or None,
                "copy_score": rounded(row.get("copy_score")), "copy_p_value": rounded(row.get("copy_p_value")),
                "novelty": None if deepest is None else rounded(1.0 - deepest),
                "duplicate_group": None if group is None else str(group),
                "layers": layers, "aligned": aligned, "identical": identical,
                "agreement": self.agreement(sample_id, row.get("layer_agreement")),
                "conditional": self._conditional(sample_id, row)}

    def _conditional(self, sample_id: str, row: dict[str, Any]) -> dict[str, Any] | None:
        """A conditional run's output beside its input and its own ground truth (None for other runs)."""
        conditional = self.run.get("conditional")
        if not conditional:
            return None
        truth = (conditional.get("truth") or {}).get(sample_id)
        return {"input": (conditional.get("inputs") or {}).get(sample_id), "truth": truth,
                "truth_split": row.get("truth_split") or None, "follows_truth": row.get("follows_truth"),
                "truth_similarity": {layer: rounded(row.get(f"truth_similarity_{layer}")) for layer in self.layers},
                "truth_rank": {layer: row.get(f"truth_rank_{layer}") for layer in self.layers}}

    def _aligned_level(self) -> dict[str, Any]:
        """The aligned score above which the pixel match says "crop or rescale of that training image":
        the run's held-out threshold for the match alone when it has one ("heldout"), else
        :data:`novelty.judge.alignment.EVIDENT_MATCH` ("stated")."""
        calibration = self.summary_data.get("calibration")
        thresholds = calibration.get("thresholds") if isinstance(calibration, dict) else None
        level = _number(thresholds.get(ALIGNED)) if isinstance(thresholds, dict) else None
        return {"level": level, "level_from": "heldout"} if level is not None else \
            {"level": EVIDENT_MATCH, "level_from": "stated"}

    def _score(self, row: dict[str, Any], name: str, items: list | tuple = ()) -> dict[str, Any]:
        """One piece of evidence of a sample (a layer, or the aligned pixel match) as ``samples.csv``
        gives it: nearest TRAINING id, similarity, calibrated score (1 - heldout_share, else from the
        held-out quantiles) and p-value; the neighbour list ``items`` fills in for a run without verdicts."""
        similarity = row.get(f"{name}_similarity")
        if similarity is None and items:
            similarity = items[0].similarity
        share = row.get(f"{name}_heldout_share")
        calibrated = 1.0 - share if share is not None else (
            None if similarity is None else self.calibrated(name, similarity))
        return {"nearest": row.get(f"{name}_nearest_id") or (items[0].id if items else None),
                "similarity": rounded(similarity), "calibrated": rounded(calibrated),
                "p_value": rounded(row.get(f"{name}_p_value"))}

    def sample_list(self) -> list[dict[str, Any]]:
        return [self.sample(ident) for ident in self.sample_ids]

    def agreement(self, sample_id: str, jaccard: float | None = None) -> dict[str, Any] | None:
        """How far the first and the last layer agree: shared top-k ids, their Jaccard index (the
        run's ``layer_agreement`` when given) and whether the top-1 is the same."""
        if len(self.layers) < 2:
            return None
        first = self.neighbours[self.layers[0]].get(sample_id) or []
        last = self.neighbours[self.layers[-1]].get(sample_id) or []
        if not first or not last:
            return None
        a, b = {n.id for n in first}, {n.id for n in last}
        shared = len(a & b)
        if jaccard is None:
            jaccard = shared / len(a | b)
        return {"layers": [self.layers[0], self.layers[-1]], "shared": shared,
                "k": max(len(first), len(last)), "jaccard": rounded(jaccard),
                "top1_same": first[0].id == last[0].id}

    def neighbour_list(self, sample_id: str, layer: str, k: int | None = None) -> dict[str, Any]:
        """The top-k TRAINING neighbours of a GENERATED sample at ``layer`` (see :meth:`rank_list`)."""
        items = self.neighbours[layer].get(sample_id) or []
        return {"sample": sample_id, **self.rank_list(layer, items[: k or self.k])}

    def rank_list(self, layer: str, items: list[Neighbour]) -> dict[str, Any]:
        """A best-first list of TRAINING neighbours at ``layer`` as records, with duplicate groups.

        ``neighbors`` keeps every entry (rank, id, similarity, calibrated, group); ``groups`` shows
        each duplicate group once, at its best rank, with the count of its members in the list.
        """
        neighbors = []
        groups: list[dict[str, Any]] = []
        by_key: dict[str, dict[str, Any]] = {}
        calibrated = self.calibrated_many(layer, [item.similarity for item in items])
        for rank, (item, score) in enumerate(zip(items, calibrated, strict=True), start=1):
            key = self._groups.get(item.id)
            entry = {"rank": rank, "id": item.id, "similarity": rounded(item.similarity),
                     "calibrated": rounded(score), "group": key}
            neighbors.append(entry)
            if key is not None and key in by_key:
                by_key[key]["ids"].append(item.id)
                by_key[key]["count"] += 1
                continue
            tile = {**entry, "ids": [item.id], "count": 1,
                    "group_size": len(self._group_members.get(key, [])) if key else 1}
            groups.append(tile)
            if key is not None:
                by_key[key] = tile
        return {"layer": layer, **layer_info(layer), "k": len(items), "neighbors": neighbors,
                "groups": groups}

    def training_rows(self) -> list[dict[str, Any]]:
        """One record per TRAINING image (:func:`novelty.run.trainingview.training_records`), built once
        (a second or more at a million images): treat them as read-only."""
        if self._training_records is None:
            self._training_records = training_records(self.training_ids, self.training, self._retrieved,
                                                      self._group_members, self.flag_names)
        return self._training_records

    def summary(self) -> dict[str, Any]:
        """Set-level statistics (``summary.json``) with the run's settings, counts and plot names."""
        run = self.run
        verdicts: dict[str, int] = {}
        for row in self.samples.values():
            verdict = row.get("verdict") or ""
            if verdict:
                verdicts[verdict] = verdicts.get(verdict, 0) + 1
        return {
            "run": {key: run.get(key) for key in ("version", "created", "train_dir", "generated_dir",
                                                   "checkpoint", "layers", "k", "weights", "preprocess",
                                                   "input_size", "fit", "index", "seed", "counts",
                                                   "timings")}
            | {"conditional": bool(run.get("conditional"))},
            "layers": [{"layer": layer, **layer_info(layer)} for layer in self.layers],
            "counts": {"generated": len(self.sample_ids), "training": len(self.training_ids)},
            "verdicts": verdicts,
            "has_verdicts": bool(self.samples),
            "has_curation": bool(self.training),
            "training_counts": training_counts(self.training_rows()),
            "statistics": self.summary_data,
            "plots": self.plots,
            "search_index": (self.summary_data or {}).get("search_index") or run.get("search_index"),
        }


def _share_below(quantiles: list[float], values: list[float]) -> list[float]:
    """The empirical CDF at each value from evenly spaced quantiles (0%, ..., 100%), interpolated."""
    import numpy as np

    levels = np.linspace(0.0, 1.0, len(quantiles))
    return np.interp(values, np.asarray(quantiles, np.float64), levels, left=0.0, right=1.0).tolist()



def _read_neighbours(path: Path) -> dict[str, list[Neighbour]]:
    from novelty.search.neighbors import load_neighbors

    if not path.is_file():
        raise NoveltyError(f"missing neighbours file {path}; run `novelty analyze`")
    return {str(sample): [Neighbour(item["id"], float(item["score"])) for item in items]
            for sample, items in load_neighbors(path).items()}
