"""CPU per request of the admission path itself, in process: ``Accounts.metered`` around a
stand-in for the router, at concurrency 32 (or ``--concurrency``) on one event loop (uvloop),
no HTTP.

    python bench/admission_cpu.py [--requests 10000] [--repeats 9] [--concurrency 32]
                                  [--modes off,noop,sqlite,pg]

  off     the stand-in alone (what every request costs without accounting here)
  noop    admission with in-process counters and a ledger flush that does nothing: the
          per-request Python of reserve, settle and the group-commit bookkeeping
  sqlite  the same with the real SQLite ledger (its child process; that process's CPU is not
          counted, only the event loop's side of it)
  pg      the PostgreSQL ledger and the Redis counters (the local servers, or
          EMBEDROUTER_BENCH_POSTGRES_URL / EMBEDROUTER_BENCH_REDIS_URL; a scratch schema and key
          prefix, removed afterwards); again only this process's CPU

Every request runs the full path of accounts_bench.py (enforced credits, a key limit with a
daily reset, key RPM/TPM). Prints, per mode, the minimum and median over repeats of the
loop's CPU microseconds per request: on a shared VM whose speed drifts, the minimum is the
steadiest figure for comparing two trees (run it with PYTHONPATH=<tree>/src for each).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import uvloop

from embedrouter.accounts.admission import Accounts
from embedrouter.accounts.counters import MemoryCounters
from embedrouter.api.encode import generation_id
from embedrouter.settings import AccountsConfig
from embedrouter.store import Store, open_store
from embedrouter.store.records import KeyRecord
from embedrouter.store.sqlite import open_sqlite
from embedrouter.types import Computed, EmbeddingResult, Quote, Usage

CONCURRENCY = 32
KEY = KeyRecord("a" * 64, "bench", False, False, 0, "sk-er-v1-bench", limit_nanos=10**15,
                limit_reset="daily", rpm=10**7, tpm=10**9)
QUOTE = Quote("bench/fixed", 12, Decimal("0.00000156"))
COMPUTED = Computed(QUOTE.tokens, QUOTE.cost, "fixed", "Bench")
VECTORS = np.zeros((1, 384), np.float32)


PG_URL = os.environ.get("EMBEDROUTER_BENCH_POSTGRES_URL",
                        "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("EMBEDROUTER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def _result() -> EmbeddingResult:
    return EmbeddingResult(VECTORS, "fixed", "Bench", Usage(12, 12, QUOTE.cost))


@contextlib.asynccontextmanager
async def scratch_store(kind: str) -> AsyncIterator[Store]:
    """A scratch store, closed and removed afterwards: ``pg``, the PostgreSQL store on a
    schema of its own; anything else, SQLite in a temporary directory."""
    if kind != "pg":
        with tempfile.TemporaryDirectory() as tmp:
            store = await open_sqlite(Path(tmp) / "bench.sqlite")
            try:
                yield store
            finally:
                await store.close()
        return
    import psycopg

    schema = f"er_cpu_{secrets.token_hex(4)}"
    async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as conn:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        store = await open_store(f"{PG_URL}?options=-csearch_path%3D{schema}")
        try:
            yield store
        finally:
            await store.close()
    finally:
        async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.asynccontextmanager
async def _accounts(mode: str) -> AsyncIterator[tuple[Store, Accounts]]:
    """The store and accounts of ``mode``, on scratch data removed afterwards."""
    if mode != "pg":
        async with scratch_store(mode) as store:
            yield store, Accounts(store, MemoryCounters(store),
                                  AccountsConfig(enforce_credits=True))
        return
    from redis import asyncio as aioredis

    from embedrouter.accounts.redis_counters import RedisCounters

    prefix = f"ercpu:{secrets.token_hex(4)}:"
    try:
        async with scratch_store(mode) as store:
            yield store, Accounts(store, RedisCounters(REDIS_URL, store, store, prefix=prefix),
                                  AccountsConfig(enforce_credits=True), reclaims=True)
    finally:
        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def one_round(mode: str, n: int, concurrency: int = CONCURRENCY) -> float:
    """Loop CPU microseconds per request for ``n`` requests in ``mode``, ``concurrency`` at
    a time."""
    async with _accounts(mode) as (store, accounts):
        await store.add_credits("bench", 10**15, 0, "bench")
        if mode == "noop":
            async def flush(rows: object) -> None:
                await asyncio.sleep(0)

            accounts.writer._flush = flush  # type: ignore[assignment]
        await accounts.start()

        async def embed(reserve: object, computed: object = None) -> EmbeddingResult:
            if reserve is not None:
                await reserve(QUOTE)  # type: ignore[operator]
            await asyncio.sleep(0)  # the provider call's one suspension
            if computed is not None:  # as a local model's batcher does, charged at computation
                computed(COMPUTED)  # type: ignore[operator]
            return _result()

        async def worker(count: int) -> None:
            for _ in range(count):
                if mode == "off":
                    generation_id()
                    await embed(None)
                else:
                    await accounts.metered(KEY, generation_id(), embed)

        started = time.process_time()
        await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
        cpu = time.process_time() - started
        await accounts.close()
    return cpu / (n // concurrency * concurrency) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--modes", default="off,noop,sqlite,pg")
    ap.add_argument("--concurrency", type=int, default=CONCURRENCY,
                    help="requests in flight (1: each request's round trips alone, as at "
                    "moderate load)")
    args = ap.parse_args()
    for mode in args.modes.split(","):
        runs = [uvloop.run(one_round(mode, args.requests, args.concurrency))
                for _ in range(args.repeats)]
        print(f"{mode:<7} loop CPU per request: min {min(runs):6.1f} us, "
              f"median {statistics.median(runs):6.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
