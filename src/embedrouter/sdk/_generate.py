"""`client.embeddings`: generate and list_models, each with its async twin.

Both twins of each method go through the same I/O-free preparation (``embeddings_body``,
``generate_request``, ``models_request``) and the same ``interpret``; only the send differs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from enum import StrEnum
from typing import Any

from embedrouter.sdk._backoff import RetryConfig
from embedrouter.sdk._catalog import ModelsListResponse, parse_models
from embedrouter.sdk._core import EmbedRouterCore, RequestOptions
from embedrouter.sdk._exceptions import RequestValidationError
from embedrouter.sdk._request import ACCEPT_EMBEDDINGS, PreparedRequest, interpret, prepare
from embedrouter.sdk._responses import CreateEmbeddingsResponse, parse_embeddings
from embedrouter.sdk._unset import UNSET


class GenerateAcceptEnum(StrEnum):
    """Values for ``generate(accept_header_override=...)``, as officially."""

    APPLICATION_JSON = "application/json"
    TEXT_EVENT_STREAM = "text/event-stream"


# Optional body fields and the JSON types each accepts (objects may also be typed models).
_OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {
    "encoding_format": (str,), "dimensions": (int,), "input_type": (str,), "user": (str,),
    "provider": (Mapping,), "session_id": (str,), "trace": (Mapping,),
}
ATTRIBUTION = {"http_referer": "HTTP-Referer", "x_open_router_title": "X-OpenRouter-Title",
               "x_open_router_categories": "X-OpenRouter-Categories"}


def _plain(value: Any) -> Any:
    """Typed request pieces (dataclasses, pydantic models such as the official SDK's
    ``ProviderPreferences``, objects with ``to_dict``) to plain JSON values."""
    if is_dataclass(value) and not isinstance(value, type):
        return {k: v for k, v in asdict(value).items() if v is not None}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", by_alias=True, exclude_none=True)
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value


def embeddings_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and assemble a request body; unset (or None) optional fields are omitted,
    except ``provider=None`` passed explicitly, which is sent as null as the official SDK does.
    Raises RequestValidationError before anything is sent."""
    unknown = set(fields) - {"input", "model", *_OPTIONAL_FIELDS}
    if unknown:
        raise RequestValidationError(f"unknown request fields: {sorted(unknown)}")
    inp = fields.get("input")
    if not isinstance(inp, str | list | tuple):
        raise RequestValidationError(
            "input: required, a string or a list (of strings, token ids or content objects)")
    if not isinstance(fields.get("model"), str) or not fields["model"]:
        raise RequestValidationError("model: required, a non-empty string")
    body: dict[str, Any] = {"input": [_plain(x) for x in inp] if isinstance(inp, list | tuple)
                            else inp, "model": fields["model"]}
    for name, kinds in _OPTIONAL_FIELDS.items():
        value = fields.get(name, UNSET)
        if value is UNSET or (value is None and name != "provider"):
            continue
        value = _plain(value)
        if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
            raise RequestValidationError(f"{name}: unexpected type {type(value).__name__}")
        body[name] = dict(value) if isinstance(value, Mapping) else value
    return body


def generate_request(core: EmbedRouterCore, body: dict[str, Any], options: RequestOptions,
                     attribution: Mapping[str, str | None] | None = None,
                     accept: str | None = None) -> PreparedRequest:
    accept = str(getattr(accept, "value", accept)) if accept else ACCEPT_EMBEDDINGS
    return prepare("POST", core.base_url(options), "/embeddings", json_body=body,
                   headers=core.headers(accept=accept, extra=options.http_headers,
                                        attribution=attribution),
                   timeout=core.timeout(options))


def models_request(core: EmbedRouterCore, offset: int | None, limit: int | None,
                   options: RequestOptions,
                   attribution: Mapping[str, str | None] | None = None) -> PreparedRequest:
    params = {k: v for k, v in (("offset", offset), ("limit", limit)) if v is not None}
    return prepare("GET", core.base_url(options), "/embeddings/models", params=params,
                   headers=core.headers(extra=options.http_headers, attribution=attribution),
                   timeout=core.timeout(options))


def _next_offset(result: ModelsListResponse, offset: int, limit: int) -> int | None:
    """The official rule: an empty or short page is the last one."""
    n = len(result.data)
    return None if n == 0 or n < limit else offset + n


@dataclass
class ListEmbeddingsModelsResponse:
    """One page (``.result``); ``next()`` fetches the following one (None after the last).
    Iterating yields this page and every later one."""

    result: ModelsListResponse
    _fetch: Callable[[int], ListEmbeddingsModelsResponse]
    offset: int
    limit: int

    def next(self) -> ListEmbeddingsModelsResponse | None:
        at = _next_offset(self.result, self.offset, self.limit)
        return None if at is None else self._fetch(at)

    def __iter__(self) -> Iterator[ListEmbeddingsModelsResponse]:
        page: ListEmbeddingsModelsResponse | None = self
        while page is not None:
            yield page
            page = page.next()


@dataclass
class AsyncListEmbeddingsModelsResponse:
    """The async page: ``await page.next()``; ``async for`` walks this and later pages."""

    result: ModelsListResponse
    _fetch: Callable[[int], Awaitable[AsyncListEmbeddingsModelsResponse]]
    offset: int
    limit: int

    async def next(self) -> AsyncListEmbeddingsModelsResponse | None:
        at = _next_offset(self.result, self.offset, self.limit)
        return None if at is None else await self._fetch(at)

    async def __aiter__(self) -> AsyncIterator[AsyncListEmbeddingsModelsResponse]:
        page: AsyncListEmbeddingsModelsResponse | None = self
        while page is not None:
            yield page
            page = await page.next()


def _options(args: Mapping[str, Any]) -> RequestOptions:
    return RequestOptions(retries=args["retries"], server_url=args["server_url"],
                          timeout_ms=args["timeout_ms"], http_headers=args["http_headers"])


def _attribution(args: Mapping[str, Any]) -> dict[str, str | None]:
    return {header: args[arg] for arg, header in ATTRIBUTION.items()}


class Embeddings:
    """The ``embeddings`` sub-client; arguments mirror ``openrouter``'s ``Embeddings``."""

    def __init__(self, core: EmbedRouterCore) -> None:
        self._core = core

    def _prepare_generate(self, args: dict[str, Any]) -> tuple[PreparedRequest, RetryConfig]:
        """The one path both twins take: validate, build headers and body, pick the policy."""
        body = embeddings_body({k: args[k] for k in ("input", "model", *_OPTIONAL_FIELDS)})
        options = _options(args)
        req = generate_request(self._core, body, options, _attribution(args),
                               accept=args["accept_header_override"])
        return req, self._core.retries(options)

    def generate(self, *, input: Any, model: str, http_referer: str | None = None,
                 x_open_router_title: str | None = None,
                 x_open_router_categories: str | None = None,
                 dimensions: int | None = None, encoding_format: str | None = None,
                 input_type: str | None = None, provider: Any = UNSET,
                 session_id: str | None = None, trace: Any = None, user: str | None = None,
                 retries: RetryConfig | None = UNSET, server_url: str | None = None,
                 accept_header_override: str | None = None, timeout_ms: int | None = None,
                 http_headers: Mapping[str, str] | None = None) -> CreateEmbeddingsResponse:
        """POST /embeddings; raises the typed error of any failure.

        ``retries=None`` switches retries off for this call; leaving it out uses the client's.
        """
        req, retry = self._prepare_generate(locals())
        return interpret(self._core.send(req, retry), parse_embeddings)

    async def generate_async(self, *, input: Any, model: str, http_referer: str | None = None,
                             x_open_router_title: str | None = None,
                             x_open_router_categories: str | None = None,
                             dimensions: int | None = None, encoding_format: str | None = None,
                             input_type: str | None = None, provider: Any = UNSET,
                             session_id: str | None = None, trace: Any = None,
                             user: str | None = None, retries: RetryConfig | None = UNSET,
                             server_url: str | None = None,
                             accept_header_override: str | None = None,
                             timeout_ms: int | None = None,
                             http_headers: Mapping[str, str] | None = None
                             ) -> CreateEmbeddingsResponse:
        """The async twin of ``generate``."""
        req, retry = self._prepare_generate(locals())
        return interpret(await self._core.send_async(req, retry), parse_embeddings)

    def list_models(self, *, http_referer: str | None = None,
                    x_open_router_title: str | None = None,
                    x_open_router_categories: str | None = None, offset: int | None = 0,
                    limit: int | None = 500, retries: RetryConfig | None = UNSET,
                    server_url: str | None = None, timeout_ms: int | None = None,
                    http_headers: Mapping[str, str] | None = None
                    ) -> ListEmbeddingsModelsResponse:
        """GET /embeddings/models; iterate the result, or call ``.next()``, for later pages."""
        options, attribution = _options(locals()), _attribution(locals())

        def fetch(at: int | None) -> ListEmbeddingsModelsResponse:
            req = models_request(self._core, at, limit, options, attribution)
            result = interpret(self._core.send(req, self._core.retries(options)), parse_models)
            return ListEmbeddingsModelsResponse(result, fetch, at or 0, limit or 500)

        return fetch(offset)

    async def list_models_async(self, *, http_referer: str | None = None,
                                x_open_router_title: str | None = None,
                                x_open_router_categories: str | None = None,
                                offset: int | None = 0, limit: int | None = 500,
                                retries: RetryConfig | None = UNSET,
                                server_url: str | None = None, timeout_ms: int | None = None,
                                http_headers: Mapping[str, str] | None = None
                                ) -> AsyncListEmbeddingsModelsResponse:
        """The async twin of ``list_models``."""
        options, attribution = _options(locals()), _attribution(locals())

        async def fetch(at: int | None) -> AsyncListEmbeddingsModelsResponse:
            req = models_request(self._core, at, limit, options, attribution)
            resp = await self._core.send_async(req, self._core.retries(options))
            return AsyncListEmbeddingsModelsResponse(interpret(resp, parse_models), fetch,
                                                     at or 0, limit or 500)

        return await fetch(offset)
