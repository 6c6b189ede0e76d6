"""I/O-free halves of every call: build the HTTP request, interpret the HTTP response.

The sync and async paths share these, so both behave identically by construction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any, TypeVar

import httpx

from embedrouter.sdk._exceptions import (
    ERROR_CLASSES,
    EmbedRouterError,
    ErrorData,
    ErrorDetail,
    OpenRouterDefaultError,
    RequestValidationError,
    ResponseValidationError,
)
from embedrouter.sdk._responses import ShapeError

T = TypeVar("T")

ACCEPT_EMBEDDINGS = "application/json;q=1, text/event-stream;q=0"
MAX_MESSAGE_LEN = 10_000  # the official OpenRouterDefaultError's cut


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, Any] | None
    content: bytes | None
    timeout: float | None  # seconds; None: the HTTP client's own default


def prepare(method: str, base_url: str, path: str, *, headers: Mapping[str, str],
            timeout: float | None, json_body: Any = None, params: dict[str, Any] | None = None
            ) -> PreparedRequest:
    content = None
    hdrs = dict(headers)
    if json_body is not None:
        try:
            content = json.dumps(json_body, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:  # a set, an object, NaN among the inputs...
            raise RequestValidationError(f"request body is not JSON: {exc}") from None
        hdrs["content-type"] = "application/json"
    return PreparedRequest(method, base_url.rstrip("/") + path, hdrs, params, content, timeout)


def media_type(resp: httpx.Response) -> str:
    msg = Message()
    msg["content-type"] = resp.headers.get("content-type", "application/octet-stream")
    return msg.get_content_type()


def _is_json(resp: httpx.Response) -> bool:
    mt = media_type(resp)
    return mt == "application/json" or mt.endswith("+json")


def default_error_message(prefix: str, resp: httpx.Response) -> str:
    """The official ``OpenRouterDefaultError`` message, character for character."""
    body = resp.text or '""'
    message = f"{prefix}: Status {resp.status_code}"
    ctype = resp.headers.get("content-type", '""')
    if ctype != "application/json":
        message += " Content-Type " + (f'"{ctype}"' if " " in ctype else ctype)
    if len(body) > MAX_MESSAGE_LEN:
        body = f"{body[:MAX_MESSAGE_LEN]}...and {len(body) - MAX_MESSAGE_LEN} more chars"
    return f"{message}. Body: {body}".strip()


def _error_data(payload: Any) -> ErrorData:
    if not isinstance(payload, dict) or not isinstance(payload.get("error"), dict):
        raise ShapeError("$.error: missing")
    err = payload["error"]
    code, message = err.get("code"), err.get("message")
    if not isinstance(code, int) or isinstance(code, bool):
        raise ShapeError("$.error.code: expected an integer")
    if not isinstance(message, str):
        raise ShapeError("$.error.message: expected a string")
    metadata, user_id = err.get("metadata"), payload.get("user_id")
    or_meta = payload.get("openrouter_metadata")
    return ErrorData(
        error=ErrorDetail(code=code, message=message,
                          metadata=metadata if isinstance(metadata, dict) else None),
        user_id=user_id if isinstance(user_id, str) else None,
        openrouter_metadata=or_meta if isinstance(or_meta, dict) else None)


def _invalid(resp: httpx.Response, exc: Exception) -> ResponseValidationError:
    return ResponseValidationError(f"Response validation failed: {exc}", cause=exc,
                                   status_code=resp.status_code, body=resp.text,
                                   raw_response=resp)


def error_for(resp: httpx.Response) -> EmbedRouterError:
    """The typed error for a 4XX/5XX response, by the official SDK's rules: a JSON body at a
    known status is its class (or ResponseValidationError if it is not an error envelope);
    anything else is OpenRouterDefaultError."""
    cls = ERROR_CLASSES.get(resp.status_code)
    if cls is None or not _is_json(resp):
        return OpenRouterDefaultError(default_error_message("API error occurred", resp),
                                      status_code=resp.status_code, body=resp.text,
                                      raw_response=resp)
    try:
        data = _error_data(json.loads(resp.content))
    except (ValueError, ShapeError) as exc:
        return _invalid(resp, exc)
    return cls(data.error.message or resp.text, status_code=resp.status_code, body=resp.text,
               raw_response=resp, data=data)


def interpret(resp: httpx.Response, parse: Callable[[Any], T]) -> T:
    """A success body parsed by ``parse``, or the error the response stands for.

    A 2XX that is not JSON, or JSON of the wrong shape, is ResponseValidationError; a status
    outside 2XX that is not an error either (1XX, 3XX left after redirects) is
    OpenRouterDefaultError("Unexpected response received"), as officially.
    """
    if resp.status_code >= 400:
        raise error_for(resp)
    if not 200 <= resp.status_code < 300:
        raise OpenRouterDefaultError(default_error_message("Unexpected response received", resp),
                                     status_code=resp.status_code, body=resp.text,
                                     raw_response=resp)
    if not _is_json(resp):
        raise _invalid(resp, ShapeError(f"unexpected content type {media_type(resp)!r}"))
    try:
        return parse(json.loads(resp.content))
    except (ValueError, ShapeError) as exc:
        raise _invalid(resp, exc) from exc
