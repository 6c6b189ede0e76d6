"""Fake embedding upstreams on 127.0.0.1: one HTTP server in a background thread that speaks
every wire format in fake_formats.py / fake_native.py, each under its own path prefix
(``/{format}/...``), so adapters are tested over real HTTP with the real pooled client.

Requests are validated as the real upstream would (auth header, required fields, caps) and
recorded. What the next valid requests get is scripted with ``script(...)``; unscripted
requests succeed with ``vector_for(input, dim)`` vectors.

The HTTP layer is plain asyncio (one request per connection, ``connection: close``) so a test can
drop a connection or send bytes that are not JSON, which a full server framework would not let
it do.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import orjson

from tests.support.fake_formats import (
    DEFAULT_DIM,
    AzureWire,
    OpenAIWire,
    Parsed,
    Reject,
    VoyageWire,
    Wire,
    tokens_for,
    vector_for,
)
from tests.support.fake_native import CohereWire, GeminiWire, OllamaWire, TeiWire, VertexWire

API_KEY = "test-key-7f3a9c2e51d04b8e"  # not key-shaped: redaction must find it by value
WIRES: dict[str, Wire] = {w.name: w for w in (OpenAIWire(), AzureWire(), VoyageWire(),
                                               CohereWire(), GeminiWire(), VertexWire(),
                                               OllamaWire(), TeiWire())}
# Where each format's adapter points its base_url, below the format's prefix.
BASE_PATHS = {"openai": "/v1", "azure": "", "voyage": "/v1", "cohere": "", "gemini": "/v1beta",
              "vertex": "/v1/projects/fake-project/locations/us-central1", "ollama": "",
              "tei": ""}
MAX_BODY = 8 * 1024 * 1024
MAX_HEADERS = 100
MAX_DELAY_S = 5.0
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           413: "Payload Too Large", 422: "Unprocessable Entity", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           529: "Overloaded"}


@dataclass(frozen=True)
class Step:
    """What one scripted request gets. Build with the class methods."""

    action: str  # ok | error | status | delay | drop | raw
    flaws: frozenset[str] = frozenset()  # for ok: no_usage shuffle short wrong_dim bad_base64
    # dup_index
    kind: str = ""  # for error: rate_limited too_large overloaded auth or an HTTP status
    retry: float | None = None
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0

    @classmethod
    def ok(cls, *flaws: str) -> Step:
        return cls("ok", frozenset(flaws))

    @classmethod
    def error(cls, kind: str | int, retry: float | None = None) -> Step:
        """The format's own documented reply for ``kind``: rate_limited (with ``retry`` as its
        hint, where the format has one), too_large, overloaded, auth, or an HTTP status (its
        generic error envelope)."""
        return cls("error", kind=str(kind), retry=retry)

    @classmethod
    def reply(cls, status: int, body: bytes | Any, **headers: str) -> Step:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        return cls("status", status=status, body=raw, headers=tuple(headers.items()))

    @classmethod
    def delay(cls, seconds: float) -> Step:
        return cls("delay", delay_s=min(seconds, MAX_DELAY_S))

    @classmethod
    def drop(cls) -> Step:
        return cls("drop")

    @classmethod
    def malformed(cls) -> Step:
        return cls("status", status=200, body=b'{"data": [{"embedding": [0.1,')


@dataclass
class Seen:
    """One request as received: the path below the format prefix, lowercased headers, JSON."""

    wire: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    raw: bytes = field(repr=False, default=b"")


class FakeUpstreams:
    def __init__(self, api_key: str = API_KEY, default_dim: int = DEFAULT_DIM) -> None:
        self.api_key = api_key
        self.default_dim = default_dim
        self.seen: list[Seen] = []
        self._steps: deque[Step] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.port = 0

    # -- control, from the test's thread ---------------------------------------------------
    def start(self) -> FakeUpstreams:
        self._thread = threading.Thread(target=self._run, name="fake-upstreams", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake upstreams did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def base_url(self, wire: str) -> str:
        return f"http://127.0.0.1:{self.port}/{wire}{BASE_PATHS[wire]}"

    def script(self, *steps: Step) -> None:
        with self._lock:
            self._steps.extend(steps)

    def reset(self) -> None:
        with self._lock:
            self._steps.clear()
            self.seen.clear()

    @property
    def last(self) -> Seen:
        with self._lock:
            return self.seen[-1]

    # -- the server thread ----------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        server = loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(_shutdown(server))
            loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(_read(reader), 10)
            if request is not None:
                await self._answer(*request, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:
            # Only at shutdown, when a delayed reply is still sleeping: nothing left to answer.
            pass
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()

    async def _answer(self, target: str, headers: dict[str, str], raw: bytes,
                      writer: asyncio.StreamWriter) -> None:
        split = urlsplit(target)
        prefix, _, rest = split.path.lstrip("/").partition("/")
        wire = WIRES.get(prefix)
        query = dict(parse_qsl(split.query))
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        with self._lock:
            self.seen.append(Seen(prefix, "/" + rest, query, headers, body, raw))
        match = re.fullmatch(wire.route, "/" + rest) if wire else None
        if wire is None or match is None:
            return await _write(writer, 404, {"error": f"no route {split.path}"})
        if not wire.authorized(headers, self.api_key):
            return await _send(writer, wire.auth_error(headers))
        parsed = wire.parse(body, match, query)
        if isinstance(parsed, Reject):
            return await _send(writer, parsed)
        with self._lock:
            step = self._steps.popleft() if self._steps else Step.ok()
        await self._act(step, wire, parsed, writer)

    async def _act(self, step: Step, wire: Wire, req: Parsed,
                   writer: asyncio.StreamWriter) -> None:
        if step.action == "drop":
            writer.transport.abort()
            return
        if step.action == "delay":
            await asyncio.sleep(step.delay_s)
        if step.action == "status":
            return await _write(writer, step.status, step.body, dict(step.headers))
        if step.action == "error":
            return await _send(writer, _scripted_error(wire, step))
        dim = (req.dim or self.default_dim) + (1 if "wrong_dim" in step.flaws else 0)
        vecs = np.stack([vector_for(t, dim) for t in req.inputs])
        tokens = sum(tokens_for(t) for t in req.inputs)
        await _write(writer, 200, wire.success(req, vecs, tokens, set(step.flaws)))


async def _shutdown(server: asyncio.Server) -> None:
    """Close the listener and end the handlers still running (delayed replies, at most)."""
    server.close()
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await server.wait_closed()


def _scripted_error(wire: Wire, step: Step) -> Reject:
    if step.kind == "rate_limited":
        return wire.rate_limited(step.retry)
    if step.kind == "too_large":
        return wire.too_large()
    if step.kind == "overloaded":
        return wire.overloaded()
    if step.kind == "auth":
        return wire.auth_error({})
    return wire.plain(int(step.kind))


async def _read(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    _method, target, _version = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS):
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length > MAX_BODY:
        raise ValueError("body too large for the fake")
    return target, headers, await reader.readexactly(length)


async def _send(writer: asyncio.StreamWriter, reject: Reject) -> None:
    await _write(writer, reject.status, reject.body, reject.headers)


async def _write(writer: asyncio.StreamWriter, status: int, body: Any,
                 headers: dict[str, str] | None = None) -> None:
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
            "content-type: application/json", f"content-length: {len(payload)}",
            "connection: close", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
    await writer.drain()
