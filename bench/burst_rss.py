"""Server RSS across bursts of concurrent requests, most of them cancelled mid-flight.

    python bench/burst_rss.py [--bursts 6] [--concurrency 200] [--cancel 0.8] [--json OUT]

Starts ``embedrouter serve`` (as bench/http_bench.py does; set MALLOC_ARENA_MAX or other
environment variables on this command to try them on the server) or uses ``--url``/``--key``/
``--pid`` of a running one. Each burst opens ``--concurrency`` connections at once; each sends one
request of 1-16 inputs mixing corpus sentences (8-128 tokens) with max-length texts (256 tokens),
and a ``--cancel`` share of them close their socket after a random 0-1.5 s, mid-flight. After
each burst the script waits ``--settle`` seconds and reads VmRSS/VmHWM of the server from
/proc/PID/status. Every loop is bounded (bursts, connections, a timeout per request).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import http_bench as hb  # sibling script, not a package

LONG_WORDS = 254  # "hello " x 254 + [CLS]/[SEP] = 256 tokens, the model's limit


def make_bodies(texts: list[str], n: int, rng: random.Random, long_share: float) -> list[bytes]:
    long_text = " ".join(["hello"] * LONG_WORDS)
    out = []
    for _ in range(n):
        k = rng.randint(1, 16)
        inputs = [long_text if rng.random() < long_share else rng.choice(texts) for _ in range(k)]
        out.append(json.dumps({"model": hb.MODEL, "input": inputs, "encoding_format": "base64"},
                              separators=(",", ":")).encode())
    return out


async def one(url: str, key: str, body: bytes, cancel_after: float | None,
              timeout: float) -> str:
    """One request on its own connection: its status, or 'cancelled' when we hung up first."""
    conn = hb.RawConnection(url, key)
    try:
        if cancel_after is None:
            status, _ = await asyncio.wait_for(conn.post(body), timeout)
            return str(status)
        try:
            status, _ = await asyncio.wait_for(conn.post(body), cancel_after)
            return str(status)
        except TimeoutError:
            return "cancelled"
    except (OSError, asyncio.IncompleteReadError) as exc:
        return type(exc).__name__
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


async def burst(url: str, key: str, bodies: list[bytes], rng: random.Random, cancel: float,
                timeout: float) -> Counter[str]:
    plans = [rng.uniform(0.0, 1.5) if rng.random() < cancel else None for _ in bodies]
    results = await asyncio.gather(*(one(url, key, b, c, timeout)
                                     for b, c in zip(bodies, plans, strict=True)))
    return Counter(results)


async def run(args: argparse.Namespace, url: str, key: str, pid: int) -> dict[str, Any]:
    rng = random.Random(args.seed)
    texts = hb.load_corpus()
    samples = [{"burst": 0, **hb.proc_memory_mb(pid)}]
    hb.log(f"idle: {samples[0]}")
    for i in range(1, args.bursts + 1):
        bodies = make_bodies(texts, args.concurrency, rng, args.long_share)
        t0 = time.perf_counter()
        counts = await burst(url, key, bodies, rng, args.cancel, args.timeout)
        took = time.perf_counter() - t0
        # Let the queue drain (cancelled work is dropped, the rest completes) before reading.
        await asyncio.sleep(args.settle)
        mem = hb.proc_memory_mb(pid)
        samples.append({"burst": i, "seconds": round(took, 2), "results": dict(counts), **mem})
        hb.log(f"burst {i}: {took:.1f} s {dict(counts)} VmRSS {mem['VmRSS']:.0f} MB "
               f"VmHWM {mem['VmHWM']:.0f} MB")
    rss = [s["VmRSS"] for s in samples[1:]]
    return {"samples": samples, "rss_after_bursts_mb": rss, "max_rss_mb": max(rss),
            "last_rss_mb": rss[-1], "vmhwm_mb": samples[-1]["VmHWM"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bursts", type=int, default=6)
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--cancel", type=float, default=0.8, help="share of requests cancelled")
    p.add_argument("--long-share", type=float, default=0.3,
                   help="share of inputs that are 256-token texts")
    p.add_argument("--settle", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--url", default=None)
    p.add_argument("--key", default=None)
    p.add_argument("--pid", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="embedrouter-burst-rss-"))
    server = None
    try:
        if args.url:
            if not (args.key and args.pid):
                p.error("--url needs --key and --pid")
            url, key, pid = args.url, args.key, args.pid
        else:
            # The first start builds the ONNX graph in the server process, which leaves its own
            # footprint; the measured server is a second start on the warm cache, as in use.
            server, key = hb.start_server(tmp / "data", tmp / "onnx")
            server.stop()
            if key is None:
                raise RuntimeError("no bootstrap key printed")
            server, _ = hb.start_server(tmp / "data", tmp / "onnx")
            url, pid = server.base_url, server.pid
        result = asyncio.run(run(args, url, key, pid))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    rss = result["rss_after_bursts_mb"]
    print(f"VmRSS after bursts (MB): {', '.join(f'{x:.0f}' for x in rss)}")
    print(f"max {result['max_rss_mb']:.0f} MB, last {result['last_rss_mb']:.0f} MB, "
          f"VmHWM {result['vmhwm_mb']:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
