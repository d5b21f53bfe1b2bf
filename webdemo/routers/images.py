"""Image files of the run: GENERATED samples, TRAINING images (with thumbnails) and plots.

Only ids the run lists are served, and only from inside their folder. Responses carry an ETag and
``Cache-Control``; a matching ``If-None-Match`` gets 304. Thumbnails are written under the cache
folder (or served from memory when it cannot be written).
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from novelty.files import write_bytes
from novelty.run.imagefiles import thumbnail_png
from webdemo.errors import ERROR_RESPONSES, not_found
from webdemo.state import app_state

router = APIRouter(prefix="/api", tags=["images"])

CACHE_CONTROL = "public, max-age=3600"
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp", ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff"}
IMAGE_RESPONSES = {**ERROR_RESPONSES, 200: {"content": {"image/png": {}, "image/jpeg": {}},
                                            "description": "The image"}}


def _etag(stat: os.stat_result, extra: str = "") -> str:
    return f'"{stat.st_mtime_ns:x}-{stat.st_size:x}{extra}"'


def _not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match", "")
    return etag in [tag.strip() for tag in header.split(",")] or header.strip() == "*"


def _headers(etag: str) -> dict[str, str]:
    return {"ETag": etag, "Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff"}


@lru_cache(maxsize=8192)
def _thumbnail(path: Path, size: int, cache_dir: Path, etag: str) -> bytes | Path:
    """A PNG whose longer side is ``size`` (the file itself when already small enough).

    Remembered per file version (``etag``), so a small image is decoded once, not on every request.
    """
    key = hashlib.sha256(f"{path}\0{etag}\0{size}".encode()).hexdigest()[:40]
    cached = cache_dir / "thumbs" / f"{key}.png"
    if cached.is_file():
        return cached
    data = thumbnail_png(path, size)
    if data is None:
        return path
    try:
        write_bytes(cached, data)
    except OSError:
        return data  # a read-only run folder still gets thumbnails, from memory
    return cached


def _serve(request: Request, path: Path, size: int | None) -> Response:
    state = app_state(request)
    stat = path.stat()
    etag = _etag(stat, f"-{size}" if size else "")
    if _not_modified(request, etag):
        return Response(status_code=304, headers=_headers(etag))
    target: bytes | Path = path
    if size:
        target = _thumbnail(path, size, state.settings.cache_dir, etag)
        if isinstance(target, Path) and not target.is_file():  # a cached thumbnail deleted meanwhile
            target = path
    if isinstance(target, bytes):
        return Response(target, media_type="image/png", headers=_headers(etag))
    media_type = MEDIA_TYPES.get(target.suffix.lower(), "application/octet-stream")
    return FileResponse(target, media_type=media_type, headers=_headers(etag))


@router.get("/images/{kind}/{image_id:id}", responses=IMAGE_RESPONSES, response_class=Response,
            summary="A generated or training image of the run (conditional runs: an input or a ground truth)")
def get_image(
    request: Request, kind: Literal["generated", "training", "input", "truth"], image_id: str,
    size: int | None = Query(None, ge=16, le=1024, description="Thumbnail: longer side in pixels"),
) -> Response:
    path = app_state(request).view.image_path(kind, image_id)
    if path is None:
        raise not_found(f"{kind} image", image_id)
    return _serve(request, path, size)


@router.get("/plots/{name}", responses=IMAGE_RESPONSES, response_class=Response,
            summary="A plot of the run (plots/*.png)")
def get_plot(request: Request, name: str) -> Response:
    path = app_state(request).view.plot_path(name)
    if path is None:
        raise not_found("plot", name)
    return _serve(request, path, None)
