"""CPU per upstream call: embedrouter's pooled client against aiohttp's, in one run.

    python bench/http_client_bench.py [--calls 20000] [--concurrency 32] [--repeats 3]

Both clients POST the same 1-input embeddings body to the minimal upstream of proxy_bench.py
(its own process, fixed base64 vectors) over keep-alive connections, ``--concurrency`` calls at a
time, on uvloop. Reported per client: calls/s and the client process's CPU per call (user +
system, from os.times), medians over ``--repeats`` interleaved rounds. The CPU per call is what
matters to the router: at concurrency 32 its event loop is CPU-bound, so every microsecond the
client spends is one the router cannot spend serving. This is the benchmark behind
providers/http.py's choice of a hand-written client over aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proxy_bench as pb

from embedrouter.providers.http import HttpClient

BODY = orjson.dumps(pb.BODIES["1 input"])
HEADERS = {"authorization": "Bearer sk-bench"}


async def run_ours(url: str, calls: int, conc: int) -> None:
    client = HttpClient()
    left = calls

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            reply = await client.post(url, headers=HEADERS, body=BODY, timeout=30,
                                      provider="bench")
            assert reply.status == 200 and reply.body

    await asyncio.gather(*(worker() for _ in range(conc)))
    await client.close()


async def run_aiohttp(url: str, calls: int, conc: int) -> None:
    # As providers/http.py configured it before this client replaced it.
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=300),
                                    skip_auto_headers=("User-Agent",))
    left = calls
    headers = {**HEADERS, "content-type": "application/json", "user-agent": "embedrouter"}

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            async with session.post(url, data=BODY, headers=headers,
                                    timeout=aiohttp.ClientTimeout(total=30)) as resp:
                body = await resp.read()
                assert resp.status == 200 and body
                {k.lower(): v for k, v in resp.headers.items()}

    await asyncio.gather(*(worker() for _ in range(conc)))
    await session.close()


CLIENTS = {"embedrouter HttpClient": run_ours, "aiohttp ClientSession": run_aiohttp}


def measure(name: str, url: str, calls: int, conc: int) -> tuple[float, float]:
    """(calls/s, CPU microseconds per call) for one pass."""
    t0, c0 = time.perf_counter(), os.times()
    uvloop.run(CLIENTS[name](url, calls, conc))
    t1, c1 = time.perf_counter(), os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return calls / (t1 - t0), cpu / calls * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        port = pb.free_port()
        (tmp / "up.py").write_text(pb.UPSTREAM)
        upstream = pb.spawn([sys.executable, str(tmp / "up.py"), str(port)])
        url = f"http://127.0.0.1:{port}/v1/embeddings"
        try:
            pb.wait_http(url)
            for name in CLIENTS:  # warm-up: imports, first connections
                measure(name, url, 500, args.concurrency)
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in CLIENTS}
            for r in range(args.repeats):
                for name in CLIENTS:
                    rate, cpu = measure(name, url, args.calls, args.concurrency)
                    results[name].append((rate, cpu))
                    print(f"[round {r + 1}] {name:24} {rate:8.0f} calls/s  {cpu:6.1f} us CPU/call",
                          flush=True)
        finally:
            pb.stop(upstream)
    print("\n| client | calls/s (median) | CPU us per call (median) | runs (us) |")
    print("|---|---:|---:|---|")
    for name, runs in results.items():
        rate = statistics.median(x[0] for x in runs)
        cpu = statistics.median(x[1] for x in runs)
        print(f"| {name} | {rate:.0f} | {cpu:.1f} | {', '.join(f'{x[1]:.0f}' for x in runs)} |")
    ours = statistics.median(x[1] for x in results["embedrouter HttpClient"])
    theirs = statistics.median(x[1] for x in results["aiohttp ClientSession"])
    print(f"\naiohttp costs {theirs / ours:.2f}x this client's CPU per call")


if __name__ == "__main__":
    main()
