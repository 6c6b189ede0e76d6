"""Standalone functions that return a ``Result`` instead of raising (the seed's
``embeddingsGenerate(core, request, options)``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Generic, TypeVar

import httpx

from embedrouter.sdk._backoff import RetryConfig
from embedrouter.sdk._core import EmbedRouterCore, RequestOptions
from embedrouter.sdk._exceptions import (
    APIConnectionError,
    EmbedRouterError,
    RequestValidationError,
)
from embedrouter.sdk._generate import embeddings_body, generate_request
from embedrouter.sdk._request import PreparedRequest, interpret
from embedrouter.sdk._responses import CreateEmbeddingsResponse, parse_embeddings

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Result(Generic[T]):
    """``ok`` with ``value``, or not ``ok`` with ``error`` (an ``EmbedRouterError``)."""

    ok: bool
    value: T | None = None
    error: EmbedRouterError | None = None


@dataclass(frozen=True, slots=True)
class CreateEmbeddingsRequest:
    """The typed form of the request; a plain dict with the same keys works too."""

    input: Any
    model: str
    encoding_format: str | None = None
    dimensions: int | None = None
    input_type: str | None = None
    user: str | None = None
    provider: Any = None
    session_id: str | None = None
    trace: Any = None


def _fields(request: CreateEmbeddingsRequest | Mapping[str, Any]) -> dict[str, Any]:
    if is_dataclass(request) and not isinstance(request, type):
        fields = asdict(request)
        if fields.get("provider") is None:
            fields.pop("provider")
        return fields
    if isinstance(request, Mapping):
        return dict(request)
    raise RequestValidationError("request must be a dict or a CreateEmbeddingsRequest")


def _prepared(core: EmbedRouterCore, request: CreateEmbeddingsRequest | Mapping[str, Any],
              options: RequestOptions | Mapping[str, Any] | None
              ) -> tuple[PreparedRequest, RetryConfig]:
    opts = RequestOptions.coerce(options)
    return generate_request(core, embeddings_body(_fields(request)), opts), core.retries(opts)


def _failure(exc: EmbedRouterError | httpx.HTTPError) -> Result[Any]:
    if isinstance(exc, EmbedRouterError):
        return Result(ok=False, error=exc)
    # e.g. a malformed server URL: still a failure the caller should get as a value.
    return Result(ok=False, error=APIConnectionError(f"HTTP error: {exc}"))


def embeddings_generate(core: EmbedRouterCore,
                        request: CreateEmbeddingsRequest | Mapping[str, Any],
                        options: RequestOptions | Mapping[str, Any] | None = None
                        ) -> Result[CreateEmbeddingsResponse]:
    """POST /embeddings; every HTTP, transport, timeout or validation failure is a Result."""
    try:
        req, retry = _prepared(core, request, options)
        value = interpret(core.send(req, retry), parse_embeddings)
    except (EmbedRouterError, httpx.HTTPError) as exc:
        return _failure(exc)
    return Result(ok=True, value=value)


async def embeddings_generate_async(core: EmbedRouterCore,
                                    request: CreateEmbeddingsRequest | Mapping[str, Any],
                                    options: RequestOptions | Mapping[str, Any] | None = None
                                    ) -> Result[CreateEmbeddingsResponse]:
    try:
        req, retry = _prepared(core, request, options)
        value = interpret(await core.send_async(req, retry), parse_embeddings)
    except (EmbedRouterError, httpx.HTTPError) as exc:
        return _failure(exc)
    return Result(ok=True, value=value)
