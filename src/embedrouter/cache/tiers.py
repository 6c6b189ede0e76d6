"""The backends in lookup order, each behind a breaker: a backend that fails is logged, counted
and skipped for ``retry_s``; the request goes on with the others (or uncached).

A hit in a lower tier is copied into the tiers above it, so the next lookup stops earlier. Every
entry is checked against the width the request expects before it is used: bytes that decode to
another width are a miss, never a vector.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from embedrouter.cache.backend import Backend, Counters
from embedrouter.cache.entry import Entry

log = logging.getLogger("embedrouter.cache")


def _describe(exc: BaseException) -> str:
    # Type and a bounded message: enough to act on; backend errors carry no credentials
    # (redis-py names host and port, never the URL's password).
    text = str(exc).replace("\n", " ")[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Tier:
    def __init__(self, backend: Backend, *, retry_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self.counters = Counters()
        self._retry_s = retry_s
        self._clock = clock
        self._down_until = 0.0

    @property
    def name(self) -> str:
        return self.backend.name

    def available(self) -> bool:
        if self._down_until and self._clock() < self._down_until:
            self.counters.skipped += 1
            return False
        return True

    def failed(self, op: str, exc: Exception) -> None:
        self.counters.errors += 1
        self._down_until = self._clock() + self._retry_s
        log.warning("vector cache backend %s failed to %s (%s); skipping it for %.1f s",
                    self.name, op, _describe(exc), self._retry_s)

    def succeeded(self) -> None:
        if self._down_until:
            log.info("vector cache backend %s is answering again", self.name)
            self._down_until = 0.0

    async def put(self, entries: Mapping[bytes, Entry]) -> None:
        if not entries or not self.available():
            return
        try:
            await self.backend.put_many(entries)
        except Exception as exc:
            self.failed("write", exc)
            return
        self.counters.writes += len(entries)
        self.succeeded()

    def stats(self) -> dict[str, float]:
        out: dict[str, float] = dict(self.counters.as_dict())
        for name, value in self.backend.gauges().items():
            out[name] = out.get(name, 0) + value
        return out


class Tiers:
    def __init__(self, tiers: Sequence[Tier]) -> None:
        self.tiers = list(tiers)

    async def get_many(self, keys: Sequence[bytes], width: int) -> dict[bytes, Entry]:
        found: dict[bytes, Entry] = {}
        wanted = list(keys)
        fills: list[tuple[Tier, dict[bytes, Entry]]] = []
        above: list[Tier] = []
        for tier in self.tiers:
            if not wanted:
                break
            if not tier.available():
                continue
            try:
                got = await tier.backend.get_many(wanted)
            except Exception as exc:
                tier.failed("read", exc)
                continue
            tier.succeeded()
            good = {k: e for k, e in got.items() if e.vector.shape == (width,)}
            tier.counters.corrupt += len(got) - len(good)
            tier.counters.hits += len(good)
            tier.counters.misses += len(wanted) - len(good)
            if good:
                found.update(good)
                fills.extend((upper, good) for upper in above)
                wanted = [k for k in wanted if k not in good]
            above.append(tier)
        if fills:
            await asyncio.gather(*(tier.put(entries) for tier, entries in fills))
        return found

    async def put_many(self, entries: Mapping[bytes, Entry]) -> None:
        if not entries:
            return
        if len(self.tiers) == 1:
            await self.tiers[0].put(entries)
            return
        await asyncio.gather(*(tier.put(entries) for tier in self.tiers))

    def stats(self) -> dict[str, dict[str, float]]:
        return {tier.name: tier.stats() for tier in self.tiers}

    async def close(self) -> None:
        for tier in self.tiers:
            try:
                await tier.backend.close()
            except Exception as exc:
                log.warning("closing vector cache backend %s: %s", tier.name, _describe(exc))
