"""Which HTTP server should run the app: uvicorn as shipped, uvicorn under embedrouter's guards
(timeouts, connection cap, JSON envelope on parse errors), or granian; measured in one run.
All three run the same ASGI app in one process on uvloop, launched the same way (not through
`embedrouter serve`, whose start-up differs in ways that are not the HTTP server's).

    python bench/server_compare.py [--rounds 3] [--short 300] [--load-s 8] [--json OUT]

Per round, each server in turn (the order rotates between rounds so that drift on a shared
machine does not favour one), on the same data dir, ONNX cache and key:

1. p50/p95 of a one-input embeddings request at concurrency 1 (``--short`` sequential
   requests after 30 of warm-up), on one keep-alive connection;
2. throughput at concurrency 32: 32 keep-alive connections each posting one-input requests for
   ``--load-s`` seconds; requests/s and p50/p95;
3. the same two for ``GET /health``, where no inference hides the HTTP server's own cost.

Then it probes, once per server, what each does with hostile clients: an idle socket (cut
within 15 s?), a header trickled at 2 bytes/s (cut within 15 s?) and four malformed requests
(what comes back). Medians over rounds are printed as a Markdown table.

The load client is http_bench.py's raw asyncio HTTP/1.1 client; it shares the machine's cores
with the server, so absolute figures are lower bounds. Compare columns from one run only.
granian must be installed (``pip install granian``); it is not a dependency of the project.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import http_bench as hb  # the sibling script; bench/ is not a package

MODEL = "sentence-transformers/all-minilm-l6-v2"
SHORT_BODY = json.dumps({"model": MODEL, "input": hb.SHORT}).encode()
VARIANTS = ("uvicorn-stock", "uvicorn-guarded", "granian")


class HealthConnection(hb.RawConnection):
    """GET /health on one keep-alive connection: no inference, so what is left is the HTTP
    server and the app's routing, the part that differs between the servers."""

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        return int(head[9:12]), await self.reader.readexactly(length)


def app_factory() -> Any:
    """granian's ``--factory`` target: the same ASGI app ``embedrouter serve`` runs."""
    from embedrouter.server import create_app
    from embedrouter.settings import load_settings

    return create_app(load_settings())


def _uvicorn(port: int, guarded: bool) -> None:
    """uvicorn as `embedrouter serve` runs it (uvloop, httptools, no ws), with its stock
    protocol or with embedrouter's guarded subclass at the default limits: the one difference
    between the two variants."""
    import uvicorn

    from embedrouter.httpserver import ConnectionLimits, protocol_class

    http: Any = protocol_class(ConnectionLimits()) if guarded else "httptools"
    uvicorn.run(app_factory(), host="127.0.0.1", port=port, loop="uvloop", http=http, ws="none",
                lifespan="on", access_log=False, log_level="warning", server_header=False,
                date_header=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(variant: str, data_dir: Path, cache_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDROUTER_")}
    env.update(EMBEDROUTER_DATA_DIR=str(data_dir), EMBEDROUTER_CACHE_DIR=str(cache_dir))
    here = str(Path(__file__).resolve().parent)
    if variant.startswith("uvicorn"):
        cmd = [sys.executable, "-c", f"import sys; sys.path.insert(0, {here!r}); "
               f"import server_compare as s; s._uvicorn({port}, {variant == 'uvicorn-guarded'})"]
    else:
        # One worker, one runtime thread, uvloop: the same single-process shape as uvicorn;
        # its header read timeout set to embedrouter's default (10 s) so the probes compare.
        cmd = [sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--runtime-threads", "1", "--loop", "uvloop", "--http", "1", "--no-ws",
               "--http1-header-read-timeout", "10000",
               "--log-level", "warning", "--working-dir", here, "server_compare:app_factory"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{variant} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b'"ok"' in s.recv(4096) + s.recv(4096):
                    return proc, port
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{variant} not ready in 120 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


async def measure(port: int, key: str, short_n: int, load_s: float,
                  paths: str = "both") -> dict[str, float]:
    base = f"http://127.0.0.1:{port}/api/v1"
    out: dict[str, float] = {}
    kinds = {"embeddings": [("", hb.RawConnection)], "health": [("health_", HealthConnection)]}
    for name, kind in kinds.get(paths, kinds["embeddings"] + kinds["health"]):
        out.update({f"{name}{k}": v for k, v in
                    (await _measure(kind, base, key, short_n, load_s)).items()})
    return out


async def _measure(kind: type[hb.RawConnection], base: str, key: str, short_n: int,
                   load_s: float) -> dict[str, float]:
    one = kind(base, key)
    lat = await hb.short_latency(one, SHORT_BODY, short_n, warmup=30)
    await one.close()

    conns = [kind(base, key) for _ in range(32)]
    await asyncio.gather(*(c.post(SHORT_BODY) for c in conns))
    latencies: list[float] = []
    end = time.perf_counter() + load_s

    async def worker(conn: hb.RawConnection) -> None:
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            status, data = await conn.post(SHORT_BODY)
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {data[:200]!r}")

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    wall = time.perf_counter() - started
    await asyncio.gather(*(c.close() for c in conns))
    return {"c1_p50_ms": hb.percentile(lat, 50) * 1e3, "c1_p95_ms": hb.percentile(lat, 95) * 1e3,
            "c32_rps": len(latencies) / wall,
            "c32_p50_ms": hb.percentile(latencies, 50) * 1e3,
            "c32_p95_ms": hb.percentile(latencies, 95) * 1e3}


def _cut_within(port: int, trickle: bytes, seconds: float) -> float | None:
    """Seconds until the server closed a connection that sends `trickle` at 2 bytes/s
    (nothing at all if empty); None if still open after `seconds`."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.settimeout(0.5)
        i = 0
        while time.monotonic() - started < seconds:
            if trickle:
                try:
                    s.sendall(trickle[i % len(trickle):i % len(trickle) + 1])
                except OSError:
                    return time.monotonic() - started
                i += 1
            try:
                data = s.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return time.monotonic() - started
            if not data or data.startswith(b"HTTP/"):
                return time.monotonic() - started
    return None


MALFORMED = {
    "bad_method": b"BREW /health HTTP/1.1\r\nHost: x\r\n\r\n",
    "negative_length": b"POST /api/v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "nul_in_header": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "tls_hello": bytes.fromhex("16030100c4010000c00303") + bytes(40),
}


def _answer(port: int, payload: bytes) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        s.settimeout(5)
        try:
            reply = s.recv(4096)
        except OSError as exc:
            return type(exc).__name__
    if not reply:
        return "closed, no response"
    head, _, body = reply.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1").removeprefix("HTTP/1.1 ")
    return f"{status} {body[:60].decode('latin-1')!r}"


def probes(port: int) -> dict[str, Any]:
    out: dict[str, Any] = {name: _answer(port, payload) for name, payload in MALFORMED.items()}
    out["idle_cut_s"] = _cut_within(port, b"", 15)
    out["slow_header_cut_s"] = _cut_within(port, b"GET /health HTTP/1.1\r\nX-a: " + b"a" * 60, 15)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--short", type=int, default=300)
    ap.add_argument("--load-s", type=float, default=8.0)
    ap.add_argument("--no-probes", action="store_true")
    ap.add_argument("--paths", choices=["both", "embeddings", "health"], default="both",
                    help="which requests to time (health alone isolates the HTTP server)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="er-server-compare-"))
    data_dir, cache_dir = tmp / "data", tmp / "onnx"
    try:
        out = subprocess.run([sys.executable, "-m", "embedrouter", "keys", "create", "--label",
                              "bench", "--data-dir", str(data_dir)], capture_output=True,
                             text=True, check=True, env={**os.environ,
                                                         "EMBEDROUTER_CACHE_DIR": str(cache_dir)})
        key = out.stdout.strip()
        results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        for r in range(args.rounds):
            order = VARIANTS[r % 3:] + VARIANTS[:r % 3]
            for variant in order:
                proc, port = start(variant, data_dir, cache_dir)
                try:
                    m = asyncio.run(measure(port, key, args.short, args.load_s, args.paths))
                finally:
                    stop(proc)
                hb.log(f"round {r + 1} {variant}: " + ", ".join(f"{k}={v:.2f}"
                                                                for k, v in m.items()))
                results[variant].append(m)
        probe: dict[str, Any] = {}
        if not args.no_probes:
            for variant in VARIANTS:
                proc, port = start(variant, data_dir, cache_dir)
                try:
                    probe[variant] = probes(port)
                finally:
                    stop(proc)
                hb.log(f"probe {variant}: {probe[variant]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    med = {v: {k: statistics.median(m[k] for m in ms) for k in ms[0]}
           for v, ms in results.items() if ms}
    if med:
        _print_timings(med, args.rounds)
    if probe:
        _print_probes(probe)
    if args.json:
        Path(args.json).write_text(json.dumps({"medians": med, "rounds": results,
                                               "probes": probe}, indent=2))
    return 0


def _print_timings(med: dict[str, dict[str, float]], rounds: int) -> None:
    print(f"\n{rounds} rounds, medians")
    if "c1_p50_ms" in next(iter(med.values())):
        print(f"\nPOST /embeddings, one input ({hb.SHORT!r})\n")
        print("| server | c=1 p50 ms | c=1 p95 ms | c=32 req/s | c=32 p50 ms | c=32 p95 ms |")
        print("|---|---:|---:|---:|---:|---:|")
        for v, m in med.items():
            print(f"| {v} | {m['c1_p50_ms']:.2f} | {m['c1_p95_ms']:.2f} | {m['c32_rps']:.0f} | "
                  f"{m['c32_p50_ms']:.1f} | {m['c32_p95_ms']:.1f} |")
    if "health_c1_p50_ms" not in next(iter(med.values())):
        return
    print("\nGET /health (no inference: the HTTP server's own cost)\n")
    print("| server | c=1 p50 ms | c=1 p95 ms | c=32 req/s | c=32 p50 ms | c=32 p95 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for v, m in med.items():
        print(f"| {v} | {m['health_c1_p50_ms']:.3f} | {m['health_c1_p95_ms']:.3f} | "
              f"{m['health_c32_rps']:.0f} | {m['health_c32_p50_ms']:.2f} | "
              f"{m['health_c32_p95_ms']:.2f} |")


def _print_probes(probe: dict[str, Any]) -> None:
    def fmt(x: float | None) -> str:
        return "never (15 s)" if x is None else f"{x:.1f} s"

    print("\n| server | idle socket cut after | 2 B/s header cut after |")
    print("|---|---|---|")
    for v, p in probe.items():
        print(f"| {v} | {fmt(p['idle_cut_s'])} | {fmt(p['slow_header_cut_s'])} |")
    print("\n| server | " + " | ".join(MALFORMED) + " |")
    print("|---|" + "---|" * len(MALFORMED))
    for v, p in probe.items():
        print(f"| {v} | " + " | ".join(re.sub(r"[|]", "/", p[k]) for k in MALFORMED) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
