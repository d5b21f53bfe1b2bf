"""The shard files of a prepared folder: written under hidden temporary names, renamed when complete.

A prepare that is killed leaves only hidden temporaries, which the next prepare into the same folder
removes once the process that wrote them is gone. TensorFlow is imported inside the writer.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

_TEMP_PREFIX = ".prepare-"
_TEMP_SUFFIX = ".tfrecord.tmp"


def shard_name(index: int, count: int) -> str:
    """``train-00000-of-00003.tfrecord`` for shard ``index`` (0-based) of ``count``."""
    return f"train-{index:05d}-of-{count:05d}.tfrecord"


class ShardWriter:
    """Writes records to numbered hidden temporary files; ``finish`` gives them their final names."""

    def __init__(self, out: Path, shard_size: int):
        import tensorflow as tf

        self._tf = tf
        self.out = out
        self.shard_size = shard_size
        self.token = f"{_TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-"
        self.temps: list[Path] = []
        self.counts: list[int] = []
        self._writer = None

    def write(self, record: bytes) -> int:
        """Append one record; returns the index of the shard it went to."""
        if self._writer is None or self.counts[-1] >= self.shard_size:
            self._close_current()
            path = self.out / f"{self.token}{len(self.temps):05d}{_TEMP_SUFFIX}"
            self.temps.append(path)
            self.counts.append(0)
            self._writer = self._tf.io.TFRecordWriter(str(path))
        self._writer.write(record)
        self.counts[-1] += 1
        return len(self.temps) - 1

    def _close_current(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def finish(self) -> list[str]:
        """Close, sync and rename every shard to ``train-IIIII-of-NNNNN.tfrecord``; the final names."""
        self._close_current()
        names = [shard_name(i, len(self.temps)) for i in range(len(self.temps))]
        for temp in self.temps:
            with open(temp, "rb+") as handle:
                os.fsync(handle.fileno())
        for temp, name in zip(self.temps, names, strict=True):
            os.replace(temp, self.out / name)
        self.temps = []
        return names

    def abort(self) -> None:
        """Close and delete the temporary shards (ours only; no final name is touched)."""
        with contextlib.suppress(Exception):
            self._close_current()
        for temp in self.temps:
            with contextlib.suppress(OSError):
                temp.unlink()
        self.temps = []

def remove_dead_temps(out: Path) -> None:
    """Delete temporary shards left by a prepare that was killed (its process no longer exists)."""
    for temp in out.glob(f"{_TEMP_PREFIX}*{_TEMP_SUFFIX}"):
        pid = temp.name[len(_TEMP_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            with contextlib.suppress(OSError):
                temp.unlink()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
