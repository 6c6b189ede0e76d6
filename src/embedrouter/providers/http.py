"""The pooled HTTP client every remote adapter sends through.

aiohttp rather than httpx: on the forwarding benchmark of the routing issue the floor proxy is
aiohttp, and httpx's async client costs several times more per call (to be re-measured by
bench/proxy_bench.py). Transport failures become ``AttemptFailure`` here, so adapters only ever
see an HTTP reply or a canonical failure.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from embedrouter.providers.upstream import AttemptFailure, HttpReply


class AiohttpClient:
    """One connection pool for all upstreams; created inside the running event loop."""

    def __init__(self, *, limit: int = 256) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def post(self, url: str, *, headers: Mapping[str, str], body: bytes,
                   timeout: float, provider: str) -> HttpReply:
        session = self._open()
        try:
            async with session.post(url, data=body, headers={**headers,
                                                             "content-type": "application/json",
                                                             "user-agent": "embedrouter"},
                                    timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                payload = await resp.read()
                return HttpReply(resp.status, {k.lower(): v for k, v in resp.headers.items()},
                                 payload)
        except TimeoutError:
            raise AttemptFailure(kind="timeout", provider=provider,
                                 message=f"no reply within {timeout:g} s") from None
        except aiohttp.ClientError as exc:
            # The exception text names the host and port only, never our headers.
            raise AttemptFailure(kind="connection", provider=provider,
                                 message=f"connection failed: {type(exc).__name__}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
