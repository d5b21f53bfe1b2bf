"""Stage timings: one :class:`Stopwatch` per command, read into ``run.json`` and ``summary.json``."""

from __future__ import annotations

import time


class Stopwatch:
    """Seconds spent per named stage, measured between consecutive :meth:`lap` calls."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, stage: str) -> float:
        """Record the time since the previous lap (or the start) as ``stage``; return it in seconds."""
        now = time.perf_counter()
        seconds = round(now - self._clock, 3)
        self.timings[stage] = seconds
        self._clock = now
        return seconds
