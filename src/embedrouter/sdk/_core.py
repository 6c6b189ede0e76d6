"""Configuration, the HTTP clients, and the retry loop (sync and async twins)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from embedrouter import __version__
from embedrouter.sdk._backoff import (
    DEFAULT_RETRY,
    NO_RETRY,
    RetryConfig,
    next_delay,
    status_matches,
    transport_retryable,
)
from embedrouter.sdk._exceptions import (
    APIConnectionError,
    APITimeoutError,
    RequestValidationError,
)
from embedrouter.sdk._request import PreparedRequest
from embedrouter.sdk._unset import UNSET

DEFAULT_SERVER_URL = "http://127.0.0.1:8000/api/v1"
# The official SDK's one named server, accepted so that `server="production"` ports unchanged.
SERVERS = {"production": "https://openrouter.ai/api/v1"}
# The official SDK inherits httpx's 5 s default, which fails large batches and cold models
# (a 2,048-input request on a CPU, the first request that loads a model). Two minutes covers
# those while still failing a hung server; connecting gets 10 s so a dead host fails fast.
# Applied to the clients we create; a client you pass in keeps its own timeouts unless
# `timeout_ms` is given, as officially.
DEFAULT_TIMEOUT_MS = 120_000
CONNECT_TIMEOUT_S = 10.0
USER_AGENT = f"embedrouter-sdk/python {__version__}"


class Logger(Protocol):
    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """Per-call overrides, as in the official SDKs. ``retries=None`` switches retries off."""

    retries: RetryConfig | None = UNSET
    server_url: str | None = None
    timeout_ms: int | None = None
    http_headers: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if self.retries is not UNSET and not isinstance(self.retries, RetryConfig | None):
            raise RequestValidationError("retries: expected a RetryConfig or None")
        if self.timeout_ms is not None and (isinstance(self.timeout_ms, bool) or not isinstance(
                self.timeout_ms, int | float) or self.timeout_ms <= 0):
            raise RequestValidationError("timeout_ms: expected a positive number")
        if self.server_url is not None and not isinstance(self.server_url, str):
            raise RequestValidationError("server_url: expected a string")

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


def default_logger() -> Logger:
    """``logging.getLogger("embedrouter.sdk")``; ``EMBEDROUTER_DEBUG`` or ``OPENROUTER_DEBUG``
    turns DEBUG output on, as ``OPENROUTER_DEBUG`` does for the official SDK."""
    log = logging.getLogger("embedrouter.sdk")
    if os.environ.get("EMBEDROUTER_DEBUG") or os.environ.get("OPENROUTER_DEBUG"):
        logging.basicConfig(level=logging.DEBUG)
        log.setLevel(logging.DEBUG)
    return log


def _env(value: str | None, name: str) -> str | None:
    return value if value is not None else os.environ.get(name)


class EmbedRouterCore:
    """Holds configuration and HTTP clients; pass it to the standalone functions.

    The arguments are the official ``OpenRouter(...)``'s, in its order. Clients you pass in are
    used as they are and never closed here; clients created here are closed by ``close()`` /
    ``aclose()``, the context managers, or garbage collection.
    """

    def __init__(
        self,
        api_key: str | Callable[[], str | None] | None = None,
        http_referer: str | None = None,
        x_open_router_title: str | None = None,
        x_open_router_categories: str | None = None,
        server: str | None = None,
        url_params: Mapping[str, str] | None = None,
        server_url: str | None = None,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
        retry_config: RetryConfig | None = UNSET,
        timeout_ms: int | None = None,
        debug_logger: Logger | None = None,
    ) -> None:
        self._api_key = api_key
        if server is not None and server not in SERVERS:
            raise ValueError(f"server must be one of {sorted(SERVERS)}, got {server!r}")
        url = (server_url or (SERVERS[server] if server else None)
               or os.environ.get("EMBEDROUTER_BASE_URL") or DEFAULT_SERVER_URL)
        for name, value in (url_params or {}).items():
            url = url.replace("{" + name + "}", value)
        self.server_url = url.rstrip("/")
        self.http_referer = _env(http_referer, "OPENROUTER_HTTP_REFERER")
        self.x_open_router_title = _env(x_open_router_title, "OPENROUTER_X_OPEN_ROUTER_TITLE")
        self.x_open_router_categories = _env(x_open_router_categories,
                                             "OPENROUTER_X_OPEN_ROUTER_CATEGORIES")
        # Unset: the official default policy. None: no retries (the official meaning too).
        self.retry_config: RetryConfig = (DEFAULT_RETRY if retry_config is UNSET
                                          else retry_config or NO_RETRY)
        self.timeout_ms = timeout_ms
        self._client = client
        self._async_client = async_client
        self._owns_client = client is None
        self._owns_async_client = async_client is None
        self._lock = threading.Lock()
        self.logger: Logger = debug_logger or default_logger()

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
        """Request headers: per-call attribution replaces the client's where given (not None),
        and ``extra`` (``http_headers``) replaces anything of the same name, in any case."""
        h = {"user-agent": USER_AGENT, "accept": accept}
        key = self.api_key()
        if key:
            h["authorization"] = f"Bearer {key}"
        per_call = attribution or {}
        for name, value in (("HTTP-Referer", self.http_referer),
                            ("X-OpenRouter-Title", self.x_open_router_title),
                            ("X-OpenRouter-Categories", self.x_open_router_categories)):
            value = per_call.get(name) if per_call.get(name) is not None else value
            if value is not None:
                h[name] = value
        for name, value in (extra or {}).items():
            for existing in [k for k in h if k.lower() == name.lower()]:
                del h[existing]
            h[name] = value
        return h

    def base_url(self, options: RequestOptions) -> str:
        return (options.server_url or self.server_url).rstrip("/")

    def timeout(self, options: RequestOptions) -> float | None:
        ms = options.timeout_ms or self.timeout_ms
        return ms / 1000 if ms else None

    def retries(self, options: RequestOptions) -> RetryConfig:
        if options.retries is UNSET:
            return self.retry_config
        return options.retries or NO_RETRY

    # -- clients -----------------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            with self._lock:  # embed_many's threads may race to create it
                if self._client is None:
                    self._client = httpx.Client(follow_redirects=True, timeout=_DEFAULT_TIMEOUT)
                    weakref.finalize(self, self._client.close)
        return self._client

    @property
    def async_client(self) -> httpx.AsyncClient:
        if self._async_client is None:
            self._async_client = httpx.AsyncClient(follow_redirects=True,
                                                   timeout=_DEFAULT_TIMEOUT)
        return self._async_client

    def close(self) -> None:
        """Close the sync HTTP client if this object created it."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close both HTTP clients if this object created them."""
        self.close()
        if self._owns_async_client and self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- sending -----------------------------------------------------------------------------

    def _build(self, client: httpx.Client | httpx.AsyncClient, req: PreparedRequest
               ) -> httpx.Request:
        timeout: Any = httpx.USE_CLIENT_DEFAULT
        if req.timeout is not None:
            timeout = httpx.Timeout(req.timeout, connect=min(CONNECT_TIMEOUT_S, req.timeout))
        try:
            return client.build_request(req.method, req.url, headers=req.headers,
                                        params=req.params, content=req.content, timeout=timeout)
        except httpx.InvalidURL as exc:
            raise RequestValidationError(f"invalid server URL {req.url!r}: {exc}") from None

    def _log_request(self, req: PreparedRequest, attempt: int) -> None:
        # Never the headers: they carry the API key.
        self.logger.debug("embedrouter-sdk %s %s (attempt %d)", req.method, req.url, attempt + 1)

    def _log_response(self, resp: httpx.Response) -> None:
        self.logger.debug("embedrouter-sdk %s %s -> %d", resp.request.method, resp.request.url,
                          resp.status_code)

    def send(self, req: PreparedRequest, retry: RetryConfig) -> httpx.Response:
        """Send with retries; returns the final response, raises APIConnectionError."""
        started, attempt = time.monotonic(), 0
        while True:
            self._log_request(req, attempt)
            try:
                resp = self.client.send(self._build(self.client, req))
            except httpx.TransportError as exc:
                delay = transport_delay(retry, exc, attempt, time.monotonic() - started)
                if delay is None:
                    raise connection_error(exc) from exc
            else:
                self._log_response(resp)
                delay = status_delay(retry, resp, attempt, time.monotonic() - started)
                if delay is None:
                    return resp
                resp.close()
            time.sleep(delay)
            attempt += 1

    async def send_async(self, req: PreparedRequest, retry: RetryConfig) -> httpx.Response:
        """The async twin of ``send``."""
        started, attempt = time.monotonic(), 0
        while True:
            self._log_request(req, attempt)
            try:
                client = self.async_client
                resp = await client.send(self._build(client, req))
            except httpx.TransportError as exc:
                delay = transport_delay(retry, exc, attempt, time.monotonic() - started)
                if delay is None:
                    raise connection_error(exc) from exc
            else:
                self._log_response(resp)
                delay = status_delay(retry, resp, attempt, time.monotonic() - started)
                if delay is None:
                    return resp
                await resp.aclose()
            await asyncio.sleep(delay)
            attempt += 1


_DEFAULT_TIMEOUT = httpx.Timeout(DEFAULT_TIMEOUT_MS / 1000, connect=CONNECT_TIMEOUT_S)


def transport_delay(retry: RetryConfig, exc: httpx.TransportError, attempt: int,
                    elapsed: float) -> float | None:
    if not retry.retry_connection_errors or not transport_retryable(exc):
        return None
    return next_delay(retry, attempt, elapsed)


def status_delay(retry: RetryConfig, resp: httpx.Response, attempt: int, elapsed: float
                 ) -> float | None:
    if not status_matches(resp.status_code, retry.status_codes):
        return None
    return next_delay(retry, attempt, elapsed, headers=resp.headers)


def connection_error(exc: httpx.TransportError) -> APIConnectionError:
    err: APIConnectionError
    if isinstance(exc, httpx.TimeoutException):
        err = APITimeoutError(f"Request timed out: {exc}")
    else:
        err = APIConnectionError(f"Connection error: {exc}")
    with contextlib.suppress(RuntimeError):  # httpx raises if no request was attached
        err.request = exc.request
    return err
