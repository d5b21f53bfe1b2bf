"""Run the app with uvicorn (the ``novelty serve`` command)."""

from __future__ import annotations

import contextlib
import errno
import gc
import ipaddress
import socket
from collections.abc import Callable

from novelty import defaults
from novelty.errors import NoveltyError
from webdemo.app import create_app
from webdemo.settings import Settings


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` as uvicorn binds it (port 0: any free port); a one-line
    :class:`NoveltyError` naming the port and ``--port`` when the address is taken or not allowed."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise NoveltyError(f"port {port} on {host} is already in use; choose another with --port") from None
        raise NoveltyError(f"cannot listen on {host} port {port}: {exc.strerror or exc}; "
                           "choose another --host or --port") from None
    return sock


def serve(settings: Settings, host: str = defaults.HOST, port: int = defaults.PORT,
          log_level: str = "info", announce: Callable[[str], None] | None = None) -> None:
    """Read the run and bind the port (errors surface before anything listens or is announced), then
    serve it until interrupted.

    ``announce`` receives one line saying where the app is, once the run has been read and the port bound.
    """
    import uvicorn

    app = create_app(settings)
    sock = bind(host, port)
    port = sock.getsockname()[1]
    if announce is not None:
        shown = f"[{host}]" if ":" in host else host
        note = "" if is_loopback(host) else "  (reachable from other machines: anyone who can reach it sees the images)"
        announce(f"Serving {settings.run} on http://{shown}:{port}/  (API docs: /docs; Ctrl+C to stop){note}")
    # The run's state lives as long as the server: move it out of the collector's view, so that full
    # collections under load do not walk it again and again (tail latency).
    gc.collect()
    gc.freeze()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False))
    with sock, contextlib.suppress(KeyboardInterrupt):  # Ctrl+C stops it quietly, as uvicorn.run does
        server.run(sockets=[sock])  # the socket bound above: no second bind that could fail after startup
    if not server.started:
        raise NoveltyError(f"the web demo did not start on {host} port {port} (see the log above)")
