"""The Redis backend, shared by every instance pointed at the same server.

One MGET per lookup and one pipelined batch of SET ... PX per write: a round trip each, whatever
the number of inputs. Redis's own ``maxmemory`` policy bounds its size; entries also expire
after the TTL. Timeouts are short: a Redis that hangs must cost one request a bounded wait, after
which the tier skips it for a while.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from embedrouter.cache.entry import CorruptEntry, Entry, decode, encode


class RedisBackend:
    name = "redis"

    def __init__(self, url: str, *, ttl_s: int, timeout_s: float, prefix: str) -> None:
        import redis.asyncio as aioredis  # only an instance that uses Redis pays the import

        self._client: Any = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            health_check_interval=30, retry_on_timeout=False)
        self._ttl_ms = ttl_s * 1000
        self._prefix = prefix.encode("utf-8")
        self.read_bytes = 0
        self.written_bytes = 0
        self.corrupt = 0

    async def get_many(self, keys: Sequence[bytes]) -> dict[bytes, Entry]:
        values = await self._client.mget([self._prefix + k for k in keys])
        found: dict[bytes, Entry] = {}
        for key, value in zip(keys, values, strict=True):
            if value is None:
                continue
            self.read_bytes += len(value)
            try:
                found[key] = decode(value)
            except CorruptEntry:
                self.corrupt += 1  # a miss; the next write of this input replaces it
                continue
        return found

    async def put_many(self, entries: Mapping[bytes, Entry]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for key, entry in entries.items():
            value = encode(entry)
            self.written_bytes += len(value)
            pipe.set(self._prefix + key, value, px=self._ttl_ms)
        await pipe.execute()

    def gauges(self) -> dict[str, float]:
        # What Redis holds is shared and bounded by Redis itself; what this instance moved is
        # what it can tell.
        return {"read_bytes_total": self.read_bytes, "written_bytes_total": self.written_bytes,
                "corrupt_total": self.corrupt}

    async def close(self) -> None:
        await self._client.aclose()
