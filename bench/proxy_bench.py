"""Forwarding overhead: direct to an upstream, through the thinnest Python proxy, through
embedrouter and through the LiteLLM proxy, with the same bodies, in one run.

    python bench/proxy_bench.py [--duration 10] [--repeats 3] [--litellm PATH/TO/litellm]

The upstream is a minimal OpenAI-format server on 127.0.0.1 that answers fixed vectors (it parses
the body only to count the inputs). The floor is a raw ASGI app on uvicorn that forwards the body
untouched with a pooled aiohttp session. embedrouter runs `serve` with one remote provider of kind
"openai" pointing at the upstream. LiteLLM runs `litellm --config` with one worker, no database,
as environment-notes.md describes; it is skipped when no `litellm` executable is given or found.

Load: wrk (one thread) with a Lua script per body (1 input, 32 inputs), concurrency 1 and 32.
Reported: p50 latency and requests/s, medians over --repeats; overhead = p50 - direct p50.
Every process shares the machine's 2 cores with wrk, so compare within one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

MODEL = "bench/fixed"
# encoding_format base64: what the OpenAI SDKs send by default, and what the upstream answers.
BODIES = {
    "1 input": {"model": MODEL, "input": "How do I set a timeout on sockets?",
                "encoding_format": "base64"},
    "32 inputs": {"model": MODEL, "input": [f"sentence number {i} of the batch" for i in
                                              range(32)], "encoding_format": "base64"},
}

UPSTREAM = textwrap.dedent('''
    import asyncio, base64, sys
    import numpy as np, orjson, uvloop
    from aiohttp import web
    vec = base64.b64encode(np.full(384, 0.05, dtype="<f4").tobytes()).decode()
    cache = {}
    def reply(n):
        if n not in cache:
            cache[n] = orjson.dumps({"object": "list", "model": "fixed",
                "data": [{"object": "embedding", "index": i, "embedding": vec} for i in range(n)],
                "usage": {"prompt_tokens": 8 * n, "total_tokens": 8 * n}})
        return cache[n]
    async def embeddings(request):
        body = orjson.loads(await request.read())
        n = 1 if isinstance(body["input"], str) else len(body["input"])
        return web.Response(body=reply(n), content_type="application/json")
    app = web.Application()
    app.router.add_post("/v1/embeddings", embeddings)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
''')

FLOOR = textwrap.dedent('''
    import sys, aiohttp, uvicorn
    UP = sys.argv[2]
    session = None
    async def app(scope, receive, send):
        global session
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                if m["type"] == "lifespan.startup":
                    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        chunks = []
        while True:
            m = await receive()
            chunks.append(m.get("body", b""))
            if not m.get("more_body"):
                break
        async with session.post(UP, data=b"".join(chunks),
                                headers={"content-type": "application/json"}) as r:
            data = await r.read()
            status = r.status
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
                access_log=False, log_level="warning")
''')

LUA = '''wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
wrk.body = [[%s]]
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120.0, method: str = "GET",
              headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method=method,
                                                          headers=headers or {}), timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def spawn(cmd: list[str], **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, **kw)  # type: ignore[call-overload]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def wrk(url: str, key: str, body: dict, conns: int, duration: int, tmp: Path) -> dict[str, float]:
    script = tmp / "post.lua"
    script.write_text(LUA % (key, json.dumps(body)))
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s",
                          str(script), url], capture_output=True, text=True, timeout=duration + 60)
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    m = re.search(r"50%\s+([\d.]+)(us|ms|s)", text)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p50 = float(m.group(1)) * scale[m.group(2)] if m else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return {"rps": rps, "p50_ms": p50, "errors": float(non2xx.group(1)) if non2xx else 0.0}


def remote_model_toml(upstream: str, slug: str, price: str | None = None) -> str:
    """One OpenAI-format provider at ``upstream`` (key from BENCH_UPSTREAM_KEY) serving the
    384-wide fixed-vector model ``slug``: the remote model every proxy-path bench uses."""
    priced = f'\n  price_per_million = "{price}"' if price is not None else ""
    return textwrap.dedent(f'''
        [[providers]]
        name = "up"
        kind = "openai"
        base_url = "{upstream}"
        api_key_env = "BENCH_UPSTREAM_KEY"
        max_concurrency = 256
        [[models]]
        slug = "{slug}"
        dimensions = 384
        context_length = 8192
          [[models.endpoints]]
          provider = "up"
          upstream_model = "fixed"''') + priced + "\n"


def start_embedrouter(tmp: Path, upstream: str, port: int) -> tuple[subprocess.Popen[bytes], str]:
    config = tmp / "embedrouter.toml"
    config.write_text(textwrap.dedent(f'''
        [server]
        port = {port}
        [default_model]
        enabled = false
        # Every request here repeats one body: with the vector cache on, all but the first would
        # be answered without the upstream. This measures forwarding; bench/cache_bench.py
        # measures the cache.
        [cache]
        enabled = false
    ''') + remote_model_toml(upstream, MODEL))
    env = {**os.environ, "BENCH_UPSTREAM_KEY": "sk-bench", "EMBEDROUTER_DATA_DIR": str(tmp / "d")}
    key = subprocess.run([sys.executable, "-m", "embedrouter", "keys", "create", "--label",
                          "bench", "--config", str(config)], env=env, capture_output=True,
                         text=True, check=True).stdout.strip().splitlines()[-1]
    proc = spawn([sys.executable, "-m", "embedrouter", "serve", "--config", str(config)],
                 env=env)
    return proc, key


def start_litellm(exe: str, tmp: Path, upstream: str, port: int) -> subprocess.Popen[bytes]:
    config = tmp / "litellm.yaml"
    config.write_text(textwrap.dedent(f'''
        model_list:
          - model_name: {MODEL}
            litellm_params:
              model: openai/fixed
              api_base: {upstream}
              api_key: sk-bench
        litellm_settings:
          telemetry: false
          turn_off_message_logging: true
          drop_params: true
        general_settings:
          disable_spend_logs: true
    '''))
    env = {**os.environ, "LITELLM_MASTER_KEY": "sk-litellm", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return spawn([exe, "--config", str(config), "--port", str(port), "--num_workers", "1"],
                 env=env)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--litellm", default=shutil.which("litellm"))
    args = p.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        ports = {name: free_port() for name in ("upstream", "floor", "embedrouter", "litellm")}
        up = f"http://127.0.0.1:{ports['upstream']}/v1"
        procs = [spawn([sys.executable, "-c", UPSTREAM, str(ports["upstream"])]),
                 spawn([sys.executable, "-c", FLOOR, str(ports["floor"]), f"{up}/embeddings"])]
        er, key = start_embedrouter(tmp, up, ports["embedrouter"])
        procs.append(er)
        targets = {"direct": (f"{up}/embeddings", "x"),
                   "floor proxy": (f"http://127.0.0.1:{ports['floor']}/", "x"),
                   "embedrouter": (f"http://127.0.0.1:{ports['embedrouter']}/api/v1/embeddings",
                                   key)}
        if args.litellm:
            procs.append(start_litellm(args.litellm, tmp, up, ports["litellm"]))
            targets["litellm"] = (f"http://127.0.0.1:{ports['litellm']}/embeddings",
                                  "sk-litellm")
        try:
            wait_http(f"http://127.0.0.1:{ports['upstream']}/", 30)
            wait_http(f"http://127.0.0.1:{ports['floor']}/", 30, method="POST")
            wait_http(f"http://127.0.0.1:{ports['embedrouter']}/health", 120)
            if args.litellm:
                wait_http(f"http://127.0.0.1:{ports['litellm']}/health/liveliness", 180)
            results: dict[str, dict[str, list[dict[str, float]]]] = {}
            for rnd in range(args.repeats):
                for body_name, body in BODIES.items():
                    for conns in (1, 32):
                        for name, (url, k) in targets.items():
                            got = wrk(url, k, body, conns, args.duration, tmp)
                            results.setdefault(name, {}).setdefault(
                                f"{body_name} c={conns}", []).append(got)
                            print(f"[round {rnd + 1}] {name:12} {body_name:9} c={conns:<2} "
                                  f"{got['rps']:8.0f} req/s  p50 {got['p50_ms']:7.2f} ms  "
                                  f"non-2xx {got['errors']:.0f}", flush=True)
        finally:
            for proc in procs:
                stop(proc)
    report(results)
    return 0


def report(results: dict[str, dict[str, list[dict[str, float]]]]) -> None:
    def med(name: str, case: str, field: str) -> float:
        return statistics.median(r[field] for r in results[name][case])

    print("\n| case | system | req/s | p50 ms | overhead p50 ms | vs floor | vs LiteLLM |")
    print("|---|---|---|---|---|---|---|")
    for case in results["direct"]:
        direct = med("direct", case, "p50_ms")
        for name in results:
            rps = med(name, case, "rps")
            floor = rps / med("floor proxy", case, "rps")
            lite = (f"{rps / med('litellm', case, 'rps'):.1f}x" if "litellm" in results
                    else "n/a")
            print(f"| {case} | {name} | {rps:.0f} | {med(name, case, 'p50_ms'):.2f} | "
                  f"{med(name, case, 'p50_ms') - direct:+.2f} | {floor:.2f}x | {lite} |")


if __name__ == "__main__":
    raise SystemExit(main())
