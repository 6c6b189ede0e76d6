"""Hostile-input figures for issue 8 items 1 and 2, measured against a real server.

    python bench/hardening.py [--rounds 5]

1. A 15 MB text input (``"a " * 7_500_000``): time to its 400 over HTTP (median of 20), and the
   server's RSS idle, after those 20, and its peak (VmHWM).
2. ``/health`` latency, polled every 10 ms, at rest and while three 15 MB bodies of 3 million
   token ids are in flight (one array, then 30 arrays of 100k), ``--rounds`` times each: p50, p99
   and max over all polls of each phase. Target: p99 under 50 ms.

The load generator shares the 2 cores with the server, so figures are upper bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_bench import MODEL, percentile, proc_memory_mb, start_server


async def _post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post("/embeddings", content=body,
                             headers={"content-type": "application/json"})


async def huge_text(client: httpx.AsyncClient, pid: int) -> dict[str, Any]:
    body = orjson.dumps({"model": MODEL, "input": "a " * 7_500_000})
    await client.post("/embeddings", json={"model": MODEL, "input": "warm up"})
    idle = proc_memory_mb(pid)["VmRSS"]
    took = []
    for _ in range(20):
        started = time.perf_counter()
        resp = await _post(client, body)
        took.append((time.perf_counter() - started) * 1000)
        assert resp.status_code == 400, resp.text[:200]
    mem = proc_memory_mb(pid)
    return {"to_400_ms_p50": statistics.median(took), "to_400_ms_max": max(took),
            "rss_idle_mb": idle, "rss_after_mb": mem["VmRSS"], "rss_peak_mb": mem["VmHWM"]}


async def health_during(client: httpx.AsyncClient, probe: httpx.AsyncClient,
                        body: bytes | None, rounds: int) -> dict[str, float]:
    gaps: list[float] = []
    for _ in range(rounds):
        stop = asyncio.Event()

        async def poll(stop: asyncio.Event) -> None:
            while not stop.is_set():
                started = time.perf_counter()
                await probe.get("/health")
                gaps.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.01)

        poller = asyncio.create_task(poll(stop))
        if body is None:
            await asyncio.sleep(1.0)
        else:
            replies = await asyncio.gather(*[_post(client, body) for _ in range(3)])
            assert all(r.status_code == 400 for r in replies)
        stop.set()
        await poller
    return {"p50_ms": percentile(gaps, 50), "p99_ms": percentile(gaps, 99), "max_ms": max(gaps),
            "polls": len(gaps)}


async def bench(base_url: str, key: str, pid: int, rounds: int) -> dict[str, Any]:
    ids = list(range(1000, 10_000)) * 333
    bodies = {
        "rest": None,
        "3M ids, one array": orjson.dumps({"model": MODEL, "input": ids}),
        "3M ids, 30 arrays": orjson.dumps({"model": MODEL, "input": [
            ids[i:i + 100_000] for i in range(0, len(ids), 100_000)]}),
    }
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120) as client, \
            httpx.AsyncClient(base_url=base_url, timeout=120) as probe:
        out: dict[str, Any] = {"huge_text": await huge_text(client, pid)}
        for name, body in bodies.items():
            out[f"health: {name}"] = await health_during(client, probe, body, rounds)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server, key = start_server(Path(tmp) / "data", Path(tmp) / "onnx")
        try:
            assert key is not None
            results = asyncio.run(bench(server.base_url, key, server.pid, args.rounds))
        finally:
            server.stop()
    for name, values in results.items():
        print(f"{name:24} " + "  ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in values.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
