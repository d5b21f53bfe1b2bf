"""The tables of a run folder, each declared once, with the one writer and the one reader of the CSVs.

``samples.csv`` (one row per GENERATED sample) and ``training.csv`` (one row per TRAINING image) are
filled by :mod:`novelty.judge.verdicts` and the curation stage, ``files.csv`` by :mod:`novelty.analysis`;
the web app, the static export, the Python API and the tests read them through :func:`read_table`,
so no other module knows a column's type. A column repeated once per layer (or per pixel flag) is
declared once as a pattern (:class:`Repeated`).

The JSON files are declared here too (:class:`Document`): the keys a reader may rely on and, for
``summary.json``, the format version its writer stamps. A run folder that lacks a declared column or
key, or whose format is older, is refused by :func:`older` with one line that says to re-run
``novelty analyze``; a column the schema does not know is tolerated and read as text.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from novelty.errors import NoveltyError
from novelty.files import read_json, write_text
from novelty.run.schema import TEXT, Column, Document, Repeated, Schema

__all__ = ["FILES", "NEIGHBORS", "RUN_JSON", "SAMPLES", "SUMMARY", "SUMMARY_FORMAT", "TRAINING", "VERDICT_TABLES",
           "Column", "Document", "Repeated", "Schema", "Table", "check_document", "check_verdicts", "damage",
           "document_problems", "header", "older", "outdated", "pixel_flags", "raw_rows", "read_document", "read_table",
           "table_text", "write_table"]


def older(root: str | os.PathLike, detail: str) -> NoveltyError:
    """The one error for a run folder written by an older version of novelty."""
    return NoveltyError(f"{root} was made by an older version of novelty ({detail}): re-run `novelty analyze`")


def check_document(path: str | os.PathLike, doc: Document, data: object) -> dict:
    """``data`` (the parsed ``path``) when it holds ``doc``'s keys and format, else :func:`older`'s error."""
    path = Path(path)
    if not isinstance(data, dict):
        raise NoveltyError(f"{path} must hold a JSON object, received {type(data).__name__}")
    problems = document_problems(doc, data)
    if problems:
        raise older(path.parent, "; ".join(problems))
    return data


def read_document(path: str | os.PathLike, doc: Document) -> dict:
    """The JSON file ``path`` checked by :func:`check_document`; one-line errors when it cannot be read."""
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise NoveltyError(f"cannot read {path}: {exc}") from None
    return check_document(path, doc, data)


def document_problems(doc: Document, data: dict) -> list[str]:
    """What in ``data`` says it was written by an older version: missing (or null) keys, an older format."""
    if doc.version is not None:
        version = data.get("format")
        if isinstance(version, int) and version > doc.version:
            raise NoveltyError(f"{doc.file} has format {version}; this version of novelty reads up to "
                               f"{doc.version}: upgrade novelty")
        if version != doc.version:
            return [f"{doc.file} has format {version if isinstance(version, int) else 'none'}, "
                    f"this version writes {doc.version}"]
    missing = [key for key in doc.keys if key != "format" and data.get(key) is None]
    return [f"{doc.file} has no {', '.join(missing)}"] if missing else []


# ---- the one writer and the one reader --------------------------------------------------------------

def table_text(schema: Schema, rows: Sequence[Mapping[str, Any]]) -> str:
    """``rows`` as CSV text in ``schema``'s column order; booleans as ``true``/``false``, None as empty.

    Every row must hold the same columns, each declared by ``schema`` (a :class:`NoveltyError`
    otherwise: a writer must not add a column without declaring it). No rows: an empty text.
    """
    if not rows:
        return ""
    names = list(rows[0])
    ordered, missing = schema.resolve(names)
    undeclared = [name for name, column in ordered if column is TEXT]
    if missing or undeclared:
        raise NoveltyError(f"{schema.file}: rows lack the declared columns {missing} or hold undeclared ones "
                           f"{undeclared}; declare them in novelty.run.tables")
    header = [name for name, _ in ordered]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for number, row in enumerate(rows):
        if row.keys() != set(header):
            raise NoveltyError(f"{schema.file}: row {number} holds other columns than the first row")
        writer.writerow([_cell(row[name]) for name in header])
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    return str(value).lower() if isinstance(value, bool) else value


def write_table(path: str | os.PathLike, schema: Schema, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write ``rows`` to ``path`` atomically as :func:`table_text` lays them out."""
    write_text(path, table_text(schema, rows))


@dataclass
class Table:
    """A table read by :func:`read_table`: typed records, the columns with their declarations, and the
    instances of its repeated columns (``{"evidence": ["block1_pool", ...]}``)."""

    schema: Schema
    columns: list[tuple[str, Column]]
    rows: list[dict[str, Any]]
    instances: dict[str, list[str]]

    def frame(self):
        """The table as a pandas DataFrame with the declared dtypes (nullable ones where a column may be
        empty: ``Int64``, ``boolean``; empty text is NaN)."""
        import numpy as np
        import pandas as pd

        data = {}
        for name, column in self.columns:
            values = [row[name] for row in self.rows]
            if column.dtype == "str":
                values = [np.nan if v is None else v for v in values]
            data[name] = pd.Series(values, dtype=column.pandas_dtype)
        return pd.DataFrame(data)


def raw_rows(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a CSV as text, as :mod:`csv` reads them (a cut row has None in it)."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NoveltyError(f"cannot read {path}: {exc}") from None


def read_table(path: str | os.PathLike, schema: Schema, expected: Mapping[str, Sequence[str]] = {}) -> Table:
    """Read ``path`` as ``schema`` declares it: typed records (see :meth:`Column.parse`).

    A missing required column (of ``expected``'s instances too) is :func:`older`'s error; a cell
    that does not parse is a one-line :class:`NoveltyError` naming its row and column.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            columns, missing = schema.resolve(header, expected) if header else ([], [])
            if missing:
                raise older(path.parent, f"{schema.file} has no column {', '.join(missing)}")
            where = {name: i for i, name in reversed(list(enumerate(header)))}  # a repeated name: the first
            plan = [(where[name], name, column.converter()) for name, column in columns]
            rows = []
            for cells in reader:
                if not cells:
                    continue  # a blank line, skipped as csv.DictReader skips it
                try:
                    if len(cells) != len(header):
                        raise IndexError
                    rows.append({name: convert(cells[i]) for i, name, convert in plan})
                except (ValueError, IndexError):
                    raise _cell_error(path, len(rows) + 2, header, cells, columns) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NoveltyError(f"cannot read {path}: {exc}") from None
    return Table(schema, columns, rows, schema.instances(header))


def _cell_error(path: Path, row: int, header: list[str], cells: list[str],
                columns: list[tuple[str, Column]]) -> NoveltyError:
    """The one-line error for the first cell of ``cells`` that :meth:`Column.parse` refuses."""
    if len(cells) != len(header):
        return NoveltyError(f"{path}: row {row} has {len(cells)} cells for the {len(header)} columns "
                            "(cut short or damaged)")
    text = dict(zip(header, cells, strict=True))
    for name, column in columns:
        try:
            column.parse(text[name])
        except ValueError as exc:
            return NoveltyError(f"{path}: row {row}, column {name} ({column.dtype}): {exc}, received {text[name]!r}")
    return NoveltyError(f"{path}: row {row} cannot be read")


def header(path: str | os.PathLike) -> list[str]:
    """The column names of a CSV (its first record)."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NoveltyError(f"cannot read {path}: {exc}") from None


# ---- the tables ----------------------------------------------------------------------------------

SAMPLES = Schema("samples.csv", rows_of="generated", parts=(
    Column("id", "str", "GENERATED sample: its path relative to the generated folder"),
    Column("verdict", "str", "copy, borderline (not a copy but copy_p_value <= the borderline rate) or novel"),
    Column("copy_score", "float", "1 - copy_p_value: higher = more like a copy"),
    Column("is_copy", "bool", "calibrated copy (any piece of evidence) or identical to a training image"),
    Column("copy_p_value", "float", "the combined p-value of the evidence, calibrated on held-out images"),
    Column("layer_agreement", "float", "mean Jaccard index of the layers' top-k lists (empty: one layer)",
           nullable=True),
    Column("duplicate_group", "int", "near-duplicate group among the generated samples (empty: none)",
           nullable=True),
    Repeated("evidence", meaning="per layer, then 'aligned' for the aligned pixel match", columns=(
        Column("{evidence}_nearest_id", "str", "the nearest TRAINING image (empty: none)", nullable=True),
        Column("{evidence}_similarity", "float", "its similarity, the better of the sample and its mirror image"),
        Column("{evidence}_mirrored", "bool", "the mirror image came closer"),
        Column("{evidence}_heldout_share", "float", "share of held-out images that come as close"),
        Column("{evidence}_p_value", "float", "p-value of that share"),
    )),
    Column("identical_id", "str", "the TRAINING image this sample is identical to (empty: none)",
           nullable=True, required=False),
    Column("identical_kind", "str", "how identical: same file or same pixels", nullable=True, required=False),
    Column("aligned_scale", "float", "aligned pixel match: scale of the crop", required=False),
    Column("aligned_crop", "str", "aligned pixel match: which image is the crop, sample or training",
           required=False),
    Column("mode", "int", "the collection's mode it falls in (summary.json \"modes\"; empty: modes off)",
           nullable=True, required=False),
    Column("truth_id", "str", "conditional runs: the output's own ground-truth target, RUN/truth/<id> (empty: "
           "none)", nullable=True, required=False),
    Column("truth_split", "str", "conditional runs: heldout or trained, the truth's pair in the checkpoint's "
           "training split (empty: no truth or unknown)", nullable=True, required=False),
    Column("follows_truth", "bool", "conditional runs: at least as close to its truth as to its nearest training "
           "target in every layer (then never a copy)", required=False),
    Repeated("truth_layer", meaning="conditional runs, per layer: the output beside its own truth", columns=(
        Column("truth_similarity_{truth_layer}", "float", "cosine similarity of output and truth (empty: none)",
               nullable=True, required=False),
        Column("truth_rank_{truth_layer}", "int", "the truth's place among the neighbours: 1 + the training "
               "targets closer than it (k + 1: below all; empty: no truth)", nullable=True, required=False),
    )),
))

TRAINING = Schema("training.csv", rows_of="training", parts=(
    Column("id", "str", "TRAINING image: its path relative to the training folder"),
    Column("outlier_score", "float", "how far from the other training images (robust z)"),
    Column("is_outlier", "bool", "outlier_score beyond the outlier rule of summary.json"),
    Column("duplicate_group", "int", "near-duplicate group among the training images (empty: none)",
           nullable=True),
    Column("duplicate_count", "int", "images in that group (empty: none)", nullable=True),
    Column("hub_score", "float", "how many training images it is near, against chance"),
    Column("is_hub", "bool", "near many training images"),
    Column("times_retrieved", "int", "how often the generated samples' top-k lists hold it"),
    Column("retrieval_hub_score", "float", "times_retrieved against chance"),
    Column("is_retrieval_hub", "bool", "retrieved by many generated samples"),
    Column("split", "str", "reference or heldout: its side of the calibration split"),
    Repeated("flag", meaning="per pixel flag (novelty.curate.pixels.QUALITY_FLAGS)", columns=(
        Column("{flag}_score", "float", "the pixel score (empty: the image could not be read)", nullable=True),
        Column("is_{flag}", "bool", "the score passes the flag's threshold", nullable=True),
    )),
    Column("mode", "int", "the collection's mode it belongs to (summary.json \"modes\"; empty: modes off)",
           nullable=True, required=False),
))

FILES = Schema("files.csv", parts=(
    Column("set", "str", "training or generated"),
    Column("id", "str", "the image's path relative to its folder"),
    Column("sha256", "str", "the file's SHA-256 (empty: skipped)", nullable=True),
    Column("width", "int", "original width in pixels", nullable=True),
    Column("height", "int", "original height in pixels", nullable=True),
    Column("mode", "str", "PIL image mode", nullable=True),
    Column("status", "str", "used or skipped"),
    Column("reason", "str", "why it was skipped", nullable=True),
))

SEARCH_INDEX = ("the neighbour search backend (exact, or faiss with its kind and parameters), what --index asked "
                "for, and per approximate search its recall@24 against exact search on a seeded sample of "
                "queries (recall_at_k: the lowest; None for exact search)")
SUMMARY_FORMAT = 1  # bump when summary.json, samples.csv or training.csv change in a way readers notice
SUMMARY = Document("summary.json", version=SUMMARY_FORMAT, keys={
    "format": "the format version of summary.json, samples.csv and training.csv (written together)",
    "counts": "images per set: training, reference, heldout, generated",
    "copies": "the copy rate with its intervals",
    "calibration": "held-out thresholds and similarity quantiles per layer",
    "warnings": "what makes the numbers mean less",
}, optional={"search_index": SEARCH_INDEX + "; the verdicts' own searches added"})
RUN_JSON = Document("run.json", keys={
    "train_dir": "the TRAINING image folder",
    "generated_dir": "the GENERATED image folder",
    "layers": "the feature layers searched",
}, optional={"search_index": SEARCH_INDEX})
NEIGHBORS = Document("neighbors/<layer>.json", keys={
    "id": "per generated id, a best-first list of entries: the TRAINING id",
    "score": "the entry's cosine similarity",
})
VERDICT_TABLES = (SAMPLES, TRAINING)  # written by the verdicts with summary.json, which counts their rows


def pixel_flags(row: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    """The pixel flags set in a typed ``training.csv`` row; ``names``: the table's "flag" instances."""
    repeated = next(p for p in TRAINING.parts if isinstance(p, Repeated) and p.placeholder == "flag")
    return sorted(name for name in names if row.get(repeated.name(repeated.columns[1], name)))


def outdated(root: str | os.PathLike, summary: object, layers: Sequence[str] = ()) -> list[str]:
    """What says the verdict files of the run at ``root`` were written by an older version: the format
    of ``summary`` (its ``summary.json``, when it has one), the columns of the tables present."""
    root = Path(root)
    problems = document_problems(SUMMARY, summary) if isinstance(summary, dict) else []
    for schema in VERDICT_TABLES:
        path = root / schema.file
        if path.is_file():
            names = header(path)
            expected = {"evidence": layers} if schema is SAMPLES else {}
            missing = schema.resolve(names, expected)[1] if names else []
            if missing:
                problems.append(f"{schema.file} has no column {', '.join(missing)}")
    return problems


def damage(root: str | os.PathLike, summary: object) -> list[str]:
    """What is wrong with ``samples.csv`` and ``training.csv`` (missing, cut short, rows missing),
    checked against the image counts of ``summary`` (written last by the verdicts); [] when they are
    whole, or when the run has no verdicts to check against."""
    counts = summary.get("counts") if isinstance(summary, dict) else None
    if not isinstance(counts, dict):
        return []
    problems = []
    for schema in VERDICT_TABLES:
        name, expected, path = schema.file, counts.get(schema.rows_of), Path(root) / schema.file
        if not isinstance(expected, int):
            continue
        if not path.is_file():
            problems.append(f"{name} is missing")
            continue
        try:
            rows = raw_rows(path)[1]
        except NoveltyError as exc:
            problems.append(f"{name} cannot be read ({exc})")
            continue
        cut = next((i for i, row in enumerate(rows, 2) if None in row or None in row.values()), None)
        if cut is not None:
            problems.append(f"{name} is cut short (line {cut} is incomplete)")
        elif len(rows) != expected:
            problems.append(f"{name} has {len(rows)} rows for the {expected} {schema.rows_of} images of summary.json")
    return problems


def check_verdicts(root: str | os.PathLike, summary: object, layers: Sequence[str] = ()) -> None:
    """Raise :func:`older`'s error, or a one-line "damaged" error, for the verdict files at ``root``."""
    problems = outdated(root, summary, layers)
    if problems:
        raise older(root, "; ".join(problems))
    damaged = damage(root, summary)
    if damaged:
        raise NoveltyError(f"{root} is damaged: {'; '.join(damaged)}; its verdicts would show as empty. Run "
                           "`novelty analyze` again with the same options to rewrite them (the features are cached)")
