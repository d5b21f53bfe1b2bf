"""A fast path for the hottest request: GET /api/samples/{id}/neighbors with valid parameters.

The gallery and the sample view ask for neighbour lists far more often than anything else, and the
answer is a cached byte string. This ASGI middleware answers those requests directly, without
FastAPI's per-request routing and parameter machinery (about half the server time per request).
It runs the route's own checks (``AppState.neighbour_request``): a request they refuse (an unknown
id, a bad parameter) and any other method or path go on to the FastAPI route unchanged, which answers
with the one error shape; both paths produce the same bytes for the same list.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from webdemo.errors import ApiError

PREFIX = "/api/samples/"
SUFFIX = "/neighbors"


class NeighbourFastPath:
    def __init__(self, app, state) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = scope["path"]
            if path.startswith(PREFIX) and path.endswith(SUFFIX) and len(path) > len(PREFIX) + len(SUFFIX):
                body = self._body(path[len(PREFIX):-len(SUFFIX)], scope.get("query_string", b""))
                if body is not None:
                    await send({"type": "http.response.start", "status": 200, "headers": [
                        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)

    def _body(self, sample_id: str, query_string: bytes) -> bytes | None:
        """The route's answer, through the route's own checks (``AppState.neighbour_request``) on the
        same query parsing Starlette's ``QueryParams`` does for the route (a repeated name: its last value);
        None hands the request on to the route."""
        query = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
        try:
            return self.state.neighbour_request(sample_id, query.get("layer"), query.get("k"))
        except ApiError:
            return None
