"""Standalone functions that return a ``Result`` instead of raising (the seed's
``embeddingsGenerate(core, request, options)``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Generic, TypeVar

import httpx

from embedrouter.sdk._core import EmbedRouterCore, RequestOptions
from embedrouter.sdk._exceptions import (
    APIConnectionError,
    EmbedRouterError,
    RequestValidationError,
)
from embedrouter.sdk._generate import embeddings_body, generate_request
from embedrouter.sdk._request import interpret
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
    raise TypeError("request must be a dict or a CreateEmbeddingsRequest")


def embeddings_generate(core: EmbedRouterCore,
                        request: CreateEmbeddingsRequest | Mapping[str, Any],
                        options: RequestOptions | Mapping[str, Any] | None = None
                        ) -> Result[CreateEmbeddingsResponse]:
    """POST /embeddings; every HTTP, transport, timeout or validation failure is a Result."""
    try:
        opts = RequestOptions.coerce(options)
        req = generate_request(core, embeddings_body(_fields(request)), opts)
        value = interpret(core.send(req, core.retries(opts)), parse_embeddings)
    except EmbedRouterError as exc:
        return Result(ok=False, error=exc)
    except httpx.HTTPError as exc:  # e.g. a malformed URL: still the caller's failure to see
        return Result(ok=False, error=APIConnectionError(f"HTTP error: {exc}"))
    except TypeError as exc:
        return Result(ok=False, error=RequestValidationError(str(exc)))
    return Result(ok=True, value=value)


async def embeddings_generate_async(core: EmbedRouterCore,
                                    request: CreateEmbeddingsRequest | Mapping[str, Any],
                                    options: RequestOptions | Mapping[str, Any] | None = None
                                    ) -> Result[CreateEmbeddingsResponse]:
    try:
        opts = RequestOptions.coerce(options)
        req = generate_request(core, embeddings_body(_fields(request)), opts)
        value = interpret(await core.send_async(req, core.retries(opts)), parse_embeddings)
    except EmbedRouterError as exc:
        return Result(ok=False, error=exc)
    except httpx.HTTPError as exc:
        return Result(ok=False, error=APIConnectionError(f"HTTP error: {exc}"))
    except TypeError as exc:
        return Result(ok=False, error=RequestValidationError(str(exc)))
    return Result(ok=True, value=value)
