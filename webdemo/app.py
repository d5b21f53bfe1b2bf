"""Assemble the app: state for one run, one router per resource, error handlers, static files last."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

import novelty
from webdemo import errors
from webdemo.fastpath import NeighbourFastPath
from webdemo.paths import STATIC_DIR
from webdemo.routers import images, query, samples, summary, training
from webdemo.settings import Settings
from webdemo.state import AppState

DESCRIPTION = """Browse one run of `novelty analyze`: generated samples, their nearest training images
at two VGG16 layers (block1_pool: colour and texture; block5_pool: shape) with similarities and
calibrated scores, the training set's curation flags, and a query with any image.

Every error has one shape: `{"error": {"status": 404, "code": "not_found", "message": "..."}}`."""


def create_app(settings: Settings) -> FastAPI:
    """The web app for ``settings.run``; reads the run folder now (a NoveltyError if it is not one)."""
    state = AppState(settings)
    assets = _swagger_assets()
    app = FastAPI(title="novelty web demo", version=novelty.__version__, description=DESCRIPTION,
                  docs_url=None if assets else "/docs", redoc_url=None, openapi_url="/openapi.json")
    app.state.novelty = state
    errors.install(app)
    for module in (samples, training, summary, images, query):
        app.include_router(module.router)
    if assets:
        _offline_docs(app, assets)
    app.add_middleware(NeighbourFastPath, state=state)
    state.warm()
    app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static")
    return app


def _swagger_assets() -> Path | None:
    """Swagger UI's files from the swagger-ui-bundle package, so /docs works offline (FastAPI's
    default page loads them from a CDN); None when the package is missing."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    path = Path(swagger_ui_path)
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def _offline_docs(app: FastAPI, assets: Path) -> None:
    from fastapi.openapi.docs import get_swagger_ui_html

    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title}: API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")
