"""The vector cache: a request of 32 inputs fully cached against the same request uncached, on
the local model and on the fake remote upstream, in one run.

    python bench/cache_bench.py [--repeats 3] [--redis redis://127.0.0.1:6379/0] [--json OUT]

Two servers, one after the other, each with the local model and a remote model served by the
fake upstream (tests/support/fake_upstreams.py, in this process):

* ``redis``: Redis as the only tier (memory and SQLite off), so every cached request is served
  from Redis; the issue's targets are measured here.
* ``default``: the shipped tiers (memory + SQLite), plus Redis.

Per server and round, interleaved so a slow spell on the machine hits every pass: for each model,
the 32-input request fully cached and uncached (``Cache-Control: no-store``, exactly today's
path), at concurrency 1 (p50/p95 latency) and concurrency 8 (inputs/s). Medians over
``--repeats`` rounds; the cached/uncached throughput ratio per model; PASS/FAIL against:
cached p50 <= 2 ms over HTTP with Redis, and cached >= 20x the uncached local throughput.
The cached rows are checked bit for bit against the uncached ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fake: tests/support

import http_bench as hb  # a sibling script, not a package
from tests.support.fake_upstreams import API_KEY, FakeUpstreams

LOCAL = "sentence-transformers/all-minilm-l6-v2"
REMOTE = "acme/fake-remote"
INPUTS = 32
TARGET_P50_MS = 2.0
TARGET_SPEEDUP = 20.0


class HeaderConnection(hb.RawConnection):
    """The raw keep-alive client, with extra request headers."""

    def __init__(self, base_url: str, key: str, headers: dict[str, str]) -> None:
        # The base class sends no-store unless told otherwise: here the headers decide.
        super().__init__(base_url, key, cache_control="")
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
        self.head = self.head.replace(b"Content-Length: ", extra + b"Content-Length: ")


def config_text(fake: FakeUpstreams, redis_url: str, tiers: str) -> str:
    only_redis = tiers == "redis"
    return f"""
[cache]
memory = {str(not only_redis).lower()}
sqlite = {str(not only_redis).lower()}
redis_url = "{redis_url}"
redis_prefix = "embedrouter-bench:{time.time_ns()}:"

[[providers]]
name = "fake"
kind = "openai"
base_url = "{fake.base_url('openai')}"
api_key_env = "CACHE_BENCH_FAKE_KEY"

[[models]]
slug = "{REMOTE}"
dimensions = 384
context_length = 512
  [[models.endpoints]]
  provider = "fake"
  upstream_model = "fake-embed"
"""


def cache_header(base_url: str, key: str, payload: bytes) -> str | None:
    request = urllib.request.Request(
        f"{base_url}/embeddings", data=payload, method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.headers.get("x-embedrouter-cache")


def body(model: str, texts: list[str]) -> bytes:
    return json.dumps({"model": model, "input": texts, "encoding_format": "base64"},
                      separators=(",", ":")).encode()


async def latency(conn: Any, payload: bytes, n: int) -> list[float]:
    return await hb.short_latency(conn, payload, n, warmup=max(1, n // 10))


async def throughput(conns: list[Any], payload: bytes, n: int) -> float:
    result = await hb.run_load(conns, [(payload, INPUTS)] * n)
    return result.rate


async def measure_server(tiers: str, args: argparse.Namespace, fake: FakeUpstreams,
                         texts: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"cache-bench-{tiers}-") as tmp:
        data = Path(tmp)
        config = data / "embedrouter.toml"
        config.write_text(config_text(fake, args.redis, tiers))
        server, key = hb.start_server(data, args.onnx_cache, config=config)
        assert key is not None
        try:
            return await _measure(server, key, tiers, args, texts)
        finally:
            server.stop()


async def _measure(server: hb.Server, key: str, tiers: str, args: argparse.Namespace,
                   texts: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    headers = {"cached": {}, "uncached": {"Cache-Control": "no-store"}}
    for model in (LOCAL, REMOTE):
        payload = body(model, texts)
        one = {kind: HeaderConnection(server.base_url, key, h) for kind, h in headers.items()}
        status, filled = await one["cached"].post(payload)  # fills the cache
        _, again = await one["cached"].post(payload)
        _, plain = await one["uncached"].post(payload)
        if status != 200:
            raise RuntimeError(filled[:300])
        # The cached pass must really be answered by the cache (a client that sent no-store
        # once made this bench compare uncached with uncached).
        if cache_header(server.base_url, key, payload) != "hit":
            raise RuntimeError(f"{tiers} {model}: a repeated request was not a cache hit")
        rows = [json.loads(x)["data"] for x in (filled, again, plain)]
        identical = rows[0] == rows[1] == rows[2]
        many = {kind: [HeaderConnection(server.base_url, key, h) for _ in range(8)]
                for kind, h in headers.items()}
        for conns in many.values():
            await asyncio.gather(*(c.post(payload) for c in conns))
        runs: dict[str, dict[str, list[float]]] = {
            k: {"p50": [], "p95": [], "rate": []} for k in headers}
        for r in range(args.repeats):
            for kind in headers:
                n_lat = args.cached_n if kind == "cached" else args.uncached_n
                lat = await latency(one[kind], payload, n_lat)
                rate = await throughput(many[kind], payload, n_lat)
                runs[kind]["p50"].append(hb.percentile(lat, 50) * 1e3)
                runs[kind]["p95"].append(hb.percentile(lat, 95) * 1e3)
                runs[kind]["rate"].append(rate)
                hb.log(f"{tiers} {model} {kind} round {r + 1}: p50 "
                       f"{runs[kind]['p50'][-1]:.2f} ms, {rate:.0f} inputs/s")
        for conns in many.values():
            await hb.close_conns(conns)
        await hb.close_conns(list(one.values()))
        out[model] = {"identical": identical, "runs": runs,
                      **{f"{k}_{m}": statistics.median(v[m]) for k, v in runs.items()
                         for m in ("p50", "p95", "rate")}}
        out[model]["speedup"] = out[model]["cached_rate"] / out[model]["uncached_rate"]
    return out


def report(results: dict[str, Any]) -> str:
    lines = ["| tiers | model | request | p50 ms | p95 ms | inputs/s (c=8) | runs p50 ms | "
             "cached / uncached | rows identical |",
             "|---|---|---|---:|---:|---:|---|---:|---|"]
    for tiers, per_model in results["servers"].items():
        for model, r in per_model.items():
            name = "local" if model == LOCAL else "fake remote"
            for kind in ("cached", "uncached"):
                ratio = f"{r['speedup']:.1f}x" if kind == "cached" else ""
                runs = ", ".join(f"{x:.2f}" for x in r["runs"][kind]["p50"])
                lines.append(f"| {tiers} | {name} | {kind} | {r[f'{kind}_p50']:.2f} | "
                             f"{r[f'{kind}_p95']:.2f} | {r[f'{kind}_rate']:.0f} | {runs} | "
                             f"{ratio} | {'yes' if r['identical'] else 'NO'} |")
    return "\n".join(lines)


def evaluate(results: dict[str, Any]) -> list[str]:
    redis_local = results["servers"]["redis"][LOCAL]
    redis_remote = results["servers"]["redis"][REMOTE]
    p50 = max(redis_local["cached_p50"], redis_remote["cached_p50"])
    checks = [
        (f"fully cached 32-input p50 over HTTP with Redis: {p50:.2f} ms (target <= "
         f"{TARGET_P50_MS} ms)", p50 <= TARGET_P50_MS),
        (f"cached / uncached local throughput: {redis_local['speedup']:.1f}x (target >= "
         f"{TARGET_SPEEDUP}x)", redis_local["speedup"] >= TARGET_SPEEDUP),
        ("cached rows bit-identical to uncached", all(
            r["identical"] for per in results["servers"].values() for r in per.values())),
    ]
    return [f"{'PASS' if ok else 'FAIL'}: {text}" for text, ok in checks]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cached-n", type=int, default=300, help="requests per cached pass")
    p.add_argument("--uncached-n", type=int, default=24, help="requests per uncached pass")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--onnx-cache", type=Path, default=Path(".embedrouter/onnx"))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    texts = hb.load_corpus()[:INPUTS]
    os.environ["CACHE_BENCH_FAKE_KEY"] = API_KEY  # the servers inherit it
    fake = FakeUpstreams(default_dim=384).start()
    try:
        results = {"servers": {tiers: asyncio.run(measure_server(tiers, args, fake, texts))
                               for tiers in ("redis", "default")}}
    finally:
        fake.stop()
    print(report(results))
    verdicts = evaluate(results)
    print("\n".join(verdicts))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(v.startswith("PASS") for v in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
