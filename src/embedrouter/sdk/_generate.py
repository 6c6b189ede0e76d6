"""`client.embeddings`: generate and list_models, each with its async twin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embedrouter.sdk._backoff import RetryConfig
from embedrouter.sdk._core import EmbedRouterCore, RequestOptions
from embedrouter.sdk._exceptions import RequestValidationError
from embedrouter.sdk._request import ACCEPT_EMBEDDINGS, PreparedRequest, interpret, prepare
from embedrouter.sdk._responses import (
    CreateEmbeddingsResponse,
    ModelsListResponse,
    parse_embeddings,
    parse_models,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

_UNSET: Any = object()
_OPTIONAL_FIELDS = ("encoding_format", "dimensions", "input_type", "user", "provider",
                    "session_id", "trace")


def _plain(value: Any) -> Any:
    """Typed request pieces (dataclasses, objects with ``to_dict``/``model_dump``) to JSON."""
    for attr in ("model_dump", "to_dict"):
        fn = getattr(value, attr, None)
        if callable(fn):
            return fn()
    return value


def embeddings_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and assemble a request body; unset optional fields are omitted."""
    if "input" not in fields or fields["input"] is None:
        raise RequestValidationError("input: required")
    if not isinstance(fields.get("model"), str) or not fields["model"]:
        raise RequestValidationError("model: required, a non-empty string")
    inp = fields["input"]
    if not isinstance(inp, str | list | tuple):
        raise RequestValidationError(
            "input: expected a string, a list of strings, token ids or content objects")
    body: dict[str, Any] = {"input": [_plain(x) for x in inp] if isinstance(inp, list | tuple)
                            else inp, "model": fields["model"]}
    for name in _OPTIONAL_FIELDS:
        value = fields.get(name, _UNSET)
        # `provider=None` passed explicitly is sent as null, as the official SDK does.
        if value is _UNSET or (value is None and name != "provider"):
            continue
        body[name] = _plain(value)
    unknown = set(fields) - {"input", "model", *_OPTIONAL_FIELDS}
    if unknown:
        raise RequestValidationError(f"unknown request fields: {sorted(unknown)}")
    return body


def generate_request(core: EmbedRouterCore, body: dict[str, Any], options: RequestOptions,
                     attribution: Mapping[str, str | None] | None = None,
                     accept: str | None = None) -> PreparedRequest:
    return prepare("POST", core.base_url(options), "/embeddings", json_body=body,
                   headers=core.headers(accept=str(getattr(accept, "value", accept))
                                        if accept else ACCEPT_EMBEDDINGS,
                                        extra=options.http_headers,
                                        attribution=attribution),
                   timeout=core.timeout(options))


def models_request(core: EmbedRouterCore, offset: int | None, limit: int | None,
                   options: RequestOptions,
                   attribution: Mapping[str, str | None] | None = None) -> PreparedRequest:
    params = {k: v for k, v in (("offset", offset), ("limit", limit)) if v is not None}
    return prepare("GET", core.base_url(options), "/embeddings/models", params=params,
                   headers=core.headers(extra=options.http_headers, attribution=attribution),
                   timeout=core.timeout(options))


@dataclass
class ListEmbeddingsModelsResponse:
    """One page; ``next()`` fetches the following one (None after the last). Iterating yields
    this page and every later one."""

    result: ModelsListResponse
    _fetch: Callable[[int], ListEmbeddingsModelsResponse | None]
    offset: int
    limit: int

    def next(self) -> ListEmbeddingsModelsResponse | None:
        # Same rule as the official SDK: a short page is the last page.
        if len(self.result.data) < self.limit:
            return None
        return self._fetch(self.offset + len(self.result.data))

    def __iter__(self) -> Iterator[ListEmbeddingsModelsResponse]:
        page: ListEmbeddingsModelsResponse | None = self
        while page is not None:
            yield page
            page = page.next()


@dataclass
class AsyncListEmbeddingsModelsResponse:
    result: ModelsListResponse
    _fetch: Callable[[int], Awaitable[AsyncListEmbeddingsModelsResponse | None]]
    offset: int
    limit: int

    async def next(self) -> AsyncListEmbeddingsModelsResponse | None:
        if len(self.result.data) < self.limit:
            return None
        return await self._fetch(self.offset + len(self.result.data))

    async def __aiter__(self) -> AsyncIterator[AsyncListEmbeddingsModelsResponse]:
        page: AsyncListEmbeddingsModelsResponse | None = self
        while page is not None:
            yield page
            page = await page.next()


class Embeddings:
    """The ``embeddings`` sub-client; arguments mirror ``openrouter``'s ``Embeddings``."""

    def __init__(self, core: EmbedRouterCore) -> None:
        self._core = core

    @staticmethod
    def _options(retries: Any, server_url: str | None, timeout_ms: int | None,
                 http_headers: Mapping[str, str] | None) -> RequestOptions:
        return RequestOptions(retries=retries if isinstance(retries, RetryConfig) else None,
                              server_url=server_url, timeout_ms=timeout_ms,
                              http_headers=http_headers)

    def _prepare_generate(self, args: dict[str, Any]) -> tuple[PreparedRequest, RetryConfig]:
        """The one path both twins take: validate, build headers and body, pick the policy."""
        body = embeddings_body({k: args[k] for k in ("input", "model", *_OPTIONAL_FIELDS)})
        options = self._options(args["retries"], args["server_url"], args["timeout_ms"],
                                args["http_headers"])
        attribution = {"HTTP-Referer": args["http_referer"],
                       "X-OpenRouter-Title": args["x_open_router_title"],
                       "X-OpenRouter-Categories": args["x_open_router_categories"]}
        req = generate_request(self._core, body, options, attribution,
                               accept=args["accept_header_override"])
        return req, self._core.retries(options)

    def generate(self, *, input: Any, model: str, http_referer: str | None = None,
                 x_open_router_title: str | None = None,
                 x_open_router_categories: str | None = None,
                 encoding_format: str | None = None, dimensions: int | None = None,
                 input_type: str | None = None, user: str | None = None,
                 provider: Any = _UNSET, session_id: str | None = None, trace: Any = None,
                 retries: RetryConfig | None = None, server_url: str | None = None,
                 accept_header_override: str | None = None, timeout_ms: int | None = None,
                 http_headers: Mapping[str, str] | None = None) -> CreateEmbeddingsResponse:
        """POST /embeddings; raises the typed error of any failure."""
        req, retry = self._prepare_generate(locals())
        return interpret(self._core.send(req, retry), parse_embeddings)

    async def generate_async(self, *, input: Any, model: str, http_referer: str | None = None,
                             x_open_router_title: str | None = None,
                             x_open_router_categories: str | None = None,
                             encoding_format: str | None = None, dimensions: int | None = None,
                             input_type: str | None = None, user: str | None = None,
                             provider: Any = _UNSET, session_id: str | None = None,
                             trace: Any = None, retries: RetryConfig | None = None,
                             server_url: str | None = None,
                             accept_header_override: str | None = None,
                             timeout_ms: int | None = None,
                             http_headers: Mapping[str, str] | None = None
                             ) -> CreateEmbeddingsResponse:
        req, retry = self._prepare_generate(locals())
        return interpret(await self._core.send_async(req, retry), parse_embeddings)

    def list_models(self, *, offset: int | None = 0, limit: int | None = 500,
                    retries: RetryConfig | None = None, server_url: str | None = None,
                    timeout_ms: int | None = None,
                    http_headers: Mapping[str, str] | None = None
                    ) -> ListEmbeddingsModelsResponse:
        """GET /embeddings/models; iterate the result, or call ``.next()``, for later pages."""
        options = self._options(retries, server_url, timeout_ms, http_headers)

        def fetch(at: int | None) -> ListEmbeddingsModelsResponse:
            resp = self._core.send(models_request(self._core, at, limit, options),
                                   self._core.retries(options))
            result = interpret(resp, parse_models)
            return ListEmbeddingsModelsResponse(result, fetch, at or 0, limit or 500)

        return fetch(offset)

    async def list_models_async(self, *, offset: int | None = 0, limit: int | None = 500,
                                retries: RetryConfig | None = None,
                                server_url: str | None = None, timeout_ms: int | None = None,
                                http_headers: Mapping[str, str] | None = None
                                ) -> AsyncListEmbeddingsModelsResponse:
        options = self._options(retries, server_url, timeout_ms, http_headers)

        async def fetch(at: int | None) -> AsyncListEmbeddingsModelsResponse:
            resp = await self._core.send_async(models_request(self._core, at, limit, options),
                                               self._core.retries(options))
            result = interpret(resp, parse_models)
            return AsyncListEmbeddingsModelsResponse(result, fetch, at or 0, limit or 500)

        return await fetch(offset)
