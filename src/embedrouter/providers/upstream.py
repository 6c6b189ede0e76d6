"""The seam between the router and a remote embeddings API, and what every adapter shares.

An adapter turns one ``UpstreamCall`` (a batch already cut to the endpoint's caps) into the
upstream's wire format, and its reply back into an ``UpstreamReply``; any failure leaves it as an
``AttemptFailure`` of one canonical kind. Raw upstream JSON never leaves the adapter.
"""

from __future__ import annotations

import binascii
import email.utils
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import orjson
import pybase64

from embedrouter.catalog.endpoints import ProviderConfig

__all__ = ["Adapter", "AttemptFailure", "Http", "HttpReply", "ProviderConfig", "UpstreamCall",
           "UpstreamReply"]

MAX_RAW_CHARS = 2000
# What one input's reply may take: a 4,096-float vector as JSON text is ~90 KB; 256 KiB leaves
# room for any format's overhead. With a fixed allowance for the envelope (errors included),
# this bounds what a broken or hostile upstream can make the router buffer for one call.
REPLY_BYTES_PER_INPUT = 256 * 1024
REPLY_BYTES_FIXED = 1024 * 1024


def reply_limit(inputs: int) -> int:
    """The most bytes a reply to a call of ``inputs`` inputs may have."""
    return REPLY_BYTES_FIXED + REPLY_BYTES_PER_INPUT * max(inputs, 1)

Kind = Literal["rate_limited", "overloaded", "unavailable", "timeout", "connection",
               "invalid_reply", "bad_request", "auth", "too_large"]
# `auth` falls back too: our key for that provider is wrong or revoked, while the caller's
# request is fine and another endpoint of the model can serve it.
RETRYABLE: frozenset[str] = frozenset(
    {"rate_limited", "overloaded", "unavailable", "timeout", "connection", "invalid_reply",
     "auth"})


@dataclass
class AttemptFailure(Exception):
    """One failed upstream call, as its adapter understood it."""

    kind: Kind
    provider: str  # display name
    message: str
    status: int | None = None  # the upstream's HTTP status, if it answered
    code: str | int | None = None  # the upstream's own error code
    retry_after: float | None = None  # seconds, from the upstream's hint
    raw: str | None = None  # the upstream body, secrets already removed, clipped

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One upstream request: texts (or token ids, where the upstream takes them natively)."""

    inputs: Sequence[str] | Sequence[Sequence[int]]
    upstream_model: str
    dimensions: int | None = None  # only sent when the endpoint supports it
    input_type: str | None = None  # the caller's value, mapped by the adapter
    want_base64: bool = True  # ask for base64 where the upstream can give it (smaller, exact)


@dataclass(slots=True)
class UpstreamReply:
    """Rows as the upstream sent them; ``indices[k]`` is the input position of ``vectors[k]``."""

    vectors: np.ndarray  # float32, (rows, dim)
    indices: list[int]
    prompt_tokens: int | None  # None: the upstream did not report usage


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]  # lowercase names
    body: bytes


class Http(Protocol):
    """The pooled client adapters send through (see providers/http.py)."""

    async def post(self, url: str, *, headers: Mapping[str, str], body: bytes,
                   timeout: float, provider: str, max_bytes: int | None = None
                   ) -> HttpReply: ...


class JsonAdapter:
    """The request cycle every JSON adapter shares: build the body, POST it through the pool,
    read the reply. Subclasses say where (``url``), what (``body``) and how to read (``parse``,
    or ``read`` where the call itself matters)."""

    PATH = ""  # appended to base_url unless the `path` option says otherwise

    def __init__(self, config: ProviderConfig, http: Any) -> None:
        self.config = config
        self._http = http
        self._root = config.base_url.rstrip("/")
        self._url = self._root + str(config.options.get("path", self.PATH))
        self._headers = self._auth_headers()

    def _auth_headers(self) -> dict[str, str]:
        key = self.config.api_key
        return {"authorization": f"Bearer {key}"} if key else {}

    def url(self, call: UpstreamCall) -> str:
        """Where this call goes (Azure and Google put the model in the path)."""
        return self._url

    def body(self, call: UpstreamCall) -> dict[str, Any]:
        raise NotImplementedError

    def parse(self, reply: HttpReply, sent: int, dimensions: int | None = None
              ) -> UpstreamReply:
        raise NotImplementedError

    def read(self, reply: HttpReply, call: UpstreamCall) -> UpstreamReply:
        return self.parse(reply, len(call.inputs), call.dimensions)

    async def embed(self, call: UpstreamCall) -> UpstreamReply:
        reply = await self._http.post(self.url(call), headers=self._headers,
                                      body=orjson.dumps(self.body(call)),
                                      timeout=self.config.timeout_s,
                                      provider=self.config.shown_name,
                                      max_bytes=reply_limit(len(call.inputs)))
        return self.read(reply, call)

    async def close(self) -> None:
        return None


class Adapter(Protocol):
    """What the router needs of one provider: embed a batch, and close."""

    config: ProviderConfig

    async def embed(self, call: UpstreamCall) -> UpstreamReply: ...

    async def close(self) -> None: ...


# -- shared helpers ---------------------------------------------------------------------------

QUERY_TYPES = frozenset({"query", "search_query", "retrieval.query", "retrieval_query"})
DOCUMENT_TYPES = frozenset({"document", "passage", "search_document", "retrieval.passage",
                            "retrieval_document"})


def intent(input_type: str | None) -> str | None:
    """The caller's ``input_type`` as one canonical intent: query, document, similarity,
    classification, clustering; None when absent; the value itself when unknown."""
    if input_type is None:
        return None
    value = input_type.strip().lower()
    if value in QUERY_TYPES:
        return "query"
    if value in DOCUMENT_TYPES:
        return "document"
    if value in ("similarity", "semantic_similarity", "text-matching"):
        return "similarity"
    if value in ("classification", "clustering"):
        return value
    return value


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (delta seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            value = float(ms) / 1000
            if math.isfinite(value) and value > 0:
                return value
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
        return value if math.isfinite(value) and value > 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        return None
    delta = when - (time.time() if now is None else now)
    return delta if delta > 0 else None


def kind_for_status(status: int) -> Kind:
    """The canonical failure kind of an upstream HTTP status (the body may refine it)."""
    if status == 429:
        return "rate_limited"
    if status == 529:
        return "overloaded"
    if status in (408, 504):
        return "timeout"
    if status == 413:
        return "too_large"
    if status in (401, 403):
        return "auth"
    if status == 404:
        # Model, deployment or route not found: this endpoint is misconfigured, the caller's
        # request is fine, so another endpoint may serve it.
        return "unavailable"
    if 400 <= status < 500:
        return "bad_request"
    return "unavailable"


_SECRETISH = re.compile(r"(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+\S+|AIza[0-9A-Za-z_\-]{20,})")


def redact(text: str, secrets: Sequence[str | None] = ()) -> str:
    """The body with our keys (and anything key-shaped) removed, clipped for metadata."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = _SECRETISH.sub("[redacted]", text)
    return text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS] + "…"


def error_message(body: Any) -> tuple[str | None, str | int | None]:
    """(message, code) from the error bodies upstreams send, whatever their shape."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("msg") or err.get("detail")
            code = err.get("code") or err.get("type") or err.get("status")
            return (str(msg) if msg is not None else None,
                    code if isinstance(code, str | int) else None)
        if isinstance(err, str):
            return err, body.get("code") if isinstance(body.get("code"), str | int) else None
        detail = body.get("detail") or body.get("message")
        if detail is not None:
            return str(detail), None
    return None, None


def failure(config: ProviderConfig, reply: HttpReply, body: Any, *,
            kind: Kind | None = None, code: str | int | None = None,
            hint: float | None = None) -> AttemptFailure:
    """An ``AttemptFailure`` for a non-2XX reply, with a redacted, clipped copy of the body.

    ``code`` and ``hint`` (a retry delay the adapter read from the body) override what the
    generic readers find; without ``kind`` the status decides, refined by ``refine_kind``."""
    message, found = error_message(body)
    code = code if code is not None else found
    text = reply.body.decode("utf-8", errors="replace")
    # Upstreams echo keys in messages ("Incorrect API key provided: ..."), so the message is
    # redacted as well as the raw body.
    message = redact(message, [config.api_key]) if message else None
    return AttemptFailure(
        kind=kind or refine_kind(kind_for_status(reply.status), message, code),
        provider=config.shown_name,
        message=message or f"HTTP {reply.status}",
        status=reply.status,
        code=code,
        retry_after=hint if hint is not None else retry_after(reply.headers),
        raw=redact(text, [config.api_key]),
    )


# An explicit "the batch is too big" from an upstream that answers it with a 400: the router can
# split further. Per-input over-length errors ("exceeds the context length") must not match:
# splitting cannot help them.
_TOO_LARGE = re.compile(
    r"too many (input|text|item|instance|request|document|token)s?"
    r"|at most \d+ (input|text|item|instance|request|document)s?"
    r"|(number of|total) (input|text|item|instance|request|document)s? .{0,40}"
    r"(at most|exceed|maximum|limit)"
    r"|\d+ instance\(s\) is allowed"
    r"|max_tokens_per_request|tokens? per (submitted )?(batch|request)|batch size",
    re.IGNORECASE)
_OVERLOADED = re.compile(r"overload", re.IGNORECASE)


def refine_kind(kind: Kind, message: str | None, code: str | int | None) -> Kind:
    """The status's kind, refined by what the body says: an explicit overloaded signal on a 5XX
    is ``overloaded`` (a plain 503 stays ``unavailable``); an explicit too-many-inputs/tokens
    400/422 is ``too_large``."""
    said = f"{message or ''} {code if isinstance(code, str) else ''}"
    if kind == "unavailable" and _OVERLOADED.search(said):
        return "overloaded"
    if kind == "bad_request" and _TOO_LARGE.search(said):
        return "too_large"
    return kind


def load_json(reply: HttpReply) -> Any:
    """The reply's JSON, or None when it is empty or not JSON (the caller decides what that
    means: a failure body without details, or an invalid success reply)."""
    if not reply.body:
        return None
    try:
        return orjson.loads(reply.body)
    except orjson.JSONDecodeError:
        return None


def checked(config: ProviderConfig, reply: HttpReply, vectors: np.ndarray, indices: list[int],
            prompt_tokens: int | None, *, sent: int, dimensions: int | None) -> UpstreamReply:
    """The reply, once its rows are known to answer exactly the inputs sent: one row per input,
    indices a permutation of 0..sent-1 (the router reassembles by index, so a duplicate or a gap
    would put a vector under the wrong input), the width asked for, finite values."""
    if vectors.shape[0] != sent or len(indices) != sent:
        raise invalid_reply(config, f"{vectors.shape[0]} embeddings for {sent} inputs", reply)
    if sorted(indices) != list(range(sent)):
        raise invalid_reply(config, "indices are not one per input", reply)
    if dimensions is not None and vectors.shape[1] != dimensions:
        raise invalid_reply(config, f"{vectors.shape[1]}-d vectors where {dimensions} were "
                                    "asked for", reply)
    if not np.isfinite(vectors).all():
        raise invalid_reply(config, "an embedding has non-finite values", reply)
    return UpstreamReply(vectors, indices, prompt_tokens)


def base64_rows(rows: Sequence[Any], config: ProviderConfig, reply: HttpReply) -> np.ndarray:
    """Base64 strings of little-endian float32 bytes as float32 rows, or an invalid reply."""
    n = len(rows)
    try:
        first = rows[0] if n else None
        if isinstance(first, str) and "=" not in first and len(first) % 4 == 0 \
                and len(set(map(type, rows))) == 1 and len(set(map(len, rows))) == 1:
            # Rows of unpadded base64 (a width whose bytes divide by 3, such as 384 or 1536
            # floats) concatenate into valid base64: one decode, and the rows are equal slices
            # of it, so no per-row copies. (All of one type, the first's, and one length.)
            joined = pybase64.b64decode("".join(rows), validate=True)
            width = len(joined) // n
        else:
            raw = [pybase64.b64decode(r, validate=True) for r in rows]
            width = len(raw[0]) if raw else 0
            if any(len(r) != width for r in raw):
                width = -1
            joined = b"".join(raw)
    except (binascii.Error, ValueError, TypeError):
        raise invalid_reply(config, "an embedding is not valid base64", reply) from None
    if not n or width <= 0 or width % 4:
        raise invalid_reply(config, "base64 embeddings of unequal or odd length", reply)
    return np.frombuffer(joined, dtype="<f4").reshape(n, -1).astype(np.float32)


def token_count(value: Any) -> int | None:
    """A usage figure if it is a positive integer; None otherwise (absent, zero, or garbage:
    the router then estimates rather than bill nothing)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def dig(body: Any, *path: str) -> Any:
    """``body[p0][p1]...`` through nested objects, None where any step is missing."""
    for key in path:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def invalid_reply(config: ProviderConfig, why: str, reply: HttpReply | None = None
                  ) -> AttemptFailure:
    raw = None if reply is None else redact(reply.body.decode("utf-8", errors="replace"),
                                            [config.api_key])
    return AttemptFailure(kind="invalid_reply", provider=config.shown_name,
                          message=f"invalid reply: {why}",
                          status=None if reply is None else reply.status, raw=raw)


def float_rows(rows: Sequence[Any], config: ProviderConfig, reply: HttpReply) -> np.ndarray:
    """A list of equal-length numeric lists as float32, or an invalid reply."""
    try:
        out = np.asarray(rows, dtype=np.float32)
    except (TypeError, ValueError):
        raise invalid_reply(config, "embeddings are not lists of numbers", reply) from None
    if out.ndim != 2 or out.shape[1] == 0:
        raise invalid_reply(config, "embeddings are not equal-length vectors", reply)
    return out


def texts(config: ProviderConfig, call: UpstreamCall) -> list[str]:
    """The call's inputs for an upstream that takes only text; token-id arrays are refused here
    (the router should only send them where an endpoint takes them natively)."""
    if all(isinstance(t, str) for t in call.inputs):
        return [str(t) for t in call.inputs]
    raise AttemptFailure(kind="bad_request", provider=config.shown_name,
                         message="this upstream takes text inputs only, not token ids")
