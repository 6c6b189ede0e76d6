"""The event loop's CPU for one round trip to PostgreSQL or Redis, made alone, through the
clients the server uses: what each accounting round trip costs a request at moderate load,
where requests come one a loop turn and nothing is shared between them.

    python bench/roundtrip_cpu.py [--calls 3000] [--repeats 3]

  pg-pool-select   SELECT 1 through PostgresStore's pool (psycopg_pool + psycopg), as a key read
  pg-held-select   SELECT 1 on one connection held out of that pool
  pg-ledger-commit PostgresStore.record_generations of one row (autocommit, fsynced)
  redis-script     an EVALSHA of ``return 1`` through the server's own RESP client
  redis-py-ping    PING through redis.asyncio, for scale

Prints, per call kind, the loop's CPU (``time.process_time``) and the wall time a call,
minimum and median over repeats (uvloop, one call at a time; PostgreSQL and Redis on this
machine, or EMBEDROUTER_BENCH_POSTGRES_URL / EMBEDROUTER_BENCH_REDIS_URL; a scratch schema,
removed afterwards).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable

import uvloop
from admission_cpu import REDIS_URL, scratch_store  # sibling script, not a package
from redis import asyncio as aioredis

from embedrouter.accounts.redis_wire import Script, ScriptClient
from embedrouter.api.encode import generation_id
from embedrouter.store.records import GenerationRecord

Call = Callable[[], Awaitable[object]]


def _row() -> GenerationRecord:
    return GenerationRecord(id=generation_id(), key_hash="ab" * 32, model="bench/fixed",
                            upstream_model="fixed", provider="Bench", tokens=12,
                            cost_nanos=1560, created_ms=int(time.time() * 1000), latency_ms=1)


async def _time(call: Call, n: int) -> tuple[float, float]:
    for _ in range(min(200, n)):  # connections made, statements prepared
        await call()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        await call()
    return ((time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6)


async def measure(calls: int, repeats: int) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    async with scratch_store("pg") as store:
        pool = store._pool  # type: ignore[attr-defined]
        held = await pool.getconn()
        script_client = ScriptClient(REDIS_URL)
        script = Script("return 1")
        redis_py = aioredis.Redis.from_url(REDIS_URL)
        kinds: dict[str, Call] = {
            "pg-pool-select": lambda: store._one("SELECT 1"),  # type: ignore[attr-defined]
            "pg-held-select": lambda: held.execute("SELECT 1"),
            "pg-ledger-commit": lambda: store.record_generations([_row()]),
            "redis-script": lambda: script_client.evalsha(script, [], []),
            "redis-py-ping": lambda: redis_py.ping(),
        }
        try:
            for _ in range(repeats):
                for name, call in kinds.items():
                    out.setdefault(name, []).append(await _time(call, calls))
        finally:
            await pool.putconn(held)
            await script_client.close()
            await redis_py.aclose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    results = uvloop.run(measure(args.calls, args.repeats))
    print(f"{'call':<18} {'CPU us min':>10} {'median':>8} {'wall us min':>12} {'median':>8}")
    for name, runs in results.items():
        cpus, walls = [r[0] for r in runs], [r[1] for r in runs]
        print(f"{name:<18} {min(cpus):10.1f} {statistics.median(cpus):8.1f} "
              f"{min(walls):12.1f} {statistics.median(walls):8.1f}")


if __name__ == "__main__":
    main()
