"""The one table from the error tree to HTTP statuses, and the envelope every failure uses."""

from __future__ import annotations

from typing import Any

import orjson

from embedrouter import errors as e

# Most specific first: the first class an exception is an instance of decides its status.
STATUS_TABLE: tuple[tuple[type[e.EmbedRouterError], int], ...] = (
    (e.InvalidRequest, 400),
    (e.AuthenticationFailed, 401),
    (e.PermissionDenied, 403),
    (e.NotFound, 404),
    (e.MethodNotAllowed, 405),
    (e.PayloadTooLarge, 413),
    (e.Overloaded, 429),
    (e.ServiceUnavailable, 503),
    (e.InternalError, 500),
)


def status_for(exc: e.EmbedRouterError) -> int:
    for cls, status in STATUS_TABLE:
        if isinstance(exc, cls):
            return status
    return 500


def envelope(status: int, message: str, metadata: dict[str, Any] | None = None) -> bytes:
    """The wire envelope; ``code`` is the int HTTP status, as the SDKs require."""
    body: dict[str, Any] = {"error": {"code": status, "message": message}}
    if metadata:
        body["error"]["metadata"] = metadata
    return orjson.dumps(body)


def render(exc: e.EmbedRouterError) -> tuple[int, bytes, dict[str, str]]:
    status = status_for(exc)
    return status, envelope(status, exc.message, exc.metadata), exc.headers


INTERNAL_MESSAGE = "Internal server error"
