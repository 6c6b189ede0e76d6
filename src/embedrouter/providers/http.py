"""The pooled HTTP/1.1 client every remote adapter sends through.

Hand-written on asyncio's transports and httptools' response parser (the C parser uvicorn
already brings) rather than aiohttp: on ``bench/http_client_bench.py`` aiohttp's
``ClientSession.post`` costs several times this client's CPU per call, and at concurrency 32 the
router is one event loop whose CPU is the ceiling (``bench/proxy_bench.py``; the figures are in
bench/README.md). It does only what an embeddings upstream needs: POST with a body of known
length, keep-alive connections pooled per origin, TLS, a deadline per call, bounded replies,
gzip/deflate replies, and transport failures turned into ``AttemptFailure`` here, so adapters
only ever see an HTTP reply or a canonical failure.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

from embedrouter.providers.upstream import AttemptFailure, HttpReply

# A reply larger than this is refused (the connection is dropped): far above any legitimate
# embeddings reply (2,048 inputs x 3,072 floats as JSON text is ~140 MB), far below what would
# exhaust memory.
DEFAULT_MAX_REPLY_BYTES = 256 * 1024 * 1024
# Idle keep-alive connections kept per origin, and for how long. Upstreams close idle
# connections themselves (often after 5-60 s); one closed under us is retried once (see post).
MAX_IDLE_PER_ORIGIN = 64
IDLE_TTL_S = 30.0

# Set by the client itself; an adapter's value for one of these is ignored.
_OWN_HEADERS = frozenset({"host", "content-length", "content-type", "user-agent",
                          "transfer-encoding", "connection", "accept-encoding"})
_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class _Failure(Exception):
    """A transport-level failure, described without anything the caller sent."""

    def __init__(self, kind: str, message: str, *, fresh_eof: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        # The peer closed before sending a byte of the reply: on a reused connection this is
        # the keep-alive race (it closed while idle), and the request was never read.
        self.fresh_eof = fresh_eof


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int
    host_header: str


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its reply parsed as it arrives."""

    def __init__(self, origin: _Origin, loop: asyncio.AbstractEventLoop) -> None:
        self.origin = origin
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._limit = DEFAULT_MAX_REPLY_BYTES
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._name = b""
        self._chunks: list[bytes] = []
        self._size = 0
        self._received = False  # any byte of the reply seen
        self._complete = False
        self._keep_alive = False

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes while idle in the pool: the stream is out of step
            self.abort()
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(_Failure("connection", "connection failed: unexpected protocol upgrade"))
        except httptools.HttpParserError:
            self._fail(_Failure("connection", "connection failed: malformed HTTP reply"))

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self.status and not self._complete and self._delimited_by_close():
            # HTTP/1.0 style: no length and not chunked, so the close ends the body.
            self._complete = True
            self._waiter.set_result(None)
            return
        self._waiter.set_exception(_Failure(
            "connection", "connection failed: the upstream closed the connection "
            + ("mid-reply" if self._received else "before replying"),
            fresh_eof=not self._received))

    # -- httptools callbacks -------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        length = self.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._limit:
            self._fail(_Failure("invalid_reply",
                                f"reply of {length} bytes is over the {self._limit}-byte limit"))

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._limit:
            self._fail(_Failure("invalid_reply",
                                f"reply is over the {self._limit}-byte limit"))
            return
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # an interim reply (100 Continue): the real one follows
            self._reset()
            self._received = True
            return
        self._complete = True
        # Read here: once the message is over the parser has reset its flags.
        self._keep_alive = self._parser.should_keep_alive()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- the client's side ---------------------------------------------------------------------

    def _delimited_by_close(self) -> bool:
        return "content-length" not in self.headers and \
            "chunked" not in self.headers.get("transfer-encoding", "").lower()

    def _fail(self, failure: _Failure) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(failure)
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    async def exchange(self, request: bytes, limit: int) -> tuple[int, dict[str, str], bytes]:
        """Sends ``request`` and waits for the whole reply."""
        assert self.transport is not None
        self._reset()
        self._limit = limit
        self._waiter = self._loop.create_future()
        self.transport.write(request)
        await self._waiter
        self._waiter = None
        body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        if not self._keep_alive or self._delimited_by_close():
            self.abort()
        return self.status, self.headers, body


class HttpClient:
    """Keep-alive connections pooled per origin, for all upstreams; used inside one loop.

    The number of connections per upstream is bounded by the callers (the dispatcher's
    per-provider ``max_concurrency``), so the pool bounds only what it keeps idle.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None,
                 max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES) -> None:
        self._ssl = ssl_context
        self.max_reply_bytes = max_reply_bytes
        self._idle: dict[_Origin, deque[_Connection]] = {}
        self._targets: dict[str, tuple[_Origin, bytes]] = {}
        self._heads: dict[tuple[_Origin, bytes, tuple[tuple[str, str], ...]], bytes] = {}
        self._closed = False

    def _target(self, url: str) -> tuple[_Origin, bytes]:
        """The origin and request target of ``url``, parsed once per distinct URL."""
        found = self._targets.get(url)
        if found is not None:
            return found
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("upstream URLs must be http:// or https:// with a host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        default = (parts.scheme == "https" and port == 443) or (parts.scheme == "http"
                                                                 and port == 80)
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        origin = _Origin(parts.scheme, host, port, shown if default else f"{shown}:{port}")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        found = (origin, path.encode("ascii"))
        if len(self._targets) > 4096:  # URLs carry the model (Azure, Google): a bounded memo
            self._targets.clear()
        self._targets[url] = found
        return found

    def _head(self, origin: _Origin, path: bytes, headers: Mapping[str, str]) -> bytes:
        """The request line and headers up to Content-Length's value, encoded once for each
        distinct (origin, target, headers): adapters send the same few on every call."""
        memo = (origin, path, tuple(headers.items()))
        head = self._heads.get(memo)
        if head is not None:
            return head
        lines = [b"POST " + path + b" HTTP/1.1", b"Host: " + origin.host_header.encode("idna"),
                 b"Content-Type: application/json", b"User-Agent: embedrouter",
                 b"Accept-Encoding: gzip, deflate"]
        for name, value in headers.items():
            if name.lower() in _OWN_HEADERS:
                continue
            if any(c in name or c in value for c in "\r\n\0"):
                raise ValueError("a header holds a line break or NUL")
            lines.append(name.encode("latin-1") + b": " + value.encode("latin-1"))
        head = b"\r\n".join(lines) + b"\r\nContent-Length: "
        if len(self._heads) > 4096:
            self._heads.clear()
        self._heads[memo] = head
        return head

    async def _connect(self, origin: _Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        context = None
        if origin.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        _, conn = await loop.create_connection(
            lambda: _Connection(origin, loop), origin.host, origin.port, ssl=context,
            server_hostname=origin.host if context is not None else None)
        return conn

    def _take_idle(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be closed
            if not conn.closed and now - conn.idle_since < IDLE_TTL_S:
                return conn
            conn.abort()
        return None

    def _give_back(self, conn: _Connection) -> None:
        if conn.closed or self._closed:
            conn.abort()
            return
        idle = self._idle.setdefault(conn.origin, deque())
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            idle.popleft().abort()  # the oldest
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def post(self, url: str, *, headers: Mapping[str, str], body: bytes,
                   timeout: float, provider: str, max_bytes: int | None = None) -> HttpReply:
        if self._closed:
            raise AttemptFailure(kind="connection", provider=provider,
                                 message="connection failed: the client is closed")
        origin, path = self._target(url)
        try:
            head = self._head(origin, path, headers)
        except ValueError:
            # Our configured key or headers for this provider are unusable: like a wrong key,
            # another endpoint may still serve the request. The value itself is never shown.
            raise AttemptFailure(kind="auth", provider=provider,
                                 message="the provider's configured headers hold a line break "
                                         "or NUL") from None
        request = head + str(len(body)).encode() + b"\r\n\r\n" + body
        limit = self.max_reply_bytes if max_bytes is None else min(max_bytes,
                                                                  self.max_reply_bytes)
        try:
            async with asyncio.timeout(timeout):
                status, reply_headers, payload = await self._send(origin, request, limit)
        except TimeoutError:
            raise AttemptFailure(kind="timeout", provider=provider,
                                 message=f"no reply within {timeout:g} s") from None
        except _Failure as exc:
            raise AttemptFailure(kind=exc.kind, provider=provider, message=str(exc)) from None
        except (OSError, ssl.SSLError) as exc:
            # The exception's class names what failed; its text (host, port) is not needed.
            raise AttemptFailure(kind="connection", provider=provider,
                                 message=f"connection failed: {type(exc).__name__}") from None
        coding = reply_headers.get("content-encoding", "").strip().lower()
        if coding in _DECODERS and payload:
            payload = self._decode(payload, coding, limit, provider)
        return HttpReply(status, reply_headers, payload)

    async def _send(self, origin: _Origin, request: bytes, limit: int
                    ) -> tuple[int, dict[str, str], bytes]:
        conn = self._take_idle(origin)
        if conn is not None:
            try:
                return await self._use(conn, request, limit)
            except _Failure as exc:
                if not exc.fresh_eof:
                    raise
                # Closed by the upstream while it sat idle, before reading this request:
                # sending it again on a new connection is safe.
        return await self._use(await self._connect(origin), request, limit)

    async def _use(self, conn: _Connection, request: bytes, limit: int
                   ) -> tuple[int, dict[str, str], bytes]:
        done = False
        try:
            result = await conn.exchange(request, limit)
            done = True
            return result
        finally:
            # Anything but a whole reply (a failure, the deadline, a cancelled caller) leaves
            # the connection mid-exchange: it can never be reused.
            if done:
                self._give_back(conn)
            else:
                conn.abort()

    @staticmethod
    def _decode(payload: bytes, coding: str, limit: int, provider: str) -> bytes:
        decoder = zlib.decompressobj(_DECODERS[coding])
        try:
            out = decoder.decompress(payload, limit + 1)
        except zlib.error:
            raise AttemptFailure(kind="invalid_reply", provider=provider,
                                 message=f"invalid reply: bad {coding} encoding") from None
        if len(out) > limit or decoder.unconsumed_tail:
            raise AttemptFailure(kind="invalid_reply", provider=provider,
                                 message=f"invalid reply: over the {limit}-byte limit "
                                         "once decompressed")
        return out

    async def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()
