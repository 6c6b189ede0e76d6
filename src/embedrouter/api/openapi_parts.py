"""Small builders shared by the parts of the OpenAPI document (openapi.py, openapi_accounts.py)."""

from __future__ import annotations

from typing import Any

_ERROR_TEXT = {
    400: "Bad request", 401: "Missing, malformed, unknown or disabled key",
    402: "Insufficient credits, or the key's spend limit is reached", 403: "Forbidden",
    404: "Not found", 405: "Method not allowed", 413: "Payload too large",
    429: "Too many requests (queue full or rate limited); see Retry-After",
    500: "Internal error", 502: "Every upstream attempt failed (Provider returned error)",
    503: "Service unavailable: no endpoint of the model can be tried now",
    504: "Every upstream attempt timed out", 524: "The request's own deadline passed",
    529: "Every upstream attempt was overloaded",
}


def ref(name: str) -> dict[str, str]:
    """A reference to ``#/components/schemas/<name>``."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: str, description: str) -> dict[str, Any]:
    """A response whose JSON body is the named component schema."""
    return {"description": description,
            "content": {"application/json": {"schema": ref(schema)}}}


def error_responses(*statuses: int) -> dict[str, Any]:
    """The error envelope, declared under each status an operation can answer with."""
    return {str(s): json_response("ErrorResponse", _ERROR_TEXT[s]) for s in statuses}
