"""Admission over a real store and real counters, per backend, with a clock the test moves.

``sqlite``: SQLite + in-process counters (one instance). ``pg+redis``: PostgreSQL in a scratch
schema + Redis under a scratch prefix (the shared mode). The "router" here is test code standing
in for the seam admission wraps: it calls ``reserve`` with a quote, then reports whether it got
as far as the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

import numpy as np

from embedrouter.accounts import KeyService
from embedrouter.accounts.admission import Accounts
from embedrouter.accounts.counters import MemoryCounters
from embedrouter.accounts.redis_counters import RedisCounters
from embedrouter.settings import AccountsConfig
from embedrouter.store import KeyRecord, Store, open_store
from embedrouter.types import Computed, EmbeddingResult, OnComputed, Quote, Reserve, Usage
from tests.store.backends import scratch_postgres
from tests.support.redis_scratch import REDIS_URL, scratch_prefix

BACKENDS = ["sqlite", "pg+redis"]
MODEL = "acme/model"


@dataclass
class Clock:
    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    store: Store
    accounts: Accounts
    keys: KeyService
    clock: Clock
    provider_calls: int = 0

    async def key(self, **limits: object) -> KeyRecord:
        _, rec = await self.keys.create("test")
        if limits:
            updated = await self.store.update_key(rec.key_hash, dict(limits))
            assert updated is not None
            rec = updated
        return rec

    async def embed(self, key: KeyRecord, gen_id: str, *, tokens: int = 10,
                    price: Decimal = Decimal(1000), actual_tokens: int | None = None,
                    fail: bool = False, model: str = MODEL, at_compute: bool = False,
                    fail_after_compute: bool = False,
                    compute_s: float = 0.0) -> EmbeddingResult:
        """One request quoting ``tokens`` at ``price`` USD per million tokens. ``at_compute``:
        charged the way a local model's request is, through the computed hook (then
        ``fail_after_compute`` fails it after that). ``compute_s``: the clock moves on by
        that much between the reservation and the provider's answer."""

        async def run(reserve: Reserve, computed: OnComputed) -> EmbeddingResult:
            quote = Quote(model=model, tokens=tokens, cost=price * tokens / 1_000_000)
            await reserve(quote)
            self.provider_calls += 1  # past admission: a provider would be called now
            if fail:
                raise RuntimeError("upstream failed")
            used = tokens if actual_tokens is None else actual_tokens
            cost = price * used / 1_000_000
            self.clock.now += compute_s
            if at_compute:
                computed(Computed(used, cost, "up", "Fake"))
                await asyncio.sleep(0)  # the batcher's callers wake after its callbacks
                if fail_after_compute:
                    raise RuntimeError("failed after the vectors were computed")
            return EmbeddingResult(vectors=np.zeros((1, 2), np.float32), model="up",
                                   provider="Fake", usage=Usage(used, used, cost=cost))

        return await self.accounts.metered(key, gen_id, run)


@contextlib.asynccontextmanager
async def make_env(backend: str, tmp_path: Path, config: AccountsConfig) -> AsyncIterator[Env]:
    clock = Clock()
    async with contextlib.AsyncExitStack() as stack:
        if backend == "sqlite":
            store = await open_store(f"sqlite:///{tmp_path / 'er.db'}")
            counters: object = MemoryCounters(store)
        else:
            url = await stack.enter_async_context(scratch_postgres())
            prefix = stack.enter_context(scratch_prefix())
            store = await open_store(url)
            counters = RedisCounters(REDIS_URL, store, store, prefix=prefix)
        accounts = Accounts(store, counters, config,  # type: ignore[arg-type]
                            reclaims=backend != "sqlite", clock=clock)
        await accounts.start()
        try:
            yield Env(store, accounts, KeyService(store), clock)
        finally:
            await accounts.close()
            await store.close()


def enforced(**kw: object) -> AccountsConfig:
    return replace(AccountsConfig(enforce_credits=True), **kw)  # type: ignore[arg-type]
