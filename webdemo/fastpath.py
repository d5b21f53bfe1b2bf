"""A fast path for the hottest request: GET /api/samples/{id}/neighbors with valid parameters.

The gallery and the sample view ask for neighbour lists far more often than anything else, and the
answer is a cached byte string. This ASGI middleware answers those requests directly, without
FastAPI's per-request routing and parameter machinery (about half the server time per request).
Anything it does not fully recognise (an unknown id, a bad or extra parameter, another method) goes
on to the FastAPI route unchanged, which validates it and answers with the one error shape; both
paths produce the same bytes for the same list.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

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
        state = self.state
        try:
            params = dict(parse_qsl(query_string.decode("ascii"), strict_parsing=True))
        except (UnicodeDecodeError, ValueError):
            return None
        layer, k = params.pop("layer", None), params.pop("k", None)
        if params or layer not in state.view.layers or sample_id not in state.sample_index:
            return None
        if k is None:
            k = state.view.k
        elif k.isdigit() and len(k) < 7 and 1 <= int(k) <= state.view.k:
            k = int(k)
        else:
            return None
        return state.neighbour_bytes(sample_id, layer, k)
