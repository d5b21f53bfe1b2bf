"""One JSON error shape for every failure, translated once at the app's boundary.

Every error response is ``{"error": {"status": <int>, "code": "<slug>", "message": "<one line>"}}``
(plus ``"details"`` for request validation). A :class:`~novelty.errors.NoveltyError` from the library
becomes a 4xx with its one-line message; anything unexpected is a 500 without a traceback.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from novelty.errors import NoveltyError

log = logging.getLogger("webdemo")


class ErrorInfo(BaseModel):
    status: int
    code: str
    message: str
    details: list[dict] | None = None


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorInfo


class ApiError(HTTPException):
    """An HTTP error with a one-line message and a machine-readable code."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(status_code=status, detail=message)
        self.code = code or _slug(status)


def not_found(what: str, value: str) -> ApiError:
    return ApiError(404, f"unknown {what}: {value!r}", "not_found")


def _slug(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def error_response(status: int, message: str, code: str | None = None,
                   details: list[dict] | None = None, headers: dict | None = None) -> JSONResponse:
    info: dict = {"status": status, "code": code or _slug(status), "message": message}
    if details is not None:
        info["details"] = details
    return JSONResponse({"error": info}, status_code=status, headers=headers)


ERROR_RESPONSES = {status: {"model": ErrorBody, "description": HTTPStatus(status).phrase}
                   for status in (404, 422)}


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one shape."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and not isinstance(exc, ApiError):
            message = f"not found: {request.url.path}"
        return error_response(exc.status_code, message, getattr(exc, "code", None),
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": [str(part) for part in err.get("loc", ())], "message": str(err.get("msg", ""))}
                   for err in exc.errors()]
        first = details[0] if details else {"loc": [], "message": "invalid request"}
        where = ".".join(first["loc"][1:] or first["loc"])
        return error_response(422, f"invalid {where or 'request'}: {first['message']}",
                              "invalid_request", details)

    @app.exception_handler(NoveltyError)
    async def novelty_error(request: Request, exc: NoveltyError) -> JSONResponse:
        return error_response(422, str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                              "invalid_input")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); see the server log")
