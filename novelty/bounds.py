"""Range checks at the library's edge, against the one table of allowed ranges (``defaults.RANGES``)."""

from __future__ import annotations

import numbers

from novelty import defaults
from novelty.errors import NoveltyError


def check(key: str, value, name: str | None = None):
    """``value`` when it lies in ``defaults.RANGES[key]`` (an integer where the range is one); else a
    :class:`NoveltyError` naming ``name`` (default: ``key``), the value received and the range allowed."""
    allowed = defaults.RANGES[key]
    if value not in allowed or (allowed.integer and not isinstance(value, numbers.Integral)):
        kind = "an integer" if allowed.integer else "a number"
        raise NoveltyError(f"{name or key} must be {kind} in the range {allowed}, received: {value!r}")
    return value


def check_all(*checks: tuple[str, str, object]) -> None:
    """:func:`check` each ``(key, name, value)`` in turn: a function's numeric arguments at its edge."""
    for key, name, value in checks:
        check(key, value, name)
