"""Client CPU per EVALSHA: redis.asyncio (as RedisCounters configures it) against
``accounts/redis_wire.py``, on a claim-sized command (7 keys, 15 arguments, a 1-element array
back: one claim's call until the claims of an event-loop turn became one call, 2026-11-27), at
concurrency 1 and 32. This is the measurement that justifies the hand-written
client on the hot path (ARCHITECTURE.md: off the hot path, the well-kept library).

    python bench/redis_client_bench.py [--calls 20000] [--repeats 3]

CPU is this process's (``time.process_time``): the event loop's cost per call, which is what
the router pays; Redis's own time is in another process. Rounds are interleaved; medians shown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import timeit
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
from redis import asyncio as aioredis

from embedrouter.accounts.redis_wire import Script, ScriptClient, _pack_any, pack

REDIS_URL = os.environ.get("EMBEDROUTER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SOURCE = "return {1}"  # the call's cost is the client's, not the script's
KEYS = ["embedrouter:acct", "embedrouter:kw:0123456789abcdef:d20261126", "embedrouter:holds",
        "embedrouter:hold:gen-0123456789abcdef01234567", "embedrouter:rl:k:0123456789:29000000",
        "embedrouter:rl:m:0123456789:29000000", "embedrouter:rl:g:29000000"]
ARGS: list[Any] = [123456789, 1, 1000000000000, -1, 12, 1795669703000,
                   "gen-0123456789abcdef01234567", 1795669760000, 0, 30, 100000, -1, -1, 600,
                   1000000]


async def measure(call: Callable[[], Awaitable[Any]], calls: int, concurrency: int) -> float:
    """Microseconds of this process's CPU per call."""
    async def worker() -> None:
        for _ in range(calls // concurrency):
            assert await call() == [1]

    t0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return 1e6 * (time.process_time() - t0) / (calls // concurrency * concurrency)


def packing(repeats: int) -> None:
    """The claim's command packed by ``pack`` (ASCII names and ints: one str, encoded once)
    and by its general path (each argument encoded on its own), in-process, no Redis."""
    command = ["EVALSHA", Script(SOURCE).sha, len(KEYS), *KEYS, *ARGS]
    assert pack(command) == _pack_any(command)
    for name, fn in (("pack", pack), ("general path", _pack_any)):
        us = [t / 20000 * 1e6 for t in timeit.repeat(lambda f=fn: f(command), number=20000,
                                                      repeat=max(repeats, 3))]
        print(f"packing  {name:<14} {min(us):6.2f} us/command (min of {len(us)})")


async def main(calls: int, repeats: int) -> None:
    pool = aioredis.BlockingConnectionPool.from_url(
        REDIS_URL, max_connections=64, timeout=2.0, socket_timeout=2.0,
        socket_connect_timeout=2.0, decode_responses=True)
    redis_py = aioredis.Redis(connection_pool=pool)
    registered = redis_py.register_script(SOURCE)
    wire = ScriptClient(REDIS_URL, timeout_s=2.0)
    script = Script(SOURCE)
    clients: dict[str, Callable[[], Awaitable[Any]]] = {
        "redis.asyncio": lambda: registered(keys=KEYS, args=ARGS),
        "redis_wire": lambda: wire.evalsha(script, KEYS, ARGS),
    }
    try:
        for call in clients.values():  # warm: scripts loaded, connections open
            await measure(call, 1000, 32)
        for concurrency in (1, 32):
            samples: dict[str, list[float]] = {name: [] for name in clients}
            for _ in range(repeats):
                for name, call in clients.items():
                    samples[name].append(await measure(call, calls, concurrency))
            for name, us in samples.items():
                print(f"c={concurrency:<3} {name:<14} {statistics.median(us):6.1f} us CPU/call "
                      f"(rounds: {', '.join(f'{u:.1f}' for u in us)})")
    finally:
        await wire.close()
        await redis_py.aclose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    opts = ap.parse_args()
    packing(opts.repeats)
    uvloop.run(main(opts.calls, opts.repeats))
