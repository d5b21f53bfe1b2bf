"""Upload any image and get its nearest TRAINING images at every layer of the run."""

from __future__ import annotations

import time

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from novelty.errors import NoveltyError
from novelty.images.decode import ImageError, decode
from novelty.run.browse import Neighbour
from webdemo.errors import ERROR_RESPONSES, ApiError, ErrorBody
from webdemo.schemas import QueryResult
from webdemo.state import app_state, dumps
from webdemo.upload import OPENAPI_BODY, read_file_field, sniff

router = APIRouter(prefix="/api/query", tags=["query"])

QUERY_RESPONSES = {**ERROR_RESPONSES, **{status: {"model": ErrorBody} for status in (400, 413, 415, 503)}}


@router.post("", response_model=QueryResult, responses=QUERY_RESPONSES, openapi_extra=OPENAPI_BODY,
             summary="Nearest training images of an uploaded image")
async def query(request: Request,
                k: int | None = Query(None, ge=1, le=10_000, description="At most the run's k")) -> Response:
    state = app_state(request)
    k = state.check_k(k)
    settings = state.settings
    filename, data = await read_file_field(request, "file", settings.max_upload_bytes)
    if sniff(data) is None:
        raise ApiError(415, "not a supported image: expected PNG, JPEG, GIF, BMP, TIFF or WebP content",
                       "unsupported_media_type")
    try:
        image, info = decode(data, max_pixels=settings.max_upload_pixels)
    except ImageError as exc:
        raise ApiError(422, f"cannot use this image: {exc}", "invalid_image") from None
    started = time.perf_counter()
    try:
        engine = await run_in_threadpool(state.query_engine)
        found = await run_in_threadpool(engine.search, image, k)
    except NoveltyError as exc:
        raise ApiError(503, f"queries are unavailable for this run: {exc}", "query_unavailable") from None
    view = state.view
    layers = {layer: view.rank_list(layer, [Neighbour(i, s) for i, s in items])
              for layer, items in found.items()}
    body = {"filename": filename, "width": info.original_size[0], "height": info.original_size[1],
            "seconds": round(time.perf_counter() - started, 3), "layers": layers}
    return Response(dumps(body), media_type="application/json")
