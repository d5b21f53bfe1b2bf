"""Assemble the app: state for one run, one router per resource, error handlers, static files last."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import novelty
from webdemo import errors
from webdemo.fastpath import NeighbourFastPath
from webdemo.routers import images, query, samples, summary, training
from webdemo.settings import Settings
from webdemo.state import AppState

STATIC_DIR = Path(__file__).resolve().parent / "static"

DESCRIPTION = """Browse one run of `novelty analyze`: generated samples, their nearest training images
at two VGG16 layers (block1_pool: colour and texture; block5_pool: shape) with similarities and
calibrated scores, the training set's curation flags, and a query with any image.

Every error has one shape: `{"error": {"status": 404, "code": "not_found", "message": "..."}}`."""


def create_app(settings: Settings) -> FastAPI:
    """The web app for ``settings.run``; reads the run folder now (a NoveltyError if it is not one)."""
    state = AppState(settings)
    app = FastAPI(title="novelty web demo", version=novelty.__version__, description=DESCRIPTION,
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    app.state.novelty = state
    errors.install(app)
    for module in (samples, training, summary, images, query):
        app.include_router(module.router)
    app.add_middleware(NeighbourFastPath, state=state)
    state.warm()
    app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static")
    return app
