"""How a table of a run folder is declared: :class:`Column`, :class:`Repeated` (columns once per
layer or per pixel flag), :class:`Schema` (a CSV file) and :class:`Document` (a JSON file). The
declarations themselves, and the one reader and writer, are in :mod:`novelty.run.tables`."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from novelty.errors import NoveltyError

DTYPES = ("str", "float", "int", "bool")
_BOOLS = {"true": True, "false": False}
_PANDAS = {"str": "object", "float": "float64", "int": "int64", "bool": "bool"}
_PANDAS_NULLABLE = {"str": "object", "float": "float64", "int": "Int64", "bool": "boolean"}



def _text(text: str) -> str:
    if not text:
        raise ValueError("the cell is empty")
    return text


def _float(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def _bool(text: str) -> bool:
    try:
        return _BOOLS[text.lower()]
    except KeyError:
        raise ValueError("expected true or false") from None


_CONVERT: dict[str, Callable[[str], Any]] = {"str": _text, "float": _float, "int": int, "bool": _bool}


@dataclass(frozen=True)
class Column:
    """One column: its name (or a pattern with ``{placeholder}`` inside a :class:`Repeated`), its type,
    what it means; ``nullable``: an empty cell is allowed (read as None); ``required``: a file without
    the column is from an older version."""

    name: str
    dtype: str
    meaning: str
    nullable: bool = False
    required: bool = True

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise NoveltyError(f"column {self.name}: dtype must be one of {', '.join(DTYPES)}, received {self.dtype!r}")

    def parse(self, text: str) -> Any:
        """The typed value of one cell: None for an empty cell or a non-finite number (JSON-ready)."""
        if text == "" and not self.nullable:
            raise ValueError("the cell is empty")
        return self.converter()(text)

    def converter(self) -> Callable[[str], Any]:
        """:meth:`parse` as one function, for reading many cells (its errors say less)."""
        convert = _CONVERT[self.dtype]
        return (lambda text: convert(text) if text else None) if self.nullable else convert

    @property
    def pandas_dtype(self) -> str:
        return (_PANDAS_NULLABLE if self.nullable else _PANDAS)[self.dtype]


TEXT = Column("", "str", "a column this version of novelty does not declare, read as text", nullable=True)


@dataclass(frozen=True)
class Repeated:
    """Columns repeated once per name (a layer, a pixel flag): each column name holds
    ``{placeholder}``; the first column's presence in a file names an instance."""

    placeholder: str
    columns: tuple[Column, ...]
    meaning: str

    def pattern(self, column: Column) -> re.Pattern:
        before, after = column.name.split("{" + self.placeholder + "}")
        return re.compile(re.escape(before) + "(?P<name>.+)" + re.escape(after) + r"\Z", re.S)

    def name(self, column: Column, instance: str) -> str:
        return column.name.replace("{" + self.placeholder + "}", instance)


@dataclass(frozen=True)
class Schema:
    """A CSV table of a run: its file name, its columns in order (:class:`Column` or :class:`Repeated`)
    and the ``summary.json`` "counts" set it has one row for (None: not counted)."""

    file: str
    parts: tuple[Column | Repeated, ...]
    rows_of: str | None = None
    fixed: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "fixed", {p.name: p for p in self.parts if isinstance(p, Column)})

    def instances(self, names: Iterable[str]) -> dict[str, list[str]]:
        """``{placeholder: [instance, ...]}`` named by the columns ``names``, in order of appearance."""
        names = [n for n in names if n not in self.fixed]
        found: dict[str, list[str]] = {}
        for part in self.parts:
            if isinstance(part, Repeated):
                key = part.pattern(part.columns[0])
                found[part.placeholder] = [m["name"] for n in names if (m := key.match(n))]
        return found

    def resolve(self, names: Sequence[str], expected: Mapping[str, Sequence[str]] = {}
                ) -> tuple[list[tuple[str, Column]], list[str]]:
        """(the columns in file order, declared ones first, unknown ones as text after them; the
        required columns missing from ``names``). ``expected``: instances that must be there, e.g.
        ``{"evidence": layers}``."""
        present = set(names)
        found = self.instances(names)
        ordered: list[tuple[str, Column]] = []
        missing: list[str] = []
        for part in self.parts:
            if isinstance(part, Column):
                if part.name in present:
                    ordered.append((part.name, part))
                elif part.required:
                    missing.append(part.name)
                continue
            instances = list(dict.fromkeys([*found[part.placeholder], *expected.get(part.placeholder, ())]))
            for instance in instances:
                for column in part.columns:
                    name = part.name(column, instance)
                    if name in present:
                        ordered.append((name, column))
                    elif column.required:
                        missing.append(name)
        known = {name for name, _ in ordered}
        ordered += [(name, TEXT) for name in names if name not in known]
        return ordered, missing


@dataclass(frozen=True)
class Document:
    """A JSON file of a run: the keys a reader may rely on (key: meaning), the format version its
    writer stamps as ``"format"`` (None: not versioned), and ``optional`` keys (key: meaning) that
    this version writes but files of older versions lack (a reader takes their absence as None)."""

    file: str
    keys: dict[str, str]
    version: int | None = None
    optional: dict[str, str] = field(default_factory=dict)
