"""Read one uploaded file from a multipart form, in memory, within a size limit.

FastAPI's ``UploadFile`` spools large parts to a temporary file; the app promises to write nothing
outside its run folder and cache, so the body is parsed here with python-multipart, stopping at
the limit, and the file is only checked for a known image signature before anyone decodes it.
"""

from __future__ import annotations

import numpy as np
from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from webdemo.errors import ApiError

FORM_OVERHEAD = 64 * 1024  # room for the multipart framing and small fields beside the file

# Leading bytes of the image formats a query accepts.
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
)

OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary",
                                    "description": "A PNG, JPEG, GIF, BMP, TIFF or WebP image"}},
        }}},
    }
}


def sniff(data: bytes) -> str | None:
    """The image format named by the first bytes of ``data``, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for signature, name in SIGNATURES:
        if data.startswith(signature):
            return name
    return None


async def read_file_field(request: Request, field: str, limit: int) -> tuple[str | None, bytes]:
    """The filename and bytes of form field ``field``; 413 past ``limit`` bytes, 4xx when malformed."""
    mime, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise ApiError(415, f"expected a multipart/form-data body with a file field {field!r}, "
                            f"received content type {mime.decode('latin-1') or 'none'!r}",
                       "unsupported_media_type")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + FORM_OVERHEAD:
        raise _too_large(limit)

    parts: list[dict] = []
    header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray()}

    def on_part_begin() -> None:
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        parts[-1]["headers"][bytes(header["field"]).lower()] = bytes(header["value"])
        header["field"], header["value"] = bytearray(), bytearray()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part = parts[-1]
        part["data"] += data[start:end]
        if len(part["data"]) > limit:
            raise _too_large(limit)

    callbacks = {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                 "on_header_value": on_header_value, "on_header_end": on_header_end,
                 "on_part_data": on_part_data}
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit + FORM_OVERHEAD:
                raise _too_large(limit)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise ApiError(400, f"malformed multipart body: {exc}", "bad_request") from None
    except (ValueError, UnicodeError) as exc:
        raise ApiError(400, f"malformed multipart body: {type(exc).__name__}", "bad_request") from None

    for part in parts:
        disposition, options = parse_options_header(part["headers"].get(b"content-disposition", b""))
        if disposition == b"form-data" and options.get(b"name") == field.encode():
            filename = options.get(b"filename")
            name = filename.decode("utf-8", "replace") if filename is not None else None
            return name, bytes(part["data"])
    raise ApiError(422, f"missing form field {field!r} (the image file)", "invalid_request")


async def read_image(request: Request, settings) -> tuple[str | None, np.ndarray, object]:
    """The uploaded image of form field "file", decoded: ``(filename, RGB uint8 (H, W, 3), decode info)``;
    413 past the upload limit, 415 for content that is not a known image format, 422 when it cannot be
    decoded (or holds more pixels than allowed)."""
    from novelty.images.decode import ImageError, decode

    filename, data = await read_file_field(request, "file", settings.max_upload_bytes)
    if sniff(data) is None:
        raise ApiError(415, "not a supported image: expected PNG, JPEG, GIF, BMP, TIFF or WebP content",
                       "unsupported_media_type")
    try:
        image, info = decode(data, max_pixels=settings.max_upload_pixels)
    except ImageError as exc:
        raise ApiError(422, f"cannot use this image: {exc}", "invalid_image") from None
    return filename, image, info


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"upload too large: the limit is {limit:,} bytes", "content_too_large")
