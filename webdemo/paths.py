"""Where the web demo's own files live: one place, read by the app and by the static export."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
