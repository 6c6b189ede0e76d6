"""Response compression: Accept-Encoding negotiation (RFC 9110 §12.5.3) and gzip.

Only gzip is offered: every HTTP client this project is tested with (httpx, so the openai SDK and
everything built on it; Node's fetch; curl --compressed) accepts it, and zlib is in the stdlib.
Figures behind the constants are in bench/README.md ("Response compression").
"""

from __future__ import annotations

import asyncio
import zlib

# Level 1: on 1,000 x 384 float JSON it keeps 44% of the bytes at 6-14x the speed of level 6,
# which saves only 5 points more; every level costs CPU on the cores that compute embeddings.
GZIP_LEVEL = 1
# Below about one packet's payload compression saves no round trip, only CPU.
MIN_BYTES = 1400
# zlib releases the GIL, so a worker thread keeps a large body (4.75 MB of float JSON takes
# 40-90 ms at level 1) from stalling the event loop; below this size (under 1 ms of work) it is
# done inline, sparing the request a thread hop.
THREAD_BYTES = 64 * 1024

_GZIP_WBITS = 31  # deflate inside the gzip wrapper (RFC 1952)
_ALIASES = {"x-gzip": "gzip"}
OFFERED = ("gzip",)  # in the server's order of preference


def accepted(header: str) -> dict[str, float]:
    """Codings named in an Accept-Encoding value, with their q-values (1 when absent).

    Elements that cannot be read (an unparsable q) are dropped rather than failing the request:
    the header is advisory, and identity is always a safe answer.
    """
    out: dict[str, float] = {}
    for element in header.split(","):
        name, *params = (p.strip() for p in element.split(";"))
        if not name:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    q = -1.0
        if q < 0:
            continue
        name = name.lower()
        out[_ALIASES.get(name, name)] = q
    return out


def choose(header: str | None) -> str | None:
    """The coding to send, or None for identity.

    No header means no compression (RFC 9110 allows any coding then, but a client that did not
    ask may not decode it). When nothing offered is acceptable the body goes out as identity even
    if the client refused identity too: a readable answer beats a 406 for an advisory header.
    """
    if not header:
        return None
    q = accepted(header)
    star = q.get("*")
    identity = q.get("identity", 1.0 if star is None else max(star, 0.001))
    best: str | None = None
    best_q = 0.0
    for coding in OFFERED:
        value = q.get(coding, star if star is not None else 0.0)
        if value > best_q:
            best, best_q = coding, value
    # On a tie the client is indifferent; the smaller body wins.
    return best if best is not None and best_q >= identity else None


def gzip_bytes(body: bytes, level: int = GZIP_LEVEL) -> bytes:
    """A complete gzip member (mtime 0, so equal bodies give equal bytes)."""
    return zlib.compress(body, level, wbits=_GZIP_WBITS)


async def encode(body: bytes, accept_encoding: str | None) -> tuple[bytes, str | None]:
    """The body to send and its content-coding (None: sent as is)."""
    if len(body) < MIN_BYTES:
        return body, None
    coding = choose(accept_encoding)
    if coding is None:
        return body, None
    if len(body) >= THREAD_BYTES:
        return await asyncio.to_thread(gzip_bytes, body), coding
    return gzip_bytes(body), coding
