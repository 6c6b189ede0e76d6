"""uvicorn's httptools protocol plus the guards it lacks.

uvicorn cuts a keep-alive connection after ``timeout_keep_alive`` but never one that has not
finished its first request: a socket that sends nothing, a header at one byte a second or a
body at ten bytes a second holds a file descriptor forever. Its parse errors and its
``limit_concurrency`` refusal are plain text. This subclass adds, per connection, one deadline
that follows the request through its phases, a cap on open connections, and the JSON error
envelope for every response written before the app is reached.

Phases and their deadline:

    new    connected, nothing received          header_timeout_s from connect (silent close)
    head   request line / headers arriving      fresh connection: the same deadline as "new";
                                                keep-alive: header_timeout_s from the first byte
    body   headers done, body arriving          body_timeout_s from the end of the headers
    done   request complete, app working        none: the app's own limits apply
    idle   response sent, keep-alive            keepalive_timeout_s (silent close)

Over ``max_connections`` a new connection first evicts the connection that has been idle
(phase new or idle: not a byte of a request pending) the longest, as nginx reuses idle
keep-alive connections when it runs out; when none is idle it gets a 503 envelope at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from embedrouter.api.errors import envelope

log = logging.getLogger("embedrouter.http")

# httptools.parse_url stores offsets in 16 bits: a longer URL cannot be parsed at all.
MAX_URL_BYTES = 65535
# Request line plus headers; far above what any client of this API sends.
MAX_HEAD_BYTES = 64 * 1024
# How long a refused or rejected connection is drained before it is closed (see _linger).
LINGER_S = 1.0
# Lingering connections hold descriptors beyond max_connections; this bounds them.
MAX_LINGERING = 64
REFUSAL_LOG_S = 10.0
# Descriptors kept free for the process itself (database, runtime, listening socket, logs).
FD_RESERVE = 32

_TLS_RECORD = b"\x16\x03"
_H2_PREFACE = b"PRI * HTTP/2.0"


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The guards' settings, taken from ``[server]`` in the config."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keepalive_timeout_s: float = 5.0
    max_connections: int = 4096


class _Reject(Exception):
    """Raised from a parser callback to stop parsing and answer with an error envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Shared:
    """State shared by every connection of one server."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.idle: OrderedDict[GuardedHttpToolsProtocol, None] = OrderedDict()
        self.lingering = 0
        self.refused = 0  # since the last log line about refusals
        self.refusal_logged_at = float("-inf")

    def note_refusal(self, now: float, open_connections: int) -> None:
        """Log refusals at most every REFUSAL_LOG_S: a flood must not become a log flood."""
        self.refused += 1
        if now - self.refusal_logged_at >= REFUSAL_LOG_S:
            log.warning("refused %d connection(s): %d open, the limit is %d", self.refused,
                        open_connections, self.limits.max_connections)
            self.refused = 0
            self.refusal_logged_at = now


def error_response(status: int, message: str, extra: tuple[tuple[bytes, bytes], ...] = ()
                   ) -> bytes:
    """A complete HTTP/1.1 response carrying the error envelope, closing the connection."""
    body = envelope(status, message)
    head = [STATUS_LINE[status], b"content-type: application/json\r\n",
            b"content-length: ", str(len(body)).encode(), b"\r\n", b"connection: close\r\n"]
    for name, value in extra:
        head += [name, b": ", value, b"\r\n"]
    return b"".join([*head, b"\r\n", body])


class _HeadWithBody:
    """The transport as one request's cycle sees it: the response head is held back until the
    first body write, so head and body leave in one send (one syscall, one TCP segment and one
    wake-up of the client fewer per response). A 1xx interim head goes out at once; a head with
    no body write (a HEAD request) is flushed when the response completes."""

    __slots__ = ("_head", "_held_once", "_owner", "_transport")

    def __init__(self, transport: asyncio.Transport, owner: GuardedHttpToolsProtocol) -> None:
        self._transport = transport
        self._owner = owner
        self._head: bytes | None = None
        self._held_once = False

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._owner._holding = None
            self._transport.write(head + data)
        elif (not self._held_once and data.startswith(b"HTTP/1.1 ")
              and data[9:10] != b"1"):
            self._held_once = True
            self._head = data
            self._owner._holding = self
        else:
            self._transport.write(data)

    def flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One connection; build the class for a server with :func:`protocol_class`."""

    shared: ClassVar[_Shared]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.shared.limits.keepalive_timeout_s  # uvicorn's timer
        self._phase = "new"
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._body_expected = False
        self._first = b""
        self._refused = False
        self._lingering = False
        self._holding: _HeadWithBody | None = None

    # -- connection lifecycle -------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        shared = self.shared
        if len(self.connections) >= shared.limits.max_connections:
            victim = next(iter(shared.idle), None)
            if victim is None:
                self._refuse(transport)
                return
            victim._evict()
        super().connection_made(transport)
        shared.idle[self] = None
        self._arm(shared.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.shared.idle.pop(self, None)
        if self._lingering:
            self._lingering = False
            self.shared.lingering -= 1
        if self._refused:
            return
        super().connection_lost(exc)

    def eof_received(self) -> bool | None:
        if self._lingering:
            self.transport.close()
        return None

    def _evict(self) -> None:
        """Make room for a new connection: this one has no request pending."""
        self.shared.idle.pop(self, None)
        self.connections.discard(self)
        self._disarm()
        self.transport.close()

    def _refuse(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._refused = True
        self.shared.note_refusal(self.loop.time(), len(self.connections))
        transport.write(error_response(
            503, "Too many open connections; retry shortly",
            ((b"retry-after", b"1"),)))
        self._linger()

    def _linger(self) -> None:
        """Half-close and drain, then close.

        Closing a socket with unread input makes the kernel send a reset, and a reset can
        destroy the error response before the client reads it; so the write side is shut
        first and what the client still sends is read and dropped for up to LINGER_S.
        """
        transport = self.transport
        self._disarm()
        if self.shared.lingering >= MAX_LINGERING or not transport.can_write_eof():
            transport.close()
            return
        self._lingering = True
        self.shared.lingering += 1
        transport.write_eof()
        self._deadline = self.loop.call_later(LINGER_S, transport.close)

    # -- deadlines --------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._on_deadline)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _on_deadline(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        phase = self._phase
        if phase in ("new", "idle"):
            # Nothing of a request was received: a silent close, as for keep-alive expiry.
            self.shared.idle.pop(self, None)
            self.transport.close()
        elif phase == "head":
            self._reject(408, "Request headers not received within "
                              f"{self.shared.limits.header_timeout_s:g} s")
        elif phase == "body":
            self._reject(408, "Request body not received within "
                              f"{self.shared.limits.body_timeout_s:g} s")

    def _reject(self, status: int, message: str) -> None:
        """Answer with an error envelope and close, unless a response is already under way."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The app is waiting for this request's body: it sees a disconnect and stops, and
            # whatever it then sends is dropped by uvicorn.
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started or self._phase == "head":
                # Mid-response, or the bad bytes belong to a pipelined next request: an error
                # written now would be read as (part of) the current response.
                self.transport.close()
                return
        log.debug("rejected a request with %d: %s", status, message)
        self.transport.write(error_response(status, message))
        self._linger()

    # -- data ---------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        if self._phase == "new" and len(self._first) < len(_H2_PREFACE):
            self._first += data[:len(_H2_PREFACE)]
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # The server runs with ws="none": no upgrade (websocket, h2c) is ever accepted, and
            # the request is served as plain HTTP/1.1 (uvicorn would log a warning for each).
            # The parser stops at an upgrade, so the connection closes after this response.
            if self.cycle is not None:
                self.cycle.keep_alive = False
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Reject):
                self._reject(cause.status, cause.message)
            elif isinstance(cause, httptools.HttpParserError):  # e.g. parse_url's verdict
                self._reject(400, f"Malformed HTTP request: {cause}")
            else:
                # uvicorn's own handling failed on these bytes (a non-ASCII path, say); its
                # exception text is for the log, not for the caller.
                log.debug("malformed request: %s: %s", type(cause).__name__, cause)
                self._reject(400, "Malformed HTTP request: the request line or headers "
                                  "cannot be decoded")
        except httptools.HttpParserError as exc:
            self._reject(400, self._malformed_message(exc))
        else:
            # Deadlines for a head or body still incomplete after this chunk. Armed here rather
            # than in the parser callbacks so that the usual request, whole in one chunk, costs
            # no timer at all.
            if self._deadline is None and not self.transport.is_closing():
                if self._phase == "head":
                    self._arm(self.shared.limits.header_timeout_s)
                elif self._phase == "body" and self._body_expected:
                    self._arm(self.shared.limits.body_timeout_s)

    def _malformed_message(self, exc: Exception) -> str:
        if self._first.startswith(_TLS_RECORD):
            return ("Malformed HTTP request: TLS handshake on a plain-HTTP port; "
                    "use http://, or put a TLS proxy in front")
        if self._first.startswith(_H2_PREFACE):
            return "Malformed HTTP request: HTTP/2 is not supported; use HTTP/1.1"
        return f"Malformed HTTP request: {exc}"

    # -- parser callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._body_expected = False
        self.shared.idle.pop(self, None)
        if self._phase == "idle":
            # The keep-alive deadline (uvicorn's timer or ours) ends with the first byte; the
            # header deadline starts in data_received if the head is not complete by then.
            self._unset_keepalive_if_required()
            self._disarm()
        # A fresh connection keeps the deadline it got at connect: idle time counts too.
        self._phase = "head"

    def _count_head(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _Reject(431, f"Request headers exceed {MAX_HEAD_BYTES} bytes")

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            raise _Reject(414, f"URL longer than {MAX_URL_BYTES} bytes")
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        # uvicorn's on_header inlined (one Python call per header, not two), plus the count and
        # a note of whether a body follows.
        self._count_head(len(name) + len(value))
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        elif name == b"content-length" or name == b"transfer-encoding":
            self._body_expected = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._phase = "body"
        self._disarm()  # the header deadline; a body's starts in data_received if needed
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:
            cycle.transport = _HeadWithBody(self.transport, self)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase = "done"
        self._disarm()
        if self._may_idle():
            # The app answered before the body was read to the end (a 401, say): uvicorn's
            # keep-alive timer was not armed for this, so ours is.
            self._phase = "idle"
            self.shared.idle[self] = None
            self._arm(self.shared.limits.keepalive_timeout_s)

    def on_response_complete(self) -> None:
        # uvicorn starts a pipelined request if any, else arms its keep-alive timer
        # (self.timeout_keep_alive, set from the limits): that timer is the idle deadline.
        holding = self._holding
        if holding is not None:  # a head with no body write (HEAD): out before anything else
            self._holding = None
            holding.flush()
        super().on_response_complete()
        if self._may_idle():
            self._phase = "idle"
            self.shared.idle[self] = None
        else:
            # The next request's head or this one's body is still arriving, under its own
            # deadline; uvicorn's timer would close the connection in the middle of it.
            self._unset_keepalive_if_required()

    def _may_idle(self) -> bool:
        """Whether the request was read to the end and answered, with nothing queued."""
        cycle = self.cycle
        return (self._phase == "done" and cycle is not None and cycle.response_complete
                and not self.pipeline and not self.transport.is_closing())



def protocol_class(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """A protocol class for one server: its connections share the idle list and the counts."""
    return type("EmbedRouterHttpProtocol", (GuardedHttpToolsProtocol,),
                {"shared": _Shared(limits)})
