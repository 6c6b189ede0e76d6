"""Standalone functions that return a ``Result`` instead of raising (the seed's
``embeddingsGenerate(core, request, options)``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Generic, TypeVar

import httpx

from embedrouter.sdk._backoff import RetryConfig
from embedrouter.sdk._core import EmbedRouterCore, RequestOptions
from embedrouter.sdk._exceptions import (
    APIConnectionError,
    EmbedRouterError,
    RequestValidationError,
)
from embedrouter.sdk._generate import ATTRIBUTION, embeddings_body, generate_request
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
    """The typed form of the request; a plain dict with the same keys works too. The three
    attribution fields are sent as headers, the rest as the body (None fields are left out)."""

    input: Any
    model: str
    encoding_format: str | None = None
    dimensions: int | None = None
    input_type: str | None = None
    user: str | None = None
    provider: Any = None
    session_id: str | None = None
    trace: Any = None
    http_referer: str | None = None
    x_open_router_title: str | None = None
    x_open_router_categories: str | None = None


def _fields(request: Any) -> dict[str, Any]:
    if is_dataclass(request) and not isinstance(request, type):
        return {f.name: getattr(request, f.name) for f in fields(request)
                if getattr(request, f.name) is not None}
    if isinstance(request, Mapping):
        return dict(request)
    dump = getattr(request, "model_dump", None)  # e.g. the official CreateEmbeddingsRequestBody
    if callable(dump):
        return dict(dump(by_alias=True, exclude_unset=True))
    raise RequestValidationError("request must be a dict or a CreateEmbeddingsRequest")


def _prepared(core: EmbedRouterCore, request: Any,
              options: RequestOptions | Mapping[str, Any] | None
              ) -> tuple[PreparedRequest, RetryConfig]:
    opts = RequestOptions.coerce(options)
    body = _fields(request)
    attribution = {header: body.pop(arg, None) for arg, header in ATTRIBUTION.items()}
    return (generate_request(core, embeddings_body(body), opts, attribution),
            core.retries(opts))


def _failure(exc: EmbedRouterError | httpx.HTTPError) -> Result[Any]:
    if isinstance(exc, EmbedRouterError):
        return Result(ok=False, error=exc)
    # An httpx error the send loop did not translate: still a failure, as a value.
    return Result(ok=False, error=APIConnectionError(f"HTTP error: {exc}"))


def embeddings_generate(core: EmbedRouterCore,
                        request: CreateEmbeddingsRequest | Mapping[str, Any],
                        options: RequestOptions | Mapping[str, Any] | None = None
                        ) -> Result[CreateEmbeddingsResponse]:
    """POST /embeddings. Every HTTP, transport, timeout or validation failure comes back as
    ``Result(ok=False, error=...)``; this function does not raise for them."""
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
    """The async twin of ``embeddings_generate``."""
    try:
        req, retry = _prepared(core, request, options)
        value = interpret(await core.send_async(req, retry), parse_embeddings)
    except (EmbedRouterError, httpx.HTTPError) as exc:
        return _failure(exc)
    return Result(ok=True, value=value)
