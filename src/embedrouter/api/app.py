"""The ASGI application: routing, body limits, auth and the error envelope.

A hand-written ASGI callable rather than a framework: owning the request path keeps the
per-request overhead to a few dictionary lookups. With the account routes the table has grown to
about twenty; Starlette's router was measured against this dispatch at concurrency 32
(bench/route_bench.py) and cost more than the 3% that would have justified it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote

import orjson

from embedrouter import errors as e
from embedrouter.api import account_routes, compress, static
from embedrouter.api.body import BodyDecoder
from embedrouter.api.encode import embeddings_body, generation_id
from embedrouter.api.errors import INTERNAL_MESSAGE, envelope, render
from embedrouter.api.metrics import RequestMetrics
from embedrouter.api.openapi import openapi_document
from embedrouter.api.params import int_param
from embedrouter.api.parse import Limits
from embedrouter.api.tracing import Tracing
from embedrouter.api.views import API_PREFIX, endpoints_view, page
from embedrouter.arrivals import ARRIVAL, arrived
from embedrouter.cache.policy import resolve_mode
from embedrouter.catalog import Catalog
from embedrouter.router import Router
from embedrouter.timing import SPANS, Interval

log = logging.getLogger("embedrouter.api")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Authenticator(Protocol):
    async def authenticate(self, authorization: str | None) -> Any: ...


@dataclass(slots=True)
class Services:
    """Everything a request needs, built once at start by ``embedrouter.server``."""

    router: Router
    catalog: Catalog
    keys: Authenticator
    max_body_bytes: int
    limits: Limits
    close: Callable[[], Awaitable[None]]
    accounts: Any = None  # accounts.admission.Accounts; None: accounting off
    store: Any = None  # the key/ledger store, for the account routes


ServicesFactory = Callable[[], Awaitable[Services]]
Handler = Callable[["Request"], Awaitable[tuple[int, bytes, dict[str, str]]]]

_EMBEDDINGS = f"{API_PREFIX}/embeddings"
_JSON = (b"content-type", b"application/json")
_TEXT = (b"content-type", b"text/plain; version=0.0.4")
# Any response may be compressed, so caches must key on Accept-Encoding.
_VARY = (b"vary", b"accept-encoding")


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    receive: Receive
    # base64 vectors are near-random bytes: gzip keeps 75% of them for the CPU it costs.
    compressible: bool = True
    # For /metrics labels and traces, filled in by the embeddings handler.
    model: str = ""  # a catalog slug, never the raw field: label values must stay bounded
    provider: str = ""
    response_model: str = ""
    tokens: int = 0
    encoding_format: str = ""
    intervals: list[Interval] | None = None  # only while tracing


def _query(raw: bytes) -> dict[str, str]:
    if not raw:
        return {}
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    query = dict(pairs)
    if len(query) < len(pairs):
        # Every parameter here is a single value: with repeats, which one counts would be
        # this parser's choice, not the caller's (a proxy in front may read the first).
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise e.InvalidRequest(f"{name}: given more than once; send it once",
                                       metadata={"field": name})
            seen.add(name)
    return query


def _refuse_repeated_auth(raw_headers: list[tuple[bytes, bytes]]) -> None:
    # With two Authorization headers the last would win here while a proxy in front may check
    # the first: refuse rather than authenticate a key nobody vetted.
    if sum(1 for k, _ in raw_headers if k.lower() == b"authorization") > 1:
        raise e.InvalidRequest("More than one Authorization header; send exactly one",
                               metadata={"field": "authorization"})


class ClientDisconnected(Exception):
    """The caller went away; nothing is sent and the queued work is dropped."""


async def _unless_disconnected(work: Awaitable[Any], receive: Receive) -> Any:
    """Await ``work`` but cancel it if the client disconnects first.

    Cancelling the work cancels its wait on the batcher, which then skips the request's items
    before compute (a client that gave up costs no inference), and its upstream calls. The work
    runs in this task and one watcher task cancels it: cheaper per request than a task for the
    work plus asyncio.wait over both.
    """
    current = asyncio.current_task()
    assert current is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await receive()).get("type") != "http.disconnect":
            pass
        gone = True
        current.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if gone:
            current.uncancel()
            raise ClientDisconnected from None
        raise
    finally:
        watcher.cancel()


class App:
    """ASGI entry point; ``services`` are built in the lifespan startup."""

    def __init__(self, factory: ServicesFactory, tracing: Tracing | None = None) -> None:
        self._factory = factory
        self.tracing = tracing
        self.services: Services | None = None
        self._routes: dict[str, dict[str, Callable[[Request], Awaitable[tuple[int, bytes,
                                                                              dict[str, str]]]]]]
        self._routes = {
            "/health": {"GET": self._health},
            f"{API_PREFIX}/health": {"GET": self._health},
            "/openapi.json": {"GET": self._openapi},
            f"{API_PREFIX}/openapi.json": {"GET": self._openapi},
            f"{API_PREFIX}/embeddings": {"POST": self._embeddings},
            f"{API_PREFIX}/embeddings/models": {"GET": self._embedding_models},
            f"{API_PREFIX}/models": {"GET": self._models},
            "/metrics": {"GET": self._metrics},
            **self._account_routes(),
        }
        # The playground page (GET /) and its hashed assets, read from the package once.
        for path, asset in static.load_assets().items():
            self._routes[path] = {"GET": asset.respond}
        self.metrics = RequestMetrics()
        self.bodies = BodyDecoder()
        self._openapi_bytes = orjson.dumps(openapi_document())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.services = await self._factory()
                except Exception as exc:
                    log.error("startup failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                router = self.services.router
                self.metrics.watch_engine(router.stats,
                                          getattr(router, "histograms", dict))
                cache = getattr(router, "cache", None)
                if cache is not None:
                    self.metrics.watch_cache(cache.stats)
                accounts = getattr(self.services, "accounts", None)
                if accounts is not None:
                    self.metrics.watch_accounts(accounts.stats, accounts.histograms)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.bodies.close()
                if self.services is not None:
                    await self.services.close()
                if self.tracing is not None:
                    await asyncio.to_thread(self.tracing.shutdown)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        started_ns = time.time_ns() if self.tracing is not None else 0
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        request = Request(scope["method"], path, {}, headers, receive)
        if self.tracing is not None and path == _EMBEDDINGS:
            request.intervals = []
        try:
            request.query = _query(scope.get("query_string", b""))
            if len(headers) < len(scope["headers"]):
                _refuse_repeated_auth(scope["headers"])
            status, body, extra = await self._dispatch(request)
        except ClientDisconnected:
            # Nothing can be sent, but the request still counts: 499 (nginx's "client closed
            # request") makes abandoned work visible in /metrics.
            route = path if path in self._routes else "other"
            self.metrics.observe(route, 499, time.perf_counter() - started, request.model,
                                 request.provider)
            self._trace(request, route, 499, started_ns)
            return
        except e.EmbedRouterError as exc:
            status, body, extra = render(exc)
        except Exception:
            # The traceback goes to the log, never to the caller.
            log.exception("unhandled error on %s %s", request.method, path)
            status, body, extra = 500, envelope(500, INTERNAL_MESSAGE), {}
        elapsed = time.perf_counter() - started
        route = path if path in self._routes else "other"
        self.metrics.observe(route, status, elapsed, request.model, request.provider,
                             request.tokens)
        # A handler may name its own type (the playground's HTML, JS and CSS).
        own_type = extra.pop("content-type", None)
        content_type = ((b"content-type", own_type.encode("latin-1")) if own_type
                        else _TEXT if route == "/metrics" and status == 200 else _JSON)
        coding = None
        if request.compressible:
            body, coding = await compress.encode(body, headers.get("accept-encoding"))
        out = [content_type, (b"content-length", str(len(body)).encode()), _VARY]
        if coding is not None:
            out.append((b"content-encoding", coding.encode()))
        out += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        out.append((b"x-compute-time", f"{elapsed * 1000:.2f}".encode()))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})
        self._trace(request, route, status, started_ns)

    def _trace(self, request: Request, route: str, status: int, started_ns: int) -> None:
        if self.tracing is None or request.intervals is None:
            return
        try:
            self.tracing.record(
                method=request.method, route=route, status=status, start_ns=started_ns,
                end_ns=time.time_ns(), headers=request.headers, model=request.model,
                response_model=request.response_model, provider=request.provider,
                tokens=request.tokens, encoding_format=request.encoding_format,
                intervals=request.intervals)
        except Exception:  # a tracing fault must never cost the caller its answer
            log.exception("recording the trace failed")

    async def _dispatch(self, request: Request) -> tuple[int, bytes, dict[str, str]]:
        methods = self._routes.get(request.path)
        if methods is None:
            methods = self._key_routes(request.path)
        if methods is None:
            endpoint = self._endpoints_slug(request.path)
            if endpoint is None:
                raise e.NotFound(f"No route for {request.method} {request.path}")
            methods = {"GET": lambda r: self._endpoints(endpoint)}
        handler = methods.get(request.method)
        if handler is None:
            if request.method == "HEAD" and "GET" in methods:
                status, _, extra = await methods["GET"](request)
                return status, b"", extra
            raise e.MethodNotAllowed(request.method, sorted(methods))
        return await handler(request)

    # --- account routes (api/account_routes.py) ---
    def _account_routes(self) -> dict[str, dict[str, Handler]]:
        r = account_routes
        return {
            f"{API_PREFIX}/key": {"GET": partial(r.current_key, self)},
            f"{API_PREFIX}/credits": {"GET": partial(r.credits, self)},
            f"{API_PREFIX}/generation": {"GET": partial(r.generation, self)},
            f"{API_PREFIX}/keys": {"GET": partial(r.list_keys, self),
                                   "POST": partial(r.create_key, self)},
        }

    def _key_routes(self, path: str) -> dict[str, Handler] | None:
        """``/api/v1/keys/{hash}``: GET, PATCH, DELETE."""
        prefix = f"{API_PREFIX}/keys/"
        if not path.startswith(prefix) or "/" in path[len(prefix):]:
            return None
        key_hash, r = path[len(prefix):], account_routes
        return {"GET": lambda q: r.get_key(self, q, key_hash),
                "PATCH": lambda q: r.update_key(self, q, key_hash),
                "DELETE": lambda q: r.delete_key(self, q, key_hash)}
    # --- end of account routes ---

    @staticmethod
    def _endpoints_slug(path: str) -> str | None:
        prefix = f"{API_PREFIX}/models/"
        if path.startswith(prefix) and path.endswith("/endpoints"):
            slug = path[len(prefix):-len("/endpoints")]
            if slug.count("/") == 1 and all(slug.split("/")):
                return slug
        return None

    @property
    def _svc(self) -> Services:
        if self.services is None:
            raise e.ServiceUnavailable("The server is still starting")
        return self.services

    async def _read_body(self, request: Request) -> bytes:
        limit = self._svc.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise e.PayloadTooLarge(f"Request body is {declared} bytes; the limit is {limit}")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise e.PayloadTooLarge(f"Request body exceeds the {limit}-byte limit")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _health(self, request: Request) -> tuple[int, bytes, dict[str, str]]:
        ready = self.services is not None
        body = orjson.dumps({"status": "ok" if ready else "starting"})
        return (200 if ready else 503), body, {}

    async def _metrics(self, request: Request) -> tuple[int, bytes, dict[str, str]]:
        self._svc  # noqa: B018 - 503 while starting, as before
        return 200, self.metrics.render(), {}

    async def _openapi(self, request: Request) -> tuple[int, bytes, dict[str, str]]:
        return 200, self._openapi_bytes, {}

    async def _embeddings(self, request: Request) -> tuple[int, bytes, dict[str, str]]:
        # Counted as on its way to a provider from here (its key read, admission) until the
        # lower layers mark it arrived or it ends: a local batch may wait a moment for it
        # (embedrouter/arrivals.py).
        arrivals = getattr(self._svc.router, "arrivals", None)
        if arrivals is None:
            return await self._embed(request)
        ticket = arrivals.enter()
        token = ARRIVAL.set(ticket)
        try:
            return await self._embed(request)
        finally:
            ticket.leave()
            ARRIVAL.reset(token)

    async def _embed(self, request: Request) -> tuple[int, bytes, dict[str, str]]:
        svc = self._svc
        key = await svc.keys.authenticate(request.headers.get("authorization"))
        if not getattr(key, "can_embed", True):
            raise e.PermissionDenied(
                "Management keys are for admin endpoints only; create an inference key with "
                "`embedrouter keys create --label NAME`"
            )
        parse_ns = time.time_ns() if request.intervals is not None else 0
        raw = await self._read_body(request)
        parsed = await self.bodies.decode(raw, svc.limits)
        spec = svc.catalog.get(parsed.model.split(":", 1)[0])
        request.model = spec.slug if spec is not None else "unknown"
        if spec is None or not spec.is_local:
            arrived()  # it will join no local batch: none should wait for its admission
        request.encoding_format = parsed.encoding_format
        if request.intervals is not None:
            request.intervals.append(("parse", parse_ns, time.time_ns()))
        # The key's cache policy (set through the management API), narrowed by Cache-Control.
        mode = None if getattr(svc.router, "cache", None) is None else resolve_mode(
            key.cache_policy, request.headers.get("cache-control"))
        gen_id = generation_id()

        def embed(reserve: Any = None, computed: Any = None) -> Awaitable[Any]:
            return _unless_disconnected(svc.router.embed(parsed, cache=mode, reserve=reserve,
                                                         computed=computed), request.receive)

        # Traced: the engine and router report their intervals into this request's list (the
        # pipeline runs in this task, and the tasks it creates copy the context).
        token = SPANS.set(request.intervals) if request.intervals is not None else None
        try:
            # Admission wraps the router: reserve before any provider call, charge after.
            result = await (embed() if svc.accounts is None
                            else svc.accounts.metered(key, gen_id, embed))
        finally:
            if token is not None:
                SPANS.reset(token)
        request.provider, request.response_model = result.provider, result.model
        request.tokens = result.usage.prompt_tokens
        request.compressible = parsed.encoding_format != "base64"
        headers = {"x-generation-id": gen_id}
        if result.cache is not None:
            headers["x-embedrouter-cache"] = result.cache
        if result.truncated:
            headers["x-embedrouter-truncated"] = str(result.truncated)
        if result.usage.estimated:
            # An upstream left usage out: the count (and so the cost) is this router's estimate.
            headers["x-embedrouter-usage-estimated"] = "true"
        return 200, embeddings_body(result, parsed.encoding_format, gen_id), headers

    def _list(self, request: Request, models: list[Any], path: str,
              keep: str = "") -> tuple[int, bytes, dict[str, str]]:
        offset = int_param(request.query, "offset", default=0, lo=0, hi=None,
                           nullable=True) or 0
        limit = int_param(request.query, "limit", default=None, lo=1, hi=1000)
        return 200, orjson.dumps(page(models, offset, limit, path, keep)), {}

    async def _embedding_models(self, request: Request) -> tuple[int, bytes, dict[str, str]]:
        return self._list(request, self._svc.catalog.embedding_models(), "/embeddings/models")

    async def _models(self, request: Request) -> tuple[int, bytes, dict[str, str]]:
        # OpenRouter's plain /models lists text-output models only; here that would hide every
        # model this server serves from `client.models.list()` and UI pickers, so without the
        # filter it lists them all.
        wanted = request.query.get("output_modalities", "all")
        kinds = {k.strip() for k in wanted.split(",") if k.strip()}
        unknown = kinds - {"text", "image", "audio", "embeddings", "all"}
        if unknown or not kinds:
            raise e.InvalidRequest(
                "output_modalities: expected a comma list of text, image, audio, embeddings "
                f"or all; got {wanted!r}", metadata={"field": "output_modalities"})
        models = [m for m in self._svc.catalog.all()
                  if "all" in kinds or kinds & set(m.output_modalities)]
        keep = f"output_modalities={quote(wanted)}&" if "output_modalities" in request.query else ""
        return self._list(request, models, "/models", keep)

    async def _endpoints(self, slug: str) -> tuple[int, bytes, dict[str, str]]:
        spec = self._svc.catalog.get(slug)
        if spec is None:
            raise e.NotFound(f"Model {slug!r} does not exist")
        return 200, orjson.dumps(endpoints_view(spec)), {}
