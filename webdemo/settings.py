"""What the web app serves and its limits: one frozen object handed to :func:`webdemo.create_app`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from novelty import defaults

CACHE_FOLDER = ".webdemo-cache"  # thumbnails go here, inside the run folder, unless told otherwise


@dataclass(frozen=True)
class Settings:
    """``run``: the run folder. ``cache_dir``: where thumbnails go (default ``RUN/.webdemo-cache``);
    the app writes nowhere else. The upload limits apply to ``POST /api/query``."""

    run: Path
    cache_dir: Path | None = None
    max_upload_bytes: int = defaults.MAX_UPLOAD_BYTES
    max_upload_pixels: int = defaults.MAX_UPLOAD_PIXELS
    thumb_size: int = defaults.THUMB_SIZE

    def __post_init__(self) -> None:
        object.__setattr__(self, "run", Path(self.run))
        cache = Path(self.cache_dir) if self.cache_dir is not None else self.run / CACHE_FOLDER
        object.__setattr__(self, "cache_dir", cache)
