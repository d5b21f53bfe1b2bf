"""Set-level statistics of the run and the names of its plots."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from webdemo.schemas import Summary
from webdemo.state import app_state

router = APIRouter(prefix="/api/summary", tags=["summary"])


@router.get("", response_model=Summary, summary="Run settings, counts, statistics and plots")
async def get_summary(request: Request) -> Response:
    return Response(app_state(request).summary_bytes, media_type="application/json")
