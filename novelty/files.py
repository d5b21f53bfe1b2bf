"""Safe file writing and checksums: every artefact the tool writes goes through here.

Writes are atomic (a temporary file in the same folder, then ``os.replace``) so an interrupted run
never leaves a half-written file where a finished one is expected.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


class NotRegularFile(OSError):
    """A path that is not a regular file (or a link to one); ``strerror`` says what it is instead."""

    def __init__(self, reason: str):
        super().__init__(errno.EINVAL, reason)


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def not_regular(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a regular file or a symlink to one, found without opening it; None if it is
    (or cannot be looked at: opening it then says why).

    Reading a named pipe waits forever for a writer and a device may never end, so callers that read
    whole files skip such paths with this reason instead.
    """
    try:
        link = stat.S_ISLNK(os.lstat(path).st_mode)
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop (too many levels of symbolic links)"
        if exc.errno == errno.ENOENT and os.path.islink(path):
            return f"is a dangling symlink: its target {os.readlink(path)} does not exist"
        return None  # missing, or no permission: opening it raises the error itself
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return f"is {'a symlink to ' if link else ''}{kind}, not a regular file"


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a regular file (or a symlink to one) for reading; :class:`NotRegularFile` for anything else.

    The path is checked before it is opened, and the open file again (``O_NONBLOCK``: a pipe swapped
    in meanwhile cannot block the open), so no read of a pipe or device can start.
    """
    reason = not_regular(path)
    if reason is not None:
        raise NotRegularFile(reason)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFile("changed into something other than a regular file while it was read")
    return os.fdopen(fd, "rb")


def sha256_stream(handle: BinaryIO, size: int, chunk_size: int = 1 << 20) -> str:
    """The sha256 of the next ``size`` bytes of ``handle`` (fewer if it ends first): a bounded read."""
    digest = hashlib.sha256()
    while size > 0 and (chunk := handle.read(min(chunk_size, size))):
        digest.update(chunk)
        size -= len(chunk)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """The sha256 of a regular file (never a pipe or device: :class:`NotRegularFile`)."""
    with open_regular(path) as handle:
        return sha256_stream(handle, os.fstat(handle.fileno()).st_size, chunk_size)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True when ``path`` is ``folder`` or lies below it, after resolving links and ``..``."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())
