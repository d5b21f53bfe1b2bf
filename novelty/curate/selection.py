"""Which training images to quarantine: from a run's ``training.csv`` (outliers, all but the first of
each duplicate group) or from a list of ids (the web demo's export), as ``{id: reason}``.

:mod:`novelty.curate.quarantine` moves what is selected here.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from novelty.errors import NoveltyError
from novelty.files import read_json
from novelty.run.folder import RunFolder

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


def read_id_list(path: str | os.PathLike) -> list[str]:
    """Training ids from a text file: one per line, blank lines and ``#`` comments ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise NoveltyError(f"id list not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NoveltyError(f"cannot read id list {path}: {exc}") from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def read_training_table(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a run's ``training.csv`` (needs at least an ``id`` column)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise NoveltyError(f"training table not found: {path}; run `novelty analyze` first, "
                           "or select with --list") from None
    if rows and "id" not in rows[0]:
        raise NoveltyError(f"{path} has no 'id' column; columns are: {', '.join(rows[0])}")
    return rows


def _column(rows: list[dict[str, str]], name: str, path: str) -> None:
    if rows and name not in rows[0]:
        raise NoveltyError(f"training table {path} has no {name!r} column; columns are: {', '.join(rows[0])}")


def select_outliers(rows: list[dict[str, str]], source: str = "training.csv") -> dict[str, str]:
    """{id: reason} for rows whose ``is_outlier`` is true."""
    _column(rows, "is_outlier", source)
    chosen = {}
    for row in rows:
        value = (row["is_outlier"] or "").strip().lower()
        if value not in _TRUE | _FALSE:
            raise NoveltyError(f"is_outlier of {row['id']!r} in {source} is {row['is_outlier']!r}; "
                               "expected true or false")
        if value in _TRUE:
            chosen[row["id"]] = "outlier"
    return chosen


def select_duplicates(rows: list[dict[str, str]], source: str = "training.csv") -> dict[str, str]:
    """{id: reason} for every member of a ``duplicate_group`` but the first id in sorted order."""
    _column(rows, "duplicate_group", source)
    groups: dict[str, list[str]] = {}
    for row in rows:
        group = (row["duplicate_group"] or "").strip()
        if group:
            groups.setdefault(group, []).append(row["id"])
    chosen = {}
    for members in groups.values():
        keep, *rest = sorted(members)
        for ident in rest:
            chosen[ident] = f"duplicate of {keep}"
    return chosen


def combine(*selections: dict[str, str]) -> dict[str, str]:
    """Merge {id: reason} selections, joining the reasons of an id chosen more than once."""
    merged: dict[str, str] = {}
    for selection in selections:
        for ident, reason in selection.items():
            merged[ident] = f"{merged[ident]}; {reason}" if ident in merged else reason
    return merged


def select(run: str | os.PathLike | None, *, outliers: bool = False, duplicates: bool = False,
           id_list: str | os.PathLike | None = None) -> tuple[dict[str, str], set[str] | None]:
    """({id: reason}, known ids or None) from a run's ``training.csv`` and/or a list of ids.

    Without a run (or without its training.csv) only ``id_list`` can select, and ids are not
    checked against a table.
    """
    if not (outliers or duplicates or id_list):
        raise NoveltyError("nothing selected; use --outliers, --duplicates and/or --list FILE")
    rows, known, table = None, None, None
    if run is not None:
        table = RunFolder(run).require().training_csv
        if table.is_file() or outliers or duplicates:
            rows = read_training_table(table)
            known = {row["id"] for row in rows}
    elif outliers or duplicates:
        raise NoveltyError("--outliers and --duplicates read RUN/training.csv; give --run RUN, "
                           "or select with --list FILE")
    selections = []
    if outliers:
        selections.append(select_outliers(rows, str(table)))
    if duplicates:
        selections.append(select_duplicates(rows, str(table)))
    if id_list:
        selections.append(dict.fromkeys(read_id_list(id_list), f"listed in {Path(id_list).name}"))
    return combine(*selections), known


def training_folder(run: str | os.PathLike | None, train: str | os.PathLike | None) -> Path:
    """The training folder: ``train`` if given, else the run's recorded ``train_dir``."""
    if train is not None:
        return Path(train)
    if run is None:
        raise NoveltyError("which training folder? give --train DIR (or --run RUN to use its train_dir)")
    recorded = read_json(RunFolder(run).require().run_json).get("train_dir")
    if not recorded:
        raise NoveltyError(f"{run} records no train_dir; give --train DIR")
    return Path(recorded)
