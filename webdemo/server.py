"""Run the app with uvicorn (the ``novelty serve`` command)."""

from __future__ import annotations

import gc
import ipaddress
from collections.abc import Callable

from novelty import defaults
from webdemo.app import create_app
from webdemo.settings import Settings


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(settings: Settings, host: str = defaults.HOST, port: int = defaults.PORT,
          log_level: str = "info", announce: Callable[[str], None] | None = None) -> None:
    """Read the run (errors surface before anything listens), then serve it until interrupted.

    ``announce`` receives one line saying where the app is, once the run has been read.
    """
    import uvicorn

    app = create_app(settings)
    if announce is not None:
        shown = f"[{host}]" if ":" in host else host
        note = "" if is_loopback(host) else "  (reachable from other machines: anyone who can reach it sees the images)"
        announce(f"Serving {settings.run} on http://{shown}:{port}/  (API docs: /docs; Ctrl+C to stop){note}")
    # The run's state lives as long as the server: move it out of the collector's view, so that full
    # collections under load do not walk it again and again (tail latency).
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
