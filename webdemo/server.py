"""Run the app with uvicorn (the ``novelty serve`` command)."""

from __future__ import annotations

from novelty import defaults
from webdemo.app import create_app
from webdemo.settings import Settings


def serve(settings: Settings, host: str = defaults.HOST, port: int = defaults.PORT,
          log_level: str = "info") -> None:
    """Read the run, then serve it until interrupted. Binds to loopback unless told otherwise."""
    import uvicorn

    app = create_app(settings)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
