"""TRAINING images for curation: outliers, duplicate groups, hubs, pixel flags."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request, Response

from novelty.curate.morelike import more_like
from novelty.run.trainingview import DEFAULT_SORT
from webdemo.schemas import MoreLikeRequest, MoreLikeResult, TrainingList
from webdemo.state import app_state, dumps

router = APIRouter(prefix="/api/training", tags=["training"])


@router.get("", response_model=TrainingList, summary="Training images, filtered for curation")
async def list_training(
    request: Request,
    filter: Literal["all", "outliers", "duplicates", "hubs", "flagged"] = Query(
        "all", description="outliers; duplicates (members of a duplicate group); hubs (near "
                           "to many training images, or retrieved by many samples; most retrieved first); flagged (any pixel flag)"),
    flag: str | None = Query(None, max_length=100, description="Only images with this pixel flag"),
    sort: Literal["id", "outlier_score", "times_retrieved", "duplicate_group"] | None = Query(
        None, description="Default: the natural order of the filter"),
    q: str | None = Query(None, max_length=200, description="Only ids containing this text"),
    offset: int = Query(0, ge=0, le=10_000_000),
    limit: int = Query(500, ge=1, le=100_000),
) -> Response:
    state = app_state(request)
    items = state.training_view(filter, sort or DEFAULT_SORT.get(filter, "id"))
    if flag is not None:
        items = [r for r in items if flag in r["flags"]]
    if q:
        needle = q.lower()
        items = [r for r in items if needle in r["id"].lower()]
    total = len(items)
    page = {"total": total, "offset": offset, "items": items[offset: offset + limit],
            "counts": state.training_counts, "flags": state.training_flags}
    return Response(dumps(page), media_type="application/json")


@router.post("/more-like", response_model=MoreLikeResult, summary="Training images most like the examples")
def more_like_these(request: Request, body: MoreLikeRequest) -> MoreLikeResult:
    """Ranked by :func:`novelty.curate.morelike.more_like` (both layers), examples and NOT ids left out; each
    item is the image's curation row with its ``score`` and ``rank``. Unknown ids: 422 naming them."""
    state = app_state(request)
    ranked = more_like(state.view.root, body.examples, body.not_ids)
    rows = state.training_by_id
    items = [{**rows[r["id"]], **r} for r in ranked.rows(body.limit) if r["id"] in rows]
    return MoreLikeResult(total=len(ranked.ids), items=items)
