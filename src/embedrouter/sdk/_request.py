"""I/O-free halves of every call: build the HTTP request, interpret the HTTP response.

The sync and async clients share these, so both behave identically by construction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from embedrouter.sdk._exceptions import (
    ERROR_CLASSES,
    EmbedRouterError,
    ErrorData,
    ErrorDetail,
    OpenRouterDefaultError,
    ResponseValidationError,
)
from embedrouter.sdk._responses import ShapeError

T = TypeVar("T")

ACCEPT_EMBEDDINGS = "application/json;q=1, text/event-stream;q=0"
_BODY_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, Any] | None
    content: bytes | None
    timeout: float


def prepare(method: str, base_url: str, path: str, *, headers: Mapping[str, str],
            timeout: float, json_body: Any = None, params: dict[str, Any] | None = None
            ) -> PreparedRequest:
    content = None
    hdrs = dict(headers)
    if json_body is not None:
        content = json.dumps(json_body, separators=(",", ":"), allow_nan=False).encode()
        hdrs["content-type"] = "application/json"
    return PreparedRequest(method, base_url.rstrip("/") + path, hdrs, params, content, timeout)


def _content_type(resp: httpx.Response) -> str:
    return resp.headers.get("content-type", "")


def _is_json(resp: httpx.Response) -> bool:
    ct = _content_type(resp).split(";")[0].strip().lower()
    return ct == "application/json" or ct.endswith("+json")


def _error_data(payload: Any) -> ErrorData:
    if not isinstance(payload, dict) or not isinstance(payload.get("error"), dict):
        raise ShapeError("$.error: missing")
    err = payload["error"]
    code, message = err.get("code"), err.get("message")
    if not isinstance(code, int) or isinstance(code, bool):
        raise ShapeError("$.error.code: expected an integer")
    if not isinstance(message, str):
        raise ShapeError("$.error.message: expected a string")
    metadata = err.get("metadata")
    user_id = payload.get("user_id")
    or_meta = payload.get("openrouter_metadata")
    return ErrorData(
        error=ErrorDetail(code=code, message=message,
                          metadata=metadata if isinstance(metadata, dict) else None),
        user_id=user_id if isinstance(user_id, str) else None,
        openrouter_metadata=or_meta if isinstance(or_meta, dict) else None,
    )


def error_for(resp: httpx.Response) -> EmbedRouterError:
    """The typed error for a 4XX/5XX response, following the official SDK's rules."""
    text = resp.text
    status = resp.status_code
    cls = ERROR_CLASSES.get(status)
    if cls is not None and _is_json(resp):
        try:
            data = _error_data(json.loads(text))
        except (ValueError, ShapeError) as exc:
            return ResponseValidationError(
                f"Response validation failed: status {status} body is not a valid error "
                f"envelope ({exc})", cause=exc, status_code=status, body=text,
                raw_response=resp)
        return cls(data.error.message, status_code=status, body=text, raw_response=resp,
                   data=data)
    ct = _content_type(resp)
    shown = "" if ct == "application/json" else f" Content-Type {ct}"
    return OpenRouterDefaultError(
        f"API error occurred: Status {status}{shown}. Body: {text[:_BODY_LIMIT]}",
        status_code=status, body=text, raw_response=resp)


def interpret(resp: httpx.Response, parse: Callable[[Any], T]) -> T:
    """A success body parsed by ``parse``, or the error the response stands for."""
    if resp.status_code >= 400:
        raise error_for(resp)
    if not _is_json(resp):
        raise ResponseValidationError(
            f"Unexpected response content type {_content_type(resp)!r}",
            status_code=resp.status_code, body=resp.text, raw_response=resp)
    try:
        return parse(json.loads(resp.content))
    except (ValueError, ShapeError) as exc:
        raise ResponseValidationError(f"Response validation failed: {exc}", cause=exc,
                                      status_code=resp.status_code, body=resp.text,
                                      raw_response=resp) from exc
