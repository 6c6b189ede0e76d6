"""The server side's one error tree.

Every layer below ``api/`` raises one of these; ``api/errors.py`` turns them into the wire envelope
``{"error": {"code": <status>, "message": ..., "metadata": ...}}`` through a single table. Messages
are written for the API caller: they never carry stack traces, secrets or key material.

    EmbedRouterError
    ├── InvalidRequest            400  malformed body, bad field, unsupported option
    │   ├── EmptyInput            400  "Input must not be empty"
    │   ├── UnknownModel          400  slug not in the catalog
    │   ├── UnsupportedInput      400  media part sent to a text-only model
    │   └── ContextLengthExceeded 400  an input has more tokens than the model's context
    ├── AuthenticationFailed      401
    ├── PaymentRequired           402  balance or key limit too low (before any provider call)
    ├── PermissionDenied          403
    ├── NotFound                  404  unknown route, or model that is not an embeddings model
    ├── MethodNotAllowed          405
    ├── PayloadTooLarge           413  too many inputs or too big a body
    ├── Overloaded                429  local queue full (Retry-After)
    │   └── RateLimited           429  a key's or model's RPM/TPM (X-RateLimit-* headers)
    ├── ServiceUnavailable        503
    ├── UpstreamError             400/429/502/503/504/524/529  every upstream attempt failed
    └── InternalError             500  anything unexpected (message masked)
"""

from __future__ import annotations

from typing import Any


class EmbedRouterError(Exception):
    """Base of every error the server turns into an envelope."""

    def __init__(
        self,
        message: str,
        *,
        metadata: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata
        self.headers = headers or {}


class InvalidRequest(EmbedRouterError):
    """The request cannot be served as sent (400)."""


class EmptyInput(InvalidRequest):
    def __init__(self, message: str = "Input must not be empty", **kw: Any) -> None:
        super().__init__(message, **kw)


class UnknownModel(InvalidRequest):
    def __init__(self, model: str) -> None:
        super().__init__(
            f"Model {model!r} does not exist",
            metadata={"availability": {"code": "model_not_found", "retryable": False,
                                       "requested_models": [model]}},
        )


class UnsupportedInput(InvalidRequest):
    """A multimodal part was sent to a model that cannot embed it."""


class ContextLengthExceeded(InvalidRequest):
    def __init__(self, *, index: int, tokens: int, limit: int, model: str,
                 at_least: bool = False) -> None:
        # at_least: only a prefix was tokenized (bounded work), so `tokens` is a lower bound.
        count = f"at least {tokens}" if at_least else str(tokens)
        super().__init__(
            f"input[{index}] has {count} tokens, more than the {limit}-token context of "
            f"model {model!r}. Shorten it or split it; set truncate=true in the server config "
            "to cut long inputs instead.",
            metadata={"error_type": "context_length_exceeded", "index": index,
                      "tokens": tokens, "limit": limit, "tokens_is_lower_bound": at_least},
        )
        self.index = index
        self.tokens = tokens
        self.limit = limit


class AuthenticationFailed(EmbedRouterError):
    """Missing, unknown or disabled key (401)."""


class PaymentRequired(EmbedRouterError):
    """Not enough credits, or the key's spend limit is used up (402)."""

    def __init__(self, message: str, *, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(message, metadata={"error_type": "payment_required", **(metadata or {})})


class PermissionDenied(EmbedRouterError):
    """The key is valid but may not do this (403)."""


class NotFound(EmbedRouterError):
    """No such route, or a model with no embeddings endpoint (404)."""


class MethodNotAllowed(EmbedRouterError):
    def __init__(self, method: str, allowed: list[str]) -> None:
        super().__init__(
            f"Method {method} is not allowed here; use {', '.join(allowed)}",
            headers={"allow": ", ".join(allowed)},
        )


class PayloadTooLarge(EmbedRouterError):
    """Too many inputs or too many bytes in one request (413)."""


class Overloaded(EmbedRouterError):
    """The local queue is full; the caller should retry after ``retry_after`` seconds (429)."""

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(
            message,
            metadata={"error_type": "rate_limit_exceeded", "retry_after_seconds": retry_after},
            headers={"retry-after": str(retry_after)},
        )
        self.retry_after = retry_after


class RateLimited(Overloaded):
    """A rate limit of this server (not an upstream's): 429 with the X-RateLimit-* headers.

    ``reset_ms`` is when the window ends, in unix milliseconds (OpenRouter's unit).
    """

    def __init__(self, message: str, *, limit: int, remaining: int, reset_ms: int,
                 retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.headers.update({"x-ratelimit-limit": str(limit),
                             "x-ratelimit-remaining": str(remaining),
                             "x-ratelimit-reset": str(reset_ms)})


class ServiceUnavailable(EmbedRouterError):
    """Nothing can serve the request right now (503)."""


class InternalError(EmbedRouterError):
    """Unexpected failure; the message shown to the caller is masked (500)."""


class UpstreamError(EmbedRouterError):
    """Every upstream attempt failed; ``status`` was chosen from what they failed with."""

    def __init__(self, status: int, message: str, *, metadata: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, metadata=metadata, headers=headers)
        self.status = status
