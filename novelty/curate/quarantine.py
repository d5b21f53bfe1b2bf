"""Quarantine: move chosen training images out of the training folder, never delete, always undoable.

Selection (:mod:`novelty.curate.selection`) comes from a run's ``training.csv`` or from a list of
ids; its names are re-exported here. Files move to ``QDIR/<id>``, keeping their relative
paths, and every step is journalled in ``QDIR/quarantine.jsonl`` *before* it happens:

1. the plan is written atomically: one ``entry`` per file with its id, original and quarantined
   paths, sha256, size, reason and ``status: planned``;
2. each file is copied beside its destination, the copy's sha256 checked against the plan, renamed
   into place, and only then the source unlinked (so a move across devices loses nothing if it is
   interrupted); a ``status`` line (``moved``) is appended and fsynced;
3. at the end the journal is compacted: rewritten atomically with one ``entry`` line per file.

Because the state of each file can be read back from the disk (is the verified copy there? is the
source still there?), an interrupted run is finished by :func:`resume` or rolled back by
:func:`undo` whatever step it stopped at. Undo checks the sha256 of the quarantined file before and
of the restored file after, and never overwrites a file that has since appeared at the original
place: that file is reported as a conflict and left as it is.

Problems with single files (unknown ids, missing files, ids reaching outside the training folder,
symbolic links, checksum differences) are reported per file and never stop the others.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from novelty.errors import NoveltyError
from novelty.files import sha256_file, write_text

MANIFEST = "quarantine.jsonl"
FORMAT = 1
_TMP_SUFFIX = ".novelty-tmp"


@dataclass
class Entry:
    """One file's record in the manifest; ``status`` is planned, moved, restored or failed."""

    id: str
    original: str  # absolute path in the training folder
    quarantined: str  # absolute path in the quarantine folder
    sha256: str
    size: int
    reason: str  # why it was selected
    status: str = "planned"
    timestamp: str = ""
    detail: str = ""  # the last problem met, if any


@dataclass(frozen=True)
class Outcome:
    """One line of the report: what happened to one id."""

    id: str
    result: str  # moved, planned (dry run), restored, skipped, conflict, failed
    detail: str = ""


@dataclass
class Manifest:
    train_dir: Path
    qdir: Path
    created: str
    entries: dict[str, Entry] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.qdir / MANIFEST


class _Problem(Exception):
    """A per-file problem: reported, never fatal."""


class _Conflict(_Problem):
    """The original place is taken: the entry stays quarantined so undo can be retried."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- manifest

def _entry_line(entry: Entry) -> str:
    return json.dumps({"type": "entry", **asdict(entry)}, ensure_ascii=False)


def _write_manifest(manifest: Manifest) -> None:
    """Rewrite the whole manifest atomically: header, then one entry per file."""
    header = {"type": "header", "format": FORMAT, "train_dir": str(manifest.train_dir),
              "created": manifest.created}
    lines = [json.dumps(header, ensure_ascii=False)] + [_entry_line(e) for e in manifest.entries.values()]
    write_text(manifest.path, "\n".join(lines) + "\n")


def load_manifest(qdir: str | os.PathLike) -> Manifest:
    """The current state of a quarantine folder, folding the journal's status lines into its entries."""
    qdir = Path(qdir).absolute()
    path = qdir / MANIFEST
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise NoveltyError(f"no quarantine manifest ({MANIFEST}) in {qdir}") from None
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            if number == len(lines):  # a line cut short by an interruption: its step is read from disk
                break
            raise NoveltyError(f"{path} is damaged at line {number}; expected one JSON object per line") from None
    if not records or records[0].get("type") != "header" or records[0].get("format") != FORMAT:
        raise NoveltyError(f"{path} does not start with a format {FORMAT} header")
    manifest = Manifest(Path(records[0]["train_dir"]), qdir, records[0]["created"])
    for record in records[1:]:
        kind = record.pop("type", None)
        if kind == "entry":
            manifest.entries[record["id"]] = Entry(**record)
        elif kind == "status" and record.get("id") in manifest.entries:
            entry = manifest.entries[record["id"]]
            entry.status, entry.timestamp, entry.detail = record["status"], record["timestamp"], record.get("detail", "")
    return manifest


class _Journal:
    """Appends one fsynced status line per finished step."""

    def __init__(self, path: Path):
        self.handle = open(path, "a", encoding="utf-8")

    def record(self, entry: Entry, status: str, detail: str = "") -> None:
        entry.status, entry.timestamp, entry.detail = status, _now(), detail
        line = {"type": "status", "id": entry.id, "status": status, "timestamp": entry.timestamp}
        if detail:
            line["detail"] = detail
        self.handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()


# ----------------------------------------------------------------------------- moving files

def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _transfer(source: Path, target: Path, sha256: str) -> None:
    """Move ``source`` to ``target`` safely on any device: copy, verify, rename into place, unlink.

    Raises _Problem (source left untouched) if the copy's checksum is not ``sha256`` or ``target``
    exists.
    """
    if target.exists() or target.is_symlink():
        raise _Problem(f"a file already exists at {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}{_TMP_SUFFIX}")
    try:
        shutil.copy2(source, partial)
        _fsync(partial)
        if sha256_file(partial) != sha256:
            raise _Problem("its checksum differs from the planned one (changed since planned?)")
        if target.exists():
            raise _Problem(f"a file already exists at {target}")
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    os.unlink(source)


def _checksum(path: Path) -> str | None:
    """sha256 of a regular file, None when nothing (or a symlink) is there."""
    if path.is_symlink() or not path.is_file():
        return None
    return sha256_file(path)


def _forward(entry: Entry, source: Path, target: Path) -> None:
    """Finish moving one planned file, whatever step an earlier run stopped at."""
    at_source, at_target = _checksum(source), _checksum(target)
    if at_target is not None:
        if at_target != entry.sha256:
            raise _Problem(f"a different file already exists at {target}")
        if at_source == entry.sha256:
            os.unlink(source)  # stopped between the verified copy and the unlink
        elif at_source is not None:
            raise _Problem("the training file changed after it was copied; both kept")
        return
    if at_source is None:
        raise _Problem("missing: neither in the training folder nor in quarantine")
    _transfer(source, target, entry.sha256)


def _backward(entry: Entry, source: Path, target: Path) -> None:
    """Put one quarantined file back, whatever step an earlier move or undo stopped at."""
    at_source, at_target = _checksum(source), _checksum(target)
    if at_target is None:
        if at_source == entry.sha256:
            return  # already back (or never moved)
        raise _Problem("missing: neither in quarantine nor at its original place")
    if at_target != entry.sha256:
        raise _Problem(f"the quarantined file {target} changed (checksum differs); not restored")
    if source.exists() or source.is_symlink():
        if at_source == entry.sha256:
            os.unlink(target)  # a verified identical copy is already back in place
            return
        raise _Conflict(f"a different file now exists at {source}; left both as they are")
    _transfer(target, source, entry.sha256)


def _run(manifest: Manifest, entries: list[Entry], step, done: str, progress: bool,
         desc: str) -> list[Outcome]:
    from tqdm.auto import tqdm

    outcomes = []
    journal = _Journal(manifest.path)
    try:
        for entry in tqdm(entries, desc=desc, unit="file", disable=not progress):
            source, target = manifest.train_dir / entry.id, manifest.qdir / entry.id
            try:
                step(entry, source, target)
            except _Conflict as exc:
                journal.record(entry, entry.status, str(exc))
                outcomes.append(Outcome(entry.id, "conflict", str(exc)))
            except (_Problem, OSError) as exc:
                journal.record(entry, "failed", str(exc))
                outcomes.append(Outcome(entry.id, "failed", str(exc)))
            else:
                journal.record(entry, done)
                outcomes.append(Outcome(entry.id, done, entry.reason if done == "moved" else ""))
    finally:
        journal.close()
    _write_manifest(manifest)
    return outcomes


# ----------------------------------------------------------------------------- planning

def _check_id(ident: str, train_dir: Path) -> Path:
    """The training file for an id, or _Problem: outside the folder, a symlink, missing, not a file."""
    parts = PurePosixPath(ident).parts
    foreign_sep = os.sep != "/" and os.sep in ident
    if not ident or ident.startswith("/") or foreign_sep or ".." in parts:
        raise _Problem("not a path inside the training folder; not moved")
    path = train_dir
    for part in parts:
        path = path / part
        if path.is_symlink():
            raise _Problem(f"{path} is a symbolic link; not moved")
    if not path.exists():
        raise _Problem("not found in the training folder")
    if not path.is_file():
        raise _Problem("not a regular file; not moved")
    if not path.resolve().is_relative_to(train_dir.resolve()):
        raise _Problem("not a path inside the training folder; not moved")
    return path


def _check_folders(train_dir: Path, qdir: Path) -> None:
    if not train_dir.is_dir():
        raise NoveltyError(f"training folder not found: {train_dir}")
    t, q = train_dir.resolve(), qdir.resolve()
    if q.is_relative_to(t) or t.is_relative_to(q):
        raise NoveltyError(f"the quarantine folder {qdir} and the training folder {train_dir} must not "
                           "contain one another")


def curate(train_dir: str | os.PathLike, qdir: str | os.PathLike, selected: dict[str, str], *,
           known_ids: Iterable[str] | None = None, dry_run: bool = False,
           progress: bool = False) -> list[Outcome]:
    """Move the TRAINING images ``selected`` ({id: reason}) into ``qdir``; report one outcome per id.

    known_ids: the ids of the run's training table; ids not in it are reported as unknown.
    dry_run: check and report the plan (result "planned"), write nothing.
    """
    train_dir, qdir = Path(train_dir).absolute(), Path(qdir).absolute()
    _check_folders(train_dir, qdir)
    if (qdir / MANIFEST).exists():
        manifest = load_manifest(qdir)
        if manifest.train_dir != train_dir:
            raise NoveltyError(f"{qdir} holds images of another training folder ({manifest.train_dir}); "
                               "use another quarantine folder")
        pending = [e.id for e in manifest.entries.values() if e.status == "planned"]
        if pending:
            raise NoveltyError(f"{qdir} has an unfinished move ({len(pending)} files); finish it with "
                               f"`novelty curate --resume {qdir}` or roll it back with --undo")
    else:
        manifest = Manifest(train_dir, qdir, _now())
    known = None if known_ids is None else set(known_ids)

    from tqdm.auto import tqdm

    outcomes, planned = [], []
    for ident in tqdm(sorted(selected), desc="checking", unit="file", disable=not progress):
        previous = manifest.entries.get(ident)
        try:
            if previous is not None and previous.status == "moved":
                raise _Problem(f"already quarantined at {previous.quarantined}")
            source = _check_id(ident, train_dir)
            if known is not None and ident not in known:
                raise _Problem("unknown id: not in the run's training table; not moved")
            target = qdir / ident
            if target.exists() or target.is_symlink():
                raise _Problem(f"a file already exists at {target}; not moved")
            entry = Entry(ident, str(source), str(target), sha256_file(source), source.stat().st_size,
                          selected[ident], "planned", _now())
        except (_Problem, OSError) as exc:
            outcomes.append(Outcome(ident, "skipped", str(exc)))
        else:
            planned.append(entry)
            if dry_run:
                outcomes.append(Outcome(ident, "planned", f"{entry.reason}; {entry.size} bytes -> {target}"))
    if dry_run or not planned:
        return outcomes
    for entry in planned:
        manifest.entries[entry.id] = entry
    qdir.mkdir(parents=True, exist_ok=True)
    _write_manifest(manifest)  # the journal comes first: every file is planned before any moves
    return outcomes + _run(manifest, planned, _forward, "moved", progress, "quarantining")


def resume(qdir: str | os.PathLike, *, progress: bool = False) -> list[Outcome]:
    """Finish an interrupted :func:`curate`: move every file still ``planned``."""
    manifest = load_manifest(qdir)
    pending = [e for e in manifest.entries.values() if e.status == "planned"]
    return _run(manifest, pending, _forward, "moved", progress, "quarantining")


def undo(qdir: str | os.PathLike, *, progress: bool = False) -> list[Outcome]:
    """Put every moved (or planned) file of ``qdir`` back where it was, checking sha256 on both sides."""
    manifest = load_manifest(qdir)
    todo = [e for e in manifest.entries.values() if e.status in ("planned", "moved")]
    outcomes = _run(manifest, todo, _backward, "restored", progress, "restoring")
    for entry in todo:  # remove the folders the move created, now empty; never a file
        folder = (manifest.qdir / entry.id).parent
        while folder != manifest.qdir and folder.is_relative_to(manifest.qdir):
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent
    return outcomes
