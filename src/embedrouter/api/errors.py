"""The one table from the error tree to HTTP statuses, and the envelope every failure uses."""

from __future__ import annotations

from typing import Any

import orjson

from embedrouter import errors as e

# Most specific first: the first class an exception is an instance of decides its status.
STATUS_TABLE: tuple[tuple[type[e.EmbedRouterError], int], ...] = (
    (e.InvalidRequest, 400),
    (e.AuthenticationFailed, 401),
    (e.PaymentRequired, 402),
    (e.PermissionDenied, 403),
    (e.NotFound, 404),
    (e.MethodNotAllowed, 405),
    (e.PayloadTooLarge, 413),
    (e.Overloaded, 429),
    (e.ServiceUnavailable, 503),
    (e.InternalError, 500),
)


def status_for(exc: e.EmbedRouterError) -> int:
    if isinstance(exc, e.UpstreamError):  # the router chose it from the failed attempts
        return exc.status
    for cls, status in STATUS_TABLE:
        if isinstance(exc, cls):
            return status
    return 500


# Messages and metadata echo what the caller sent (a model name, a path, a bad value); a 1 MB
# `model` must not come back as a 2 MB error. Every string in an envelope is clipped here, once.
MAX_MESSAGE_CHARS = 1000
MAX_METADATA_CHARS = 200


def clip(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def _clip_all(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return clip(value, MAX_METADATA_CHARS)
    if depth > 4:
        return None
    if isinstance(value, dict):
        return {clip(str(k), MAX_METADATA_CHARS): _clip_all(v, depth + 1)
                for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple):
        return [_clip_all(v, depth + 1) for v in value[:50]]
    return value


def envelope(status: int, message: str, metadata: dict[str, Any] | None = None) -> bytes:
    """The wire envelope; ``code`` is the int HTTP status, as the SDKs require."""
    body: dict[str, Any] = {"error": {"code": status, "message": clip(message, MAX_MESSAGE_CHARS)}}
    if metadata:
        body["error"]["metadata"] = _clip_all(metadata)
    return orjson.dumps(body)


def render(exc: e.EmbedRouterError) -> tuple[int, bytes, dict[str, str]]:
    status = status_for(exc)
    return status, envelope(status, exc.message, exc.metadata), exc.headers


INTERNAL_MESSAGE = "Internal server error"
