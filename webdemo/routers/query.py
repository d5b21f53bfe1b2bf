"""Upload any image and get its nearest TRAINING images at every layer of the run; in a conditional
(pix2pix) run, upload an input and get the run's generator's output and the output's neighbours."""

from __future__ import annotations

import base64
import time

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from novelty.errors import NoveltyError
from novelty.images.decode import to_png_bytes
from novelty.run.browse import Neighbour
from webdemo.errors import ERROR_RESPONSES, ApiError, ErrorBody
from webdemo.schemas import GenerateResult, QueryResult
from webdemo.state import app_state, dumps
from webdemo.upload import OPENAPI_BODY, read_image

router = APIRouter(prefix="/api/query", tags=["query"])

QUERY_RESPONSES = {**ERROR_RESPONSES, **{status: {"model": ErrorBody} for status in (400, 413, 415, 503)}}


@router.post("", response_model=QueryResult, responses=QUERY_RESPONSES, openapi_extra=OPENAPI_BODY,
             summary="Nearest training images of an uploaded image")
async def query(request: Request,
                k: int | None = Query(None, ge=1, le=10_000, description="At most the run's k")) -> Response:
    state, k, image, body, started = await _upload(request, k)
    body["layers"] = await _neighbours(state, image, k)
    return _answer(body, started)


async def _upload(request: Request, k: int | None) -> tuple:
    """``(state, k checked, the uploaded image, the answer's start, its start time)``."""
    state = app_state(request)
    k = state.check_k(k)
    filename, image, info = await read_image(request, state.settings)
    body = {"filename": filename, "width": info.original_size[0], "height": info.original_size[1]}
    return state, k, image, body, time.perf_counter()


def _answer(body: dict, started: float) -> Response:
    return Response(dumps(body | {"seconds": round(time.perf_counter() - started, 3)}), media_type="application/json")


async def _neighbours(state, image, k: int) -> dict:
    """The rank lists of ``image``'s nearest TRAINING images at every layer; 503 when queries are unavailable."""
    try:
        engine = await run_in_threadpool(state.query_engine)
        found = await run_in_threadpool(engine.search, image, k)
    except NoveltyError as exc:
        raise ApiError(503, f"queries are unavailable for this run: {exc}", "query_unavailable") from None
    return {layer: state.view.rank_list(layer, [Neighbour(i, s) for i, s in items]) for layer, items in found.items()}


@router.post("/generate", response_model=GenerateResult, responses=QUERY_RESPONSES, openapi_extra=OPENAPI_BODY,
             summary="A conditional run: the generator's output for an uploaded input, and its neighbours")
async def generate(request: Request,
                   k: int | None = Query(None, ge=1, le=10_000, description="At most the run's k")) -> Response:
    state, k, image, body, started = await _upload(request, k)
    try:
        translator = await run_in_threadpool(state.translator)
        output = await run_in_threadpool(translator, image)
    except NoveltyError as exc:
        raise ApiError(503, f"generation is unavailable for this run: {exc}", "generate_unavailable") from None
    body |= {"output": "data:image/png;base64," + base64.b64encode(to_png_bytes(output)).decode("ascii"),
             "output_size": int(output.shape[0]), "generate_seconds": round(time.perf_counter() - started, 3)}
    body["layers"] = await _neighbours(state, output, k)
    return _answer(body, started)
