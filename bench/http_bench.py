"""End-to-end benchmark: the embedrouter server over HTTP vs the in-process engine vs
sentence-transformers, on bench/corpus.jsonl, in one run.

    python bench/http_bench.py [--repeats 3] [--quick] [--json OUT] [--client raw|httpx]

What it does, in order:

1. Starts ``python -m embedrouter serve --port 0`` in a fresh temp data dir with an ONNX cache dir
   under the same temp dir. The first start builds the graph (timed, reported as "cold"); then
   the server is restarted ``--repeats`` times and the time from process spawn to the
   ``embedrouter ready on`` log line is measured with the warm cache (the last of these servers
   takes the load).
2. Per round (``--repeats`` rounds, medians reported): HTTP load over the whole corpus with request
   sizes of 1-16 inputs drawn from a seeded RNG, at concurrency 1, 8 and 32 with
   ``encoding_format=base64`` (the OpenAI SDK's default), plus float at 32 and the other HTTP
   client at 32; then the in-process engine (``LocalModel.embed``, batch 32) and, when it is
   importable, sentence-transformers fp32 (batch 32, normalized) on the same corpus.
3. Single short input: p50/p95 over 300 sequential one-sentence requests after a warm-up.
4. Server VmRSS and VmHWM (peak) from /proc after the load.

Request bodies are encoded before the clock starts; each worker owns one keep-alive connection.
The client runs on the same machine as the server and shares its cores: with 2 cores, every
cycle the client spends is a cycle the server does not get, so the HTTP figures are a lower
bound of what a client on another machine would see. The default client is a minimal HTTP/1.1
client on asyncio streams (what is left is socket I/O); httpx.AsyncClient is measured beside it
at concurrency 32 so the cost of a real client library is visible.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "corpus.jsonl"
MODEL = "sentence-transformers/all-minilm-l6-v2"
SHORT = "How do I set a timeout on sockets?"
READY = re.compile(r"embedrouter ready on (http://\S+/api/v1)")
KEY_LINE = re.compile(r"inference key[^:]*: (sk-er-v1-[0-9a-f]+)")
# With stdout on a pipe the server writes its first-start keys to a file and logs the path.
KEYS_FILE_LINE = re.compile(r"bootstrap keys written to (\S+)")
ST_HINT = ("pip install torch==2.13.0 sentence-transformers  "
           "(CPU torch first; see bench/README.md)")

# Targets from the issue (2-core machine).
TARGET_VS_ENGINE = 0.9
TARGET_VS_ST = 1.2
TARGET_SHORT_P50_MS = 6.0
TARGET_RSS_MB = 500.0
TARGET_READY_S = 3.0


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def load_corpus(path: Path = CORPUS) -> list[str]:
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def plan_requests(n_texts: int, *, seed: int = 1234, low: int = 1, high: int = 16
                  ) -> list[tuple[int, int]]:
    """(start, stop) slices covering 0..n_texts, sizes drawn from a seeded RNG in [low, high]."""
    rng = random.Random(seed)
    out = []
    start = 0
    while start < n_texts:
        stop = min(n_texts, start + rng.randint(low, high))
        out.append((start, stop))
        start = stop
    return out


# -- server process ------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[str]
    base_url: str
    ready_s: float
    lines: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_server(data_dir: Path, cache_dir: Path, *, python: str = sys.executable,
                 timeout: float = 300.0, config: Path | None = None,
                 launcher: Sequence[str] | None = None) -> tuple[Server, str | None]:
    """Spawn the CLI as a user would; returns the server and the bootstrap inference key (first
    start only). ready_s runs from just before spawn to the moment the ready line was read.
    ``launcher``: what runs the CLI instead of ``python -m embedrouter`` (it gets the CLI's
    arguments after it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDROUTER_")}
    env["EMBEDROUTER_CACHE_DIR"] = str(cache_dir)
    cmd = [*(launcher or (python, "-m", "embedrouter")), "serve", "--port", "0",
           "--data-dir", str(data_dir)]
    if config is not None:
        cmd += ["--config", str(config)]
    lines: list[str] = []
    found: dict[str, Any] = {}
    ready = threading.Event()

    spawned = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, stdin=subprocess.DEVNULL)

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if m := KEY_LINE.search(line):
                found["key"] = m.group(1)
            if (m := KEYS_FILE_LINE.search(line)) and (
                    k := KEY_LINE.search(Path(m.group(1)).read_text())):
                found["key"] = k.group(1)
            if not ready.is_set() and (m := READY.search(line)):
                found["url"] = m.group(1)
                found["at"] = time.perf_counter()
                ready.set()
        ready.set()  # EOF: wake the waiter, it sees the exit

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(timeout) or "url" not in found:
        proc.kill()
        proc.wait()
        raise RuntimeError("server did not get ready:\n" + "".join(lines))
    server = Server(proc, found["url"], found["at"] - spawned, lines)
    return server, found.get("key")


def proc_memory_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(rest.split()[0]) / 1024.0
    return out


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuSnap:
    """Where the machine's CPU went: the server, this process (client and in-process peers) and
    everything else (other engineers' test runs share this machine)."""

    wall: float
    server: float
    own: float
    busy: float
    steal: float

    @classmethod
    def take(cls, server_pid: int) -> CpuSnap:
        hz = os.sysconf("SC_CLK_TCK")
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        # user nice system idle iowait irq softirq steal ...
        busy = (f[0] + f[1] + f[2] + f[5] + f[6]) / hz
        steal = (f[7] if len(f) > 7 else 0) / hz
        t = os.times()
        return cls(time.perf_counter(), proc_cpu_s(server_pid), t.user + t.system, busy, steal)

    def cores_since(self, start: CpuSnap) -> dict[str, float]:
        wall = self.wall - start.wall
        server = (self.server - start.server) / wall
        own = (self.own - start.own) / wall
        busy = (self.busy - start.busy) / wall
        return {"server": server, "bench": own, "other": max(0.0, busy - server - own),
                "steal": (self.steal - start.steal) / wall}


BATCH_METRICS = ("batches_run", "items_run", "tokens_run", "padded_tokens_run")
# Also read where present: how often the model handed its idle memory back (accounts_bench.py).
EXTRA_BATCH_METRICS = ("idle_releases",)


def metrics_lines(root_url: str) -> list[str] | None:
    """The lines of the server's GET /metrics (None if it did not answer)."""
    import urllib.request

    try:
        with urllib.request.urlopen(root_url + "/metrics", timeout=10) as resp:
            return resp.read().decode().splitlines()
    except OSError:
        return None


def batcher_counters(root_url: str) -> dict[str, float] | None:
    """The batcher's cumulative counters from GET /metrics, summed over models (None where
    the server lacks them)."""
    lines = metrics_lines(root_url)
    if lines is None:
        return None
    out: dict[str, float] = {}
    for line in lines:
        m = re.match(r"embedrouter_batcher_(\w+)\{[^}]*\} (\S+)", line)
        if m and m.group(1) in BATCH_METRICS + EXTRA_BATCH_METRICS:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out if all(k in out for k in BATCH_METRICS) else None


def batch_shape(before: dict[str, float] | None, after: dict[str, float] | None
                ) -> dict[str, float] | None:
    if before is None or after is None:
        return None
    d = {k: after[k] - before[k] for k in BATCH_METRICS}
    if d["batches_run"] <= 0 or d["padded_tokens_run"] <= 0:
        return None
    return {"items_per_batch": d["items_run"] / d["batches_run"],
            "padding_efficiency": d["tokens_run"] / d["padded_tokens_run"]}


def sorted_batch_efficiency(lengths: Sequence[int], batch_size: int) -> float:
    """Token/padded-token ratio of LocalModel.embed's length-sorted batches."""
    xs = sorted(lengths)
    padded = sum(max(xs[i:i + batch_size]) * len(xs[i:i + batch_size])
                 for i in range(0, len(xs), batch_size))
    return sum(xs) / padded


# -- HTTP clients --------------------------------------------------------------------------


class RawConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: the cheapest client possible, so
    that the figure is the server's, not the client library's."""

    def __init__(self, base_url: str, key: str, *, cache_control: str = "no-store") -> None:
        m = re.match(r"http://([^/:]+):(\d+)(/.*)", base_url)
        if not m:
            raise ValueError(base_url)
        self.host, self.port, prefix = m.group(1), int(m.group(2)), m.group(3)
        self.head = (f"POST {prefix}/embeddings HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                     f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                     # The corpus repeats across passes: without no-store the vector cache
                     # would answer from the second pass on, and this measures the engine.
                     + (f"Cache-Control: {cache_control}\r\n" if cache_control else "")
                     + "Content-Length: ").encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        reused = self.writer is not None
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(b"".join((self.head, str(len(body)).encode(), b"\r\n\r\n", body)))
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            # The server closed an idle keep-alive connection (its keep-alive timeout passed
            # while this worker waited, e.g. on a loaded machine): reconnect and send again, as
            # every HTTP client does for a request that never reached the server.
            if not reused or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                raise
            await self.close()
            self.writer = None
            return await self.post(body)
        status = int(head[9:12])
        length = None
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if length is not None:
            data = await self.reader.readexactly(length)
        elif chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            data = b"".join(p[:-2] for p in parts)
        else:
            raise RuntimeError("response without content-length")
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()


class HttpxConnection:
    """httpx.AsyncClient limited to one pooled connection (one per worker)."""

    def __init__(self, base_url: str, key: str) -> None:
        import httpx

        self.client = httpx.AsyncClient(
            base_url=base_url, timeout=120.0,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                     "Cache-Control": "no-store"},  # measure the engine, not the vector cache
        )

    async def post(self, body: bytes) -> tuple[int, bytes]:
        r = await self.client.post("/embeddings", content=body)
        return r.status_code, r.content

    async def close(self) -> None:
        await self.client.aclose()


CLIENTS: dict[str, Callable[[str, str], Any]] = {"raw": RawConnection, "httpx": HttpxConnection}


def encode_bodies(texts: Sequence[str], plan: Sequence[tuple[int, int]], fmt: str,
                  extra: dict[str, Any] | None = None) -> list[tuple[bytes, int]]:
    """One request body per (start, end) of ``plan``, with ``extra`` fields (e.g. provider)."""
    return [(json.dumps({"model": MODEL, "input": list(texts[a:b]), "encoding_format": fmt,
                         **(extra or {})}, separators=(",", ":")).encode(), b - a)
            for a, b in plan]


@dataclass
class LoadResult:
    sentences: int
    requests: int
    wall_s: float
    latencies_s: list[float]
    cpu: dict[str, float] = field(default_factory=dict)
    batches: dict[str, float] | None = None

    @property
    def rate(self) -> float:
        return self.sentences / self.wall_s

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_s, 50) * 1e3

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies_s, 95) * 1e3


async def run_load(conns: Sequence[Any], bodies: Sequence[tuple[bytes, int]]) -> LoadResult:
    """Workers (one per connection) pull the next request off a shared cursor until done."""
    cursor = iter(range(len(bodies)))
    latencies: list[float] = []

    async def worker(conn: Any) -> None:
        for i in cursor:
            body, n = bodies[i]
            t0 = time.perf_counter()
            status, data = await conn.post(body)
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {data[:300]!r}")
            if data.count(b'"object":"embedding"') != n:
                raise RuntimeError(f"expected {n} embeddings in {data[:300]!r}...")

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    wall = time.perf_counter() - started
    return LoadResult(sum(n for _, n in bodies), len(bodies), wall, latencies)


async def open_conns(kind: str, base_url: str, key: str, n: int,
                     warm_body: bytes) -> list[Any]:
    conns = [CLIENTS[kind](base_url, key) for _ in range(n)]
    # Connect (and warm) every connection before any clock starts.
    await asyncio.gather(*(c.post(warm_body) for c in conns))
    return conns


async def close_conns(conns: Sequence[Any]) -> None:
    await asyncio.gather(*(c.close() for c in conns))


async def short_latency(conn: Any, body: bytes, n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        await conn.post(body)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        status, data = await conn.post(body)
        out.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {data[:300]!r}")
    return out


def check_response(data: bytes, texts: Sequence[str], reference: Any) -> float:
    """Decodes a base64 response and returns the worst cosine against reference rows."""
    import numpy as np

    doc = json.loads(data)
    rows = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4")
                     for d in sorted(doc["data"], key=lambda d: d["index"])])
    if rows.shape != (len(texts), reference.shape[1]):
        raise RuntimeError(f"unexpected embeddings shape {rows.shape}")
    return float(np.min(np.sum(rows * reference, axis=1)))


def long_text(engine: Any) -> str:
    """A text of exactly max_seq_length tokens (with [CLS]/[SEP]): the longest input allowed."""
    n = engine.max_seq_length - 2
    text = " ".join(["hello"] * n)
    while len(engine.tokenize([text])[0]) > engine.max_seq_length:
        n -= 1
        text = " ".join(["hello"] * n)
    return text


async def worst_case_memory(server: Server, key: str, engine: Any, client: str,
                            requests: int = 8, inputs: int = 16) -> dict[str, Any]:
    """Informational: the corpus (<= 128 tokens) never fills a batch with max-length inputs. Here
    `requests` concurrent requests of `inputs` max-length texts let the batcher build its
    largest batches; returns the server's VmHWM after them, and their sentences/s."""
    text = long_text(engine)
    body = json.dumps({"model": MODEL, "input": [text] * inputs, "encoding_format": "base64"},
                      separators=(",", ":")).encode()
    conns = await open_conns(client, server.base_url, key, requests, body)
    res = await run_load(conns, [(body, inputs)] * (requests * 2))
    await close_conns(conns)
    return {"tokens_per_input": len(engine.tokenize([text])[0]), "requests": requests,
            "inputs_per_request": inputs, "rate": res.rate, **proc_memory_mb(server.pid)}


# -- in-process peers ----------------------------------------------------------------------


def time_embed(fn: Callable[[], Any], n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def load_sentence_transformers(model_dir: Path) -> tuple[Any | None, str]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        return None, f"sentence-transformers not installed: skipped ({ST_HINT}) [{exc}]"
    import sentence_transformers

    model = SentenceTransformer(str(model_dir), device="cpu")
    return model, (f"sentence-transformers {sentence_transformers.__version__}, torch "
                   f"{torch.__version__}, {torch.get_num_threads()} threads, fp32")


# -- report --------------------------------------------------------------------------------


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _med_cores(snaps: Sequence[dict[str, float]]) -> dict[str, float]:
    return {k: med([s[k] for s in snaps]) for k in snaps[0]} if snaps else {}


def _cores(c: dict[str, float] | None) -> str:
    if not c:
        return "-"
    return f"{c['server']:.2f} / {c['bench']:.2f} / {c['other']:.2f}"


def _opt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def fmt_runs(xs: Sequence[float], spec: str = ".0f") -> str:
    return ", ".join(format(x, spec) for x in xs)


def report(results: dict[str, Any]) -> str:
    r = results
    lines = []
    lines.append(f"embedrouter HTTP benchmark — {r['machine']}")
    lines.append(f"corpus: {r['sentences']} sentences ({r['corpus']}), {r['requests']} requests "
                 f"of 1-16 inputs (seed {r['seed']}); medians of {r['repeats']} repeats; "
                 f"client: {r['client']}")
    lines.append("note: the load client runs on the same machine and shares its "
                 f"{r['cpus']} cores with the server (HTTP figures include that handicap)")
    lines.append("cores = CPU cores busy during the pass: the server process / this bench process "
                 "(client, in-process peers) / everything else on the machine")
    lines.append("")
    lines.append("| path | conc. | encoding | sentences/s | p50 ms | p95 ms | runs (sent/s) "
                 "| items/batch | padding eff. | cores: server / bench / other |")
    lines.append("|---|---:|---|---:|---:|---:|---|---:|---:|---|")
    for row in r["http"]:
        lines.append(f"| HTTP ({row['client']}) | {row['concurrency']} | {row['encoding']} | "
                     f"{row['rate']:.0f} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | "
                     f"{fmt_runs(row['rates'])} | {_opt(row['items_per_batch'], '.1f')} | "
                     f"{_opt(row['padding_efficiency'], '.0%')} | {_cores(row['cpu_cores'])} |")
    eng = r["engine"]
    lines.append(f"| in-process engine (batch 32) | - | - | {eng['rate']:.0f} | | | "
                 f"{fmt_runs(eng['rates'])} | 32 | {eng['padding_efficiency']:.0%} | "
                 f"{_cores(eng['cpu_cores'])} |")
    st = r["sentence_transformers"]
    if st.get("rate") is not None:
        lines.append(f"| sentence-transformers fp32 (batch 32) | - | - | {st['rate']:.0f} | | | "
                     f"{fmt_runs(st['rates'])} | 32 | | {_cores(st['cpu_cores'])} |")
    else:
        lines.append("| sentence-transformers fp32 | - | - | skipped | | | | | | |")
    lines.append("")
    sh = r["short"]
    mem = r["memory_mb"]
    lines.append("| measurement | median | runs |")
    lines.append("|---|---:|---|")
    lines.append(f"| single short input over HTTP, p50 | {sh['p50_ms']:.2f} ms | "
                 f"{fmt_runs(sh['p50s_ms'], '.2f')} |")
    lines.append(f"| single short input over HTTP, p95 | {sh['p95_ms']:.2f} ms | "
                 f"{fmt_runs(sh['p95s_ms'], '.2f')} |")
    lines.append(f"| ready after spawn, warm ONNX cache | {r['ready_s']:.2f} s | "
                 f"{fmt_runs(r['ready_runs_s'], '.2f')} |")
    lines.append(f"| first start, builds the ONNX graph | {r['cold_ready_s']:.2f} s | |")
    lines.append(f"| server VmRSS after load | {mem['VmRSS']:.0f} MB | |")
    lines.append(f"| server VmHWM (peak) | {mem['VmHWM']:.0f} MB | |")
    w = r.get("worst_case")
    if w:
        lines.append(f"| informational: VmHWM after {w['requests']} concurrent requests of "
                     f"{w['inputs_per_request']} inputs of {w['tokens_per_input']} tokens "
                     f"(largest batches; {w['rate']:.0f} sentences/s) | {w['VmHWM']:.0f} MB | |")
    lines.append("")
    lines.append("| target | measured | result |")
    lines.append("|---|---:|---|")
    for t in r["targets"]:
        lines.append(f"| {t['name']} | {t['measured']} | {t['result']} |")
    lines.append("")
    lines.append(f"sentence-transformers: {st['note']}")
    if r.get("agreement"):
        lines.append(f"agreement: {r['agreement']}")
    return "\n".join(lines)


def evaluate(results: dict[str, Any]) -> list[dict[str, str]]:
    r = results
    c32 = next(row for row in r["http"]
               if row["concurrency"] == 32 and row["encoding"] == "base64"
               and row["client"] == r["client"])
    targets = []
    ratio = c32["rate"] / r["engine"]["rate"]
    r["ratios"] = {"http_c32_vs_engine": ratio}
    targets.append({"name": f"HTTP c=32 / in-process engine >= {TARGET_VS_ENGINE}x",
                    "measured": f"{ratio:.2f}x", "result": verdict(ratio >= TARGET_VS_ENGINE)})
    st_rate = r["sentence_transformers"].get("rate")
    if st_rate:
        ratio_st = c32["rate"] / st_rate
        r["ratios"]["http_c32_vs_sentence_transformers"] = ratio_st
        targets.append({"name": f"HTTP c=32 / sentence-transformers fp32 >= {TARGET_VS_ST}x",
                        "measured": f"{ratio_st:.2f}x",
                        "result": verdict(ratio_st >= TARGET_VS_ST)})
    else:
        targets.append({"name": f"HTTP c=32 / sentence-transformers fp32 >= {TARGET_VS_ST}x",
                        "measured": "n/a", "result": "SKIPPED"})
    p50 = r["short"]["p50_ms"]
    targets.append({"name": f"single short input over HTTP p50 <= {TARGET_SHORT_P50_MS:g} ms",
                    "measured": f"{p50:.2f} ms", "result": verdict(p50 <= TARGET_SHORT_P50_MS)})
    peak = max(r["memory_mb"]["VmRSS"], r["memory_mb"]["VmHWM"])
    targets.append({"name": f"server RSS <= {TARGET_RSS_MB:g} MB (judged on the peak, VmHWM)",
                    "measured": f"{peak:.0f} MB", "result": verdict(peak <= TARGET_RSS_MB)})
    targets.append({"name": f"ready within {TARGET_READY_S:g} s of spawn (ONNX cached)",
                    "measured": f"{r['ready_s']:.2f} s",
                    "result": verdict(r["ready_s"] <= TARGET_READY_S)})
    return targets


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=None,
                   help="repeats of every measurement, medians reported (default 3, 1 with "
                        "--quick)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: first 200 sentences, 50 short requests, 1 repeat")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--client", choices=sorted(CLIENTS), default="raw",
                   help="HTTP client for the headline figures (the other is measured at c=32)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--short-requests", type=int, default=None,
                   help="sequential single-input requests for the latency figure (default 300)")
    p.add_argument("--no-st", action="store_true", help="skip sentence-transformers")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (logs, data)")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    if args.short_requests is None:
        args.short_requests = 50 if args.quick else 300
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    texts = load_corpus()
    if args.quick:
        texts = texts[:200]
    plan = plan_requests(len(texts), seed=args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="embedrouter-http-bench-"))
    data_dir, cache_dir = tmp / "data", tmp / "onnx-cache"
    try:
        results = asyncio.run(_bench(args, texts, plan, data_dir, cache_dir))
    finally:
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"temp dir kept: {tmp}")
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        log(f"results written to {args.json}")
    return 0


async def _bench(args: argparse.Namespace, texts: list[str], plan: list[tuple[int, int]],
                 data_dir: Path, cache_dir: Path) -> dict[str, Any]:
    # 1. cold start (builds the graph), then warm restarts.
    log("first start (builds the ONNX graph into the cache dir)...")
    server, key = await asyncio.to_thread(start_server, data_dir, cache_dir)
    cold = server.ready_s
    server.stop()
    if key is None:
        raise RuntimeError("first start printed no inference key:\n" + "".join(server.lines))
    log(f"cold start ready in {cold:.2f} s; restarting {args.repeats}x with the warm cache...")
    ready_runs = []
    for i in range(args.repeats):
        server, _ = await asyncio.to_thread(start_server, data_dir, cache_dir)
        ready_runs.append(server.ready_s)
        log(f"  restart {i + 1}: ready in {server.ready_s:.2f} s")
        if i + 1 < args.repeats:
            server.stop()
    try:
        return await _load_phases(args, texts, plan, server, key, cache_dir, cold, ready_runs)
    finally:
        server.stop()


async def _load_phases(args: argparse.Namespace, texts: list[str], plan: list[tuple[int, int]],
                       server: Server, key: str, cache_dir: Path, cold: float,
                       ready_runs: list[float]) -> dict[str, Any]:
    from embedrouter.engine import LocalModel, default_model_dir

    model_dir = default_model_dir()
    engine = LocalModel.load(model_dir, cache_dir=cache_dir)
    reference = engine.embed(texts, batch_size=32)  # also warms the in-process session
    st_model, st_note = (None, "skipped (--no-st)") if args.no_st else \
        load_sentence_transformers(model_dir)
    if st_model is None and not args.no_st:
        print(st_note, flush=True)
    if st_model is not None:
        st_model.encode(texts[:64], batch_size=32, normalize_embeddings=True)

    bodies = {fmt: encode_bodies(texts, plan, fmt) for fmt in ("base64", "float")}
    other = "httpx" if args.client == "raw" else "raw"
    # (client, concurrency, encoding) in the order they run each round.
    configs = [(args.client, c, "base64") for c in args.concurrency]
    configs.append((args.client, 32, "float"))
    configs.append((other, 32, "base64"))
    warm = bodies["base64"][0][0]

    # Correctness once: a whole response decoded and compared with the in-process engine.
    conns = await open_conns(args.client, server.base_url, key, 1, warm)
    worst = 1.0
    for (a, b), (body, _) in list(zip(plan, bodies["base64"], strict=True))[:20]:
        status, data = await conns[0].post(body)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {data[:300]!r}")
        worst = min(worst, check_response(data, texts[a:b], reference[a:b]))
    await close_conns(conns)
    agreement = f"HTTP vs in-process: min cosine {worst:.6f} over the first 20 requests"

    root = server.base_url.removesuffix("/api/v1")
    samples: dict[tuple[str, int, str], list[LoadResult]] = {cfg: [] for cfg in configs}
    engine_cpu: list[dict[str, float]] = []
    st_cpu: list[dict[str, float]] = []
    engine_rates: list[float] = []
    st_rates: list[float] = []
    short_p50: list[float] = []
    short_p95: list[float] = []
    short_body = json.dumps({"model": MODEL, "input": [SHORT], "encoding_format": "base64"},
                            separators=(",", ":")).encode()
    for rnd in range(args.repeats):
        log(f"round {rnd + 1}/{args.repeats}")
        for cfg in configs:
            client, conc, fmt = cfg
            conns = await open_conns(client, server.base_url, key, conc, warm)
            counters = batcher_counters(root)
            snap = CpuSnap.take(server.pid)
            res = await run_load(conns, bodies[fmt])
            res.cpu = CpuSnap.take(server.pid).cores_since(snap)
            res.batches = batch_shape(counters, batcher_counters(root))
            await close_conns(conns)
            samples[cfg].append(res)
            log(f"  HTTP {client} c={conc} {fmt}: {res.rate:.0f} sentences/s, "
                f"p50 {res.p50_ms:.1f} ms, p95 {res.p95_ms:.1f} ms; cores: "
                + _cores(res.cpu))
        conns = await open_conns(args.client, server.base_url, key, 1, short_body)
        lat = await short_latency(conns[0], short_body, args.short_requests, warmup=30)
        await close_conns(conns)
        short_p50.append(percentile(lat, 50) * 1e3)
        short_p95.append(percentile(lat, 95) * 1e3)
        log(f"  single short input: p50 {short_p50[-1]:.2f} ms, p95 {short_p95[-1]:.2f} ms")

        await asyncio.sleep(0.5)  # let spinning ORT threads settle before the next peer
        snap = CpuSnap.take(server.pid)
        engine_rates.append(time_embed(lambda: engine.embed(texts, batch_size=32), len(texts)))
        engine_cpu.append(CpuSnap.take(server.pid).cores_since(snap))
        log(f"  in-process engine: {engine_rates[-1]:.0f} sentences/s; cores: "
            + _cores(engine_cpu[-1]))
        if st_model is not None:
            await asyncio.sleep(0.5)
            snap = CpuSnap.take(server.pid)
            st_rates.append(time_embed(
                lambda: st_model.encode(texts, batch_size=32, normalize_embeddings=True),
                len(texts)))
            st_cpu.append(CpuSnap.take(server.pid).cores_since(snap))
            log(f"  sentence-transformers: {st_rates[-1]:.0f} sentences/s; cores: "
                + _cores(st_cpu[-1]))

    memory = proc_memory_mb(server.pid)
    worst = await worst_case_memory(server, key, engine, args.client)
    if st_model is not None:
        st_ref = st_model.encode(texts[:200], batch_size=32, normalize_embeddings=True)
        import numpy as np

        cos = float(np.min(np.sum(st_ref * reference[:200], axis=1)))
        agreement += f"; in-process vs sentence-transformers: min cosine {cos:.6f} (200 rows)"

    http_rows = []
    for (client, conc, fmt), runs in samples.items():
        shapes = [x.batches for x in runs if x.batches]
        http_rows.append({
            "client": client, "concurrency": conc, "encoding": fmt,
            "rate": med([x.rate for x in runs]), "rates": [x.rate for x in runs],
            "p50_ms": med([x.p50_ms for x in runs]), "p95_ms": med([x.p95_ms for x in runs]),
            "cpu_cores": _med_cores([x.cpu for x in runs]),
            "items_per_batch": med([b["items_per_batch"] for b in shapes]) if shapes else None,
            "padding_efficiency": med([b["padding_efficiency"] for b in shapes])
            if shapes else None,
        })
    lengths = [len(engine.truncate(ids, engine.max_seq_length))
               for ids in engine.tokenize(texts)]
    results: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, Python "
                   f"{platform.python_version()}",
        "cpus": os.cpu_count(),
        "corpus": CORPUS.name + (" (first 200, --quick)" if args.quick else ""),
        "sentences": len(texts), "requests": len(plan), "seed": args.seed,
        "repeats": args.repeats, "client": args.client,
        "http": http_rows,
        "engine": {"rate": med(engine_rates), "rates": engine_rates,
                   "cpu_cores": _med_cores(engine_cpu), "items_per_batch": 32,
                   "padding_efficiency": sorted_batch_efficiency(lengths, 32)},
        "sentence_transformers": {"rate": med(st_rates) if st_rates else None,
                                  "rates": st_rates, "note": st_note,
                                  "cpu_cores": _med_cores(st_cpu) if st_cpu else None},
        "short": {"p50_ms": med(short_p50), "p95_ms": med(short_p95), "p50s_ms": short_p50,
                  "p95s_ms": short_p95, "requests": args.short_requests},
        "memory_mb": memory,
        "worst_case": worst,
        "ready_s": med(ready_runs), "ready_runs_s": ready_runs, "cold_ready_s": cold,
        "agreement": agreement,
    }
    results["targets"] = evaluate(results)
    return results


if __name__ == "__main__":
    raise SystemExit(main())
