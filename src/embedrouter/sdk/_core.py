"""Configuration, the HTTP clients, and the retry loop (sync and async twins)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from embedrouter import __version__
from embedrouter.sdk._backoff import DEFAULT_RETRY, RetryConfig, next_delay, status_matches
from embedrouter.sdk._exceptions import (
    APIConnectionError,
    APITimeoutError,
    RequestValidationError,
)
from embedrouter.sdk._request import PreparedRequest

DEFAULT_SERVER_URL = "http://127.0.0.1:8000/api/v1"
# The official SDK's one named server, accepted so that `server="production"` ports unchanged.
SERVERS = {"production": "https://openrouter.ai/api/v1"}
# The official SDK inherits httpx's 5 s default, which fails large batches and cold models;
# two minutes covers a 2,048-input request on a CPU while still failing a dead server.
DEFAULT_TIMEOUT_MS = 120_000
_CONNECT_TIMEOUT = 10.0
USER_AGENT = f"embedrouter-sdk/python {__version__}"


class Logger(Protocol):
    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """Per-call overrides, as in the official SDKs."""

    retries: RetryConfig | None = None
    server_url: str | None = None
    timeout_ms: int | None = None
    http_headers: Mapping[str, str] | None = None

    @classmethod
    def coerce(cls, value: RequestOptions | Mapping[str, Any] | None) -> RequestOptions:
        if value is None:
            return cls()
        if isinstance(value, RequestOptions):
            return value
        try:
            return cls(**dict(value))
        except TypeError as exc:
            raise RequestValidationError(f"options: {exc}") from None


def _null_logger() -> Logger:
    log = logging.getLogger("embedrouter.sdk")
    if os.environ.get("EMBEDROUTER_DEBUG") or os.environ.get("OPENROUTER_DEBUG"):
        log.setLevel(logging.DEBUG)
    return log


class EmbedRouterCore:
    """Holds configuration and HTTP clients; pass it to the standalone functions.

    Clients you pass in are used as they are and never closed here; clients created here are
    closed by ``close()`` / ``aclose()`` or the context managers.
    """

    def __init__(
        self,
        api_key: str | Callable[[], str] | None = None,
        server_url: str | None = None,
        *,
        http_referer: str | None = None,
        x_open_router_title: str | None = None,
        x_open_router_categories: str | None = None,
        retry_config: RetryConfig | None = None,
        timeout_ms: int | None = None,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        debug_logger: Logger | None = None,
        server: str | None = None,
        url_params: Mapping[str, str] | None = None,
    ) -> None:
        self._api_key = api_key
        if server is not None and server not in SERVERS:
            raise ValueError(f"server must be one of {sorted(SERVERS)}, got {server!r}")
        url = (server_url or (SERVERS[server] if server else None)
               or os.environ.get("EMBEDROUTER_BASE_URL") or DEFAULT_SERVER_URL)
        for name, value in (url_params or {}).items():
            url = url.replace("{" + name + "}", value)
        self.server_url = url.rstrip("/")
        self.http_referer = http_referer or os.environ.get("OPENROUTER_HTTP_REFERER")
        self.x_open_router_title = x_open_router_title
        self.x_open_router_categories = x_open_router_categories
        self.retry_config = retry_config or DEFAULT_RETRY
        self.timeout_ms = timeout_ms or DEFAULT_TIMEOUT_MS
        self._client = client
        self._async_client = async_client
        self._owns_client = client is None
        self._owns_async_client = async_client is None
        self.logger: Logger = debug_logger or _null_logger()

    # -- configuration -----------------------------------------------------------------------

    def api_key(self) -> str | None:
        """Resolved at request time, so a rotated key or a later env var is picked up."""
        key = self._api_key
        if callable(key):
            key = key()
        return key or os.environ.get("EMBEDROUTER_API_KEY") or os.environ.get(
            "OPENROUTER_API_KEY")

    def headers(self, *, accept: str = "application/json",
                extra: Mapping[str, str] | None = None,
                attribution: Mapping[str, str | None] | None = None) -> dict[str, str]:
        h = {"user-agent": USER_AGENT, "accept": accept}
        key = self.api_key()
        if key:
            h["authorization"] = f"Bearer {key}"
        attr = {"HTTP-Referer": self.http_referer, "X-OpenRouter-Title": self.x_open_router_title,
                "X-OpenRouter-Categories": self.x_open_router_categories}
        for name, value in {**attr, **(attribution or {})}.items():
            if value is not None:
                h[name] = value
        for name, value in (extra or {}).items():
            # Per-call headers replace same-named ones whatever their case.
            for existing in [k for k in h if k.lower() == name.lower()]:
                del h[existing]
            h[name] = value
        return h

    def base_url(self, options: RequestOptions) -> str:
        return (options.server_url or self.server_url).rstrip("/")

    def timeout(self, options: RequestOptions) -> float:
        return (options.timeout_ms or self.timeout_ms) / 1000

    def retries(self, options: RequestOptions) -> RetryConfig:
        return options.retries or self.retry_config

    # -- clients -----------------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(follow_redirects=True)
        return self._client

    @property
    def async_client(self) -> httpx.AsyncClient:
        if self._async_client is None:
            self._async_client = httpx.AsyncClient(follow_redirects=True)
        return self._async_client

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        self.close()
        if self._owns_async_client and self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None

    def __enter__(self) -> EmbedRouterCore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> EmbedRouterCore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- sending -----------------------------------------------------------------------------

    def _timeout(self, req: PreparedRequest) -> httpx.Timeout:
        return httpx.Timeout(req.timeout, connect=min(_CONNECT_TIMEOUT, req.timeout))

    def _log(self, req: PreparedRequest, attempt: int) -> None:
        self.logger.debug("embedrouter-sdk %s %s (attempt %d)", req.method, req.url, attempt + 1)

    def send(self, req: PreparedRequest, retry: RetryConfig) -> httpx.Response:
        """Send with retries; returns the final response, raises APIConnectionError."""
        started = time.monotonic()
        attempt = 0
        while True:
            self._log(req, attempt)
            try:
                resp = self.client.request(req.method, req.url, headers=req.headers,
                                           params=req.params, content=req.content,
                                           timeout=self._timeout(req))
            except httpx.TransportError as exc:
                delay = _transport_delay(retry, attempt, time.monotonic() - started)
                if delay is None:
                    raise _connection_error(exc) from exc
            else:
                delay = _status_delay(retry, resp, attempt, time.monotonic() - started)
                if delay is None:
                    return resp
                resp.close()
            time.sleep(delay)
            attempt += 1

    async def send_async(self, req: PreparedRequest, retry: RetryConfig) -> httpx.Response:
        started = time.monotonic()
        attempt = 0
        while True:
            self._log(req, attempt)
            try:
                resp = await self.async_client.request(
                    req.method, req.url, headers=req.headers, params=req.params,
                    content=req.content, timeout=self._timeout(req))
            except httpx.TransportError as exc:
                delay = _transport_delay(retry, attempt, time.monotonic() - started)
                if delay is None:
                    raise _connection_error(exc) from exc
            else:
                delay = _status_delay(retry, resp, attempt, time.monotonic() - started)
                if delay is None:
                    return resp
                await resp.aclose()
            await asyncio.sleep(delay)
            attempt += 1


def _transport_delay(retry: RetryConfig, attempt: int, elapsed: float) -> float | None:
    if not retry.retry_connection_errors:
        return None
    return next_delay(retry, attempt, elapsed)


def _status_delay(retry: RetryConfig, resp: httpx.Response, attempt: int, elapsed: float
                  ) -> float | None:
    if not status_matches(resp.status_code, retry.status_codes):
        return None
    return next_delay(retry, attempt, elapsed, headers=resp.headers)


def _connection_error(exc: httpx.TransportError) -> APIConnectionError:
    err: APIConnectionError
    if isinstance(exc, httpx.TimeoutException):
        err = APITimeoutError(f"Request timed out: {exc}")
    else:
        err = APIConnectionError(f"Connection error: {exc}")
    with contextlib.suppress(RuntimeError):  # httpx raises if no request was attached
        err.request = exc.request
    return err
