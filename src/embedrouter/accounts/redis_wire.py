"""A minimal Redis client for the admission hot path's script calls (EVALSHA) only.

redis.asyncio spends ~35-45 us of event-loop CPU per EVALSHA with a dozen arguments (command
packing in Python, a pooled connection checked out and back per call), and the claim runs once
per request: ``bench/redis_client_bench.py`` measures it against this client. Everything else
(seeding, reclaim, snapshots) stays on redis.asyncio.

One connection, pipelined: requests are written as they come (coalesced into one write per
loop turn), and replies, which Redis sends in request order, resolve a FIFO of futures. Replies
are parsed by ``hiredis.Reader``. A caller that gives up (cancelled) leaves its future in the
FIFO so that its reply is still consumed in order. A reply that does not come in time means the
order can no longer be trusted: the connection is dropped, every pending call fails, and the
next call reconnects. Since replies come in order, only the oldest pending call can be the late
one: one timer per connection watches it, not one per call.

Errors are redis-py's (``ConnectionError``, ``TimeoutError``, ``ResponseError``), so callers
handle both clients alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import socket
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError, ResponseError, TimeoutError

Arg = str | bytes | int | float


class Script:
    """A Lua script and its SHA1, as EVALSHA names it."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source).hexdigest()


def pack(args: Sequence[Arg]) -> bytes:
    """One command in RESP: an array of bulk strings."""
    # The hot path's commands are ASCII names and ints: built as one str and encoded once,
    # about a third less CPU than encoding each argument (7.6 against 11.5 us for the claim's
    # command on an AMD EPYC VM; bench/redis_client_bench.py prints both).
    parts = [f"*{len(args)}\r\n"]
    add = parts.append
    for a in args:
        t = type(a)
        if t is int:
            s = str(a)
        elif t is str and a.isascii():  # type: ignore[union-attr]
            s = a
        else:
            return _pack_any(args)
        add(f"${len(s)}\r\n{s}\r\n")  # ASCII: as many bytes as characters
    return "".join(parts).encode()


def _pack_any(args: Sequence[Arg]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            b = a.encode()
        elif isinstance(a, bytes):
            b = a
        elif isinstance(a, int) and not isinstance(a, bool):
            b = b"%d" % a
        elif isinstance(a, float):
            b = repr(a).encode()
        else:  # redis-py refuses these too: there is no one obvious encoding
            raise TypeError(f"cannot send {type(a).__name__} to Redis")
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _Connection(asyncio.Protocol):
    def __init__(self, timeout_s: float) -> None:
        self.transport: asyncio.Transport | None = None
        self.pending: deque[asyncio.Future[Any]] = deque()
        self.deadlines: deque[float] = deque()  # loop.time() by which each pending call is due
        self.timeout = timeout_s
        self.watchdog: asyncio.TimerHandle | None = None
        self.reader = hiredis.Reader(encoding="utf-8", replyError=ResponseError)
        self.wbuf: list[bytes] = []
        self.lost: Exception | None = None
        self.loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.lost is not None:  # dropped since the caller got it: fail like a pending call
            raise ConnectionError(f"Redis connection lost: {self.lost}")
        fut = self.loop.create_future()
        self.pending.append(fut)
        deadline = self.loop.time() + self.timeout
        self.deadlines.append(deadline)
        if self.watchdog is None:
            self.watchdog = self.loop.call_at(deadline, self._watch)
        if not self.wbuf:
            self.loop.call_soon(self._flush)
        self.wbuf.append(command)
        return fut

    def _watch(self) -> None:
        """The oldest pending call's deadline came: drop the connection if it is still due,
        else watch the (new) oldest one."""
        self.watchdog = None
        if not self.deadlines:
            return
        if self.deadlines[0] <= self.loop.time():
            self.drop(TimeoutError(f"Redis did not answer within {self.timeout} s"))
        else:
            self.watchdog = self.loop.call_at(self.deadlines[0], self._watch)

    def _flush(self) -> None:
        data, self.wbuf = b"".join(self.wbuf), []
        if self.transport is not None and self.lost is None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self.drop(ConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not self.pending:
                self.drop(ConnectionError("Redis sent a reply nobody asked for"))
                return
            fut = self.pending.popleft()
            self.deadlines.popleft()
            if fut.done():  # its caller gave up; the reply was still consumed in order
                continue
            if isinstance(reply, ResponseError):
                fut.set_exception(reply)
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.drop(ConnectionError(f"Redis connection lost: {exc or 'closed by the server'}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def drop(self, exc: Exception) -> None:
        """Fail every pending call with ``exc`` and close: later replies could not be matched."""
        if self.lost is None:
            self.lost = exc
        self.deadlines.clear()
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.pending:
            fut = self.pending.popleft()
            if not fut.done():
                fut.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()


class ScriptClient:
    """EVALSHA over one pipelined connection, opened on first use and reopened after a loss.

    ``url`` is read as redis-py reads it (redis://, rediss://, unix://; user, password, db and
    the ssl_* query options). ``timeout_s`` bounds connecting and each call.
    """

    def __init__(self, url: str, *, timeout_s: float = 2.0) -> None:
        kw = dict(parse_url(url))
        cls = kw.pop("connection_class", None)
        self._path: str | None = kw.get("path")  # type: ignore[assignment]
        self._host = str(kw.get("host", "localhost"))
        self._port = int(kw.get("port", 6379))  # type: ignore[call-overload]
        self._ssl: ssl.SSLContext | None = None
        if cls is SSLConnection:
            # redis-py's own reading of the ssl_* options, so both clients trust alike.
            self._ssl = SSLConnection(**kw).ssl_context.get()  # type: ignore[arg-type]
        self._hello: list[bytes] = []
        user, password = kw.get("username"), kw.get("password")
        if password is not None:
            auth = ["AUTH", password] if user is None else ["AUTH", user, password]
            self._hello.append(pack(auth))  # type: ignore[arg-type]
        db = int(kw.get("db", 0) or 0)  # type: ignore[call-overload]
        if db:
            self._hello.append(pack(["SELECT", db]))
        self._timeout = timeout_s
        self._conn: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(self._timeout):
                factory = functools.partial(_Connection, self._timeout)
                if self._path is not None:
                    _, conn = await loop.create_unix_connection(factory, self._path)
                else:
                    _, conn = await loop.create_connection(
                        factory, self._host, self._port, ssl=self._ssl,
                        server_hostname=self._host if self._ssl is not None else None)
                for hello in self._hello:
                    await conn.send(hello)
        except BaseException as exc:
            if conn is not None:
                conn.drop(ConnectionError("Redis connection setup failed"))
            if isinstance(exc, ResponseError):
                raise ConnectionError(f"Redis refused the connection setup: {exc}") from exc
            if isinstance(exc, asyncio.TimeoutError):
                raise TimeoutError("Redis connect timed out") from exc
            if isinstance(exc, OSError):
                raise ConnectionError(f"cannot connect to Redis: {exc}") from exc
            raise
        # Set here, not by a waiter: if every waiter was cancelled the socket is still kept.
        self._conn = conn

    async def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and conn.lost is None:
            return conn
        # Concurrent callers share one connect instead of each opening a socket.
        task = self._connecting
        if task is None or task.done():
            task = self._connecting = asyncio.ensure_future(self._connect())
            # A failure nobody is left to await must not be logged as never retrieved.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        await asyncio.shield(task)
        conn = self._conn
        assert conn is not None
        return conn

    async def _call(self, command: bytes) -> Any:
        conn = self._conn
        if conn is None or conn.lost is not None:
            conn = await self._connection()
        return await conn.send(command)

    async def evalsha(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        """Run ``script`` (loading it first if Redis does not have it)."""
        command = pack(["EVALSHA", script.sha, len(keys), *keys, *args])
        try:
            return await self._call(command)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self._call(pack(["SCRIPT", "LOAD", script.source]))
        return await self._call(command)

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.drop(ConnectionError("client closed"))
            # The transport closes its socket a loop turn later: wait, or a loop closed right
            # after this would leak it.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(conn.closed), self._timeout)
