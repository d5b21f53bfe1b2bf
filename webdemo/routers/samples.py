"""GENERATED samples: the gallery list, one sample, and its TRAINING neighbours per layer."""

from __future__ import annotations

import math
from typing import Literal

from fastapi import APIRouter, Query, Request, Response

from webdemo.errors import ERROR_RESPONSES
from webdemo.schemas import NeighbourList, SampleDetail, SampleList
from webdemo.state import app_state, dumps

router = APIRouter(prefix="/api/samples", tags=["samples"])


def novelty_key(record: dict) -> tuple[float, float]:
    """Sort key, larger = more novel: the calibrated copy p-value first (when the run has verdicts),
    then the distance to the nearest training image at the deepest layer."""
    p_value, novelty = record["copy_p_value"], record["novelty"]
    return (p_value if p_value is not None else 0.0, novelty if novelty is not None else -math.inf)


@router.get("", response_model=SampleList, summary="List generated samples")
async def list_samples(
    request: Request,
    sort: Literal["id", "novelty", "similarity"] = Query(
        "id", description="id order; novelty: most novel first (calibrated copy p-value, then "
                          "distance to the nearest training image); similarity to the nearest training "
                          "image at the deepest layer, most similar first"),
    order: Literal["asc", "desc"] | None = Query(None, description="Override the sort direction"),
    verdict: str | None = Query(None, max_length=100, description="Only samples with this verdict"),
    offset: int = Query(0, ge=0, le=10_000_000),
    limit: int | None = Query(None, ge=1, le=100_000, description="Default: all"),
) -> Response:
    state = app_state(request)
    if sort == "id" and order is None and verdict is None and offset == 0 and limit is None:
        return Response(state.sample_list_bytes, media_type="application/json")
    items = state.samples
    if verdict is not None:
        items = [r for r in items if r["verdict"] == verdict]
    if sort == "novelty":
        items = sorted(items, key=novelty_key, reverse=(order or "desc") == "desc")
    elif sort == "similarity":
        deepest = state.view.layers[-1]
        known = [r for r in items if r["layers"][deepest]["similarity"] is not None]
        unknown = [r for r in items if r["layers"][deepest]["similarity"] is None]
        items = sorted(known, key=lambda r: r["layers"][deepest]["similarity"],
                       reverse=(order or "desc") == "desc") + unknown
    elif order == "desc":
        items = items[::-1]
    total = len(items)
    items = items[offset: offset + limit if limit else None]
    return Response(dumps({"total": total, "items": items, "verdicts": state.verdict_counts,
                           "layers": state.view.layers}), media_type="application/json")


NEIGHBOUR_PARAMETERS = {"parameters": [
    {"name": "sample_id", "in": "path", "required": True, "schema": {"type": "string"},
     "description": "A generated sample id (its path in the generated folder)"},
    {"name": "layer", "in": "query", "required": True, "schema": {"type": "string", "maxLength": 100},
     "description": "A layer of the run, e.g. block1_pool (colour and texture) or block5_pool (shape)"},
    {"name": "k", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
     "description": "How many neighbours, at most the run's k (default: the run's k)"},
]}


@router.get("/{sample_id:id}/neighbors", response_model=NeighbourList, responses=ERROR_RESPONSES,
            openapi_extra=NEIGHBOUR_PARAMETERS, summary="Top-k training neighbours of a sample at one layer")
async def sample_neighbours(request: Request) -> Response:
    # The hottest route: parameters are read by hand (documented above), skipping FastAPI's
    # per-request validation machinery, and the body comes from a cache of serialised lists.
    query = request.query_params
    body = app_state(request).neighbour_request(request.path_params["sample_id"], query.get("layer"), query.get("k"))
    return Response(body, media_type="application/json")


@router.get("/{sample_id:id}", response_model=SampleDetail, responses=ERROR_RESPONSES,
            summary="One generated sample")
async def get_sample(request: Request, sample_id: str) -> Response:
    state = app_state(request)
    index = state.check_sample(sample_id)
    ids = state.view.sample_ids
    record = {**state.samples[index], "index": index,
              "previous": ids[index - 1] if index > 0 else None,
              "next": ids[index + 1] if index + 1 < len(ids) else None}
    return Response(dumps(record), media_type="application/json")
