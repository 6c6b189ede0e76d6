"""Soak: hostile mixed traffic at the highest rate that draws no 429, for minutes, checking every
answer and sampling the server's RSS.

    python bench/soak.py [--duration 600] [--rate auto|REQ_PER_S] [--json OUT]
    python bench/soak.py --url http://127.0.0.1:8000/api/v1 --key sk-er-v1-... --pid PID

Without ``--url`` it starts ``embedrouter serve`` (first start builds the ONNX graph, the measured
one is a second start on the warm cache) with ``max_inputs = 64`` and ``max_queue_items = 1024``,
so that overload shows up within seconds as 429 rather than as a queue that grows for minutes.

1. **References.** ``--corpus-lines`` sentences of bench/corpus.jsonl are embedded one request
   per sentence: the server's own embedding of each input alone.
2. **Rate.** ``--rate auto`` probes open-loop rates (``--probe-seconds`` each, x1.4 from
   ``--probe-start``) with the soak's mix until one draws a 429, backs the client up or takes
   p95 > 5 s, then soaks at ``--rate-margin`` (0.85) of the last clean rate.
3. **Soak.** Requests are fired open-loop at that rate (at most ``--max-inflight`` at once; a
   slot that is not free is counted as ``client_backlog``, not queued), after ``--warmup``
   seconds that do not count towards RSS drift. The mix (``--mix``): *valid* (1-16 corpus
   sentences, float or base64; every vector checked by index against its reference at cosine
   >= 0.9999), *malformed* (bad JSON, wrong types, unknown model ...: must be a 400 envelope),
   *overlong* (an input of ``--overlong-words`` words, alone or beside valid ones: 400
   envelope), *disconnect* (a valid request whose socket is closed after 5-300 ms).
4. **Memory.** VmRSS of the server every ``--sample-every`` s; drift = median of the last tenth
   of the samples (at least five) against the first tenth, in %; only growth fails.

Exits 1 on any 5XX, wrong status or envelope, wrong vector, or RSS growth >= ``--max-drift-pct``.
Every loop is bounded by the duration, the request count it implies and a per-request timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import http_bench as hb  # sibling script, not a package

MIN_COSINE = 0.9999
# uvicorn closes idle keep-alive connections after 5 s; one reused just as the server closes it
# fails with no answer, which is the client's race, not the server's fault. Reuse only fresher.
KEEPALIVE_REUSE_S = 2.0
CONFIG = "[server]\nmax_inputs = 64\n\n[engine]\nmax_queue_items = 1024\n"
MALFORMED: list[bytes] = [
    b'{"model": "sentence-transformers/all-minilm-l6-v2", "input": ["abc"',
    b"not json at all",
    b'{"model": "sentence-transformers/all-minilm-l6-v2", "input": 42}',
    b'{"model": "sentence-transformers/all-minilm-l6-v2", "input": []}',
    b'{"model": "sentence-transformers/all-minilm-l6-v2", "input": [null]}',
    b'{"model": "nobody/nothing", "input": ["x"]}',
    b'{"model": "sentence-transformers/all-minilm-l6-v2", "input": ["x"], '
    b'"encoding_format": "hex"}',
    b'["an", "array", "body"]',
]


@dataclass
class Tally:
    """Everything the traffic produced; one per phase."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, status)
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # valid requests answered 200
    vectors_checked: int = 0
    min_cosine: float = 1.0
    client_backlog: int = 0

    def status_count(self, prefix: str) -> int:
        return sum(n for (_, s), n in self.counts.items() if s.startswith(prefix))

    def fail(self, msg: str) -> None:
        if len(self.failures) < 50:  # keep the first ones; the count says the rest
            self.failures.append(msg)


class Traffic:
    """Builds, sends and checks the mixed requests."""

    def __init__(self, url: str, key: str, texts: list[str], refs: np.ndarray,
                 rng: random.Random, mix: dict[str, float], overlong_words: int,
                 timeout: float) -> None:
        self.url, self.key, self.texts, self.refs = url, key, texts, refs
        self.rng, self.timeout = rng, timeout
        self.kinds = list(mix)
        self.weights = [mix[k] for k in self.kinds]
        self.overlong = " ".join(["overlong"] * overlong_words)
        # Idle keep-alive connections with the time they were last used.
        self.pool: list[tuple[float, hb.RawConnection]] = []

    async def _post(self, body: bytes) -> tuple[int, bytes]:
        conn = None
        while self.pool and conn is None:  # bounded by the pool's size
            used, idle = self.pool.pop()
            if time.monotonic() - used < KEEPALIVE_REUSE_S:
                conn = idle
            else:
                await idle.close()
        conn = conn or hb.RawConnection(self.url, self.key)
        try:
            status, data = await asyncio.wait_for(conn.post(body), self.timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.close()
            raise
        self.pool.append((time.monotonic(), conn))
        return status, data

    def _valid(self) -> tuple[bytes, list[int], str]:
        rows = [self.rng.randrange(len(self.texts)) for _ in range(self.rng.randint(1, 16))]
        fmt = self.rng.choice(("float", "base64"))
        body = {"model": hb.MODEL, "input": [self.texts[i] for i in rows],
                "encoding_format": fmt}
        return json.dumps(body).encode(), rows, fmt

    def check_vectors(self, data: bytes, rows: list[int], fmt: str, t: Tally) -> None:
        items = json.loads(data)["data"]
        if [d["index"] for d in items] != list(range(len(rows))):
            t.fail(f"indices {[d['index'] for d in items]} for {len(rows)} inputs")
            return
        for d, row in zip(items, rows, strict=True):
            emb = d["embedding"]
            vec = (np.frombuffer(base64.b64decode(emb), dtype="<f4") if fmt == "base64"
                   else np.asarray(emb, dtype=np.float32))
            ref = self.refs[row]
            cos = float(vec @ ref / (np.linalg.norm(vec) * np.linalg.norm(ref)))
            t.vectors_checked += 1
            t.min_cosine = min(t.min_cosine, cos)
            if not cos >= MIN_COSINE:
                t.fail(f"input {row}: cosine {cos:.6f} against its own embedding")

    def _expect_400(self, kind: str, status: int, data: bytes, t: Tally) -> None:
        if status != 400:
            t.fail(f"{kind}: status {status}: {data[:200]!r}")
            return
        try:
            err = json.loads(data)["error"]
            ok = err["code"] == 400 and isinstance(err["message"], str)
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            t.fail(f"{kind}: not an error envelope: {data[:200]!r}")

    async def one(self, t: Tally) -> None:
        kind = self.rng.choices(self.kinds, self.weights)[0]
        try:
            if kind == "valid":
                body, rows, fmt = self._valid()
                t0 = time.perf_counter()
                status, data = await self._post(body)
                if status == 200:
                    t.latencies.append(time.perf_counter() - t0)
                    self.check_vectors(data, rows, fmt, t)
                elif status != 429:
                    t.fail(f"valid: status {status}: {data[:200]!r}")
            elif kind == "malformed":
                status, data = await self._post(self.rng.choice(MALFORMED))
                self._expect_400(kind, status, data, t)
            elif kind == "overlong":
                body, _, _ = self._valid()
                parsed = json.loads(body)
                parsed["input"].insert(self.rng.randrange(len(parsed["input"]) + 1),
                                       self.overlong)
                status, data = await self._post(json.dumps(parsed).encode())
                self._expect_400(kind, status, data, t)
            else:  # disconnect: a fresh connection, hung up mid-request
                body, _, _ = self._valid()
                conn = hb.RawConnection(self.url, self.key)
                try:
                    status, _ = await asyncio.wait_for(conn.post(body),
                                                       self.rng.uniform(0.005, 0.3))
                except TimeoutError:
                    status = 0  # we left first, as intended
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            t.counts[(kind, "hung-up" if status == 0 else str(status))] += 1
        except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            t.counts[(kind, type(exc).__name__)] += 1
            t.fail(f"{kind}: {type(exc).__name__}: {exc}")

    async def run(self, rate: float, seconds: float, max_inflight: int, t: Tally) -> None:
        """Open loop: one request every 1/rate s for ``seconds``, at most max_inflight open."""
        inflight: set[asyncio.Task[None]] = set()
        start = time.perf_counter()
        for i in range(max(1, int(rate * seconds))):  # bounded by the count it implies
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(inflight) >= max_inflight:
                t.client_backlog += 1
                continue
            task = asyncio.ensure_future(self.one(t))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        if inflight:
            await asyncio.wait(inflight, timeout=self.timeout + 5)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for _, c in self.pool), return_exceptions=True)
        self.pool.clear()


async def references(url: str, key: str, texts: list[str], timeout: float) -> np.ndarray:
    """Each sentence embedded alone, by the server under test."""
    conn = hb.RawConnection(url, key)
    out = []
    try:
        for text in texts:
            body = json.dumps({"model": hb.MODEL, "input": [text]}).encode()
            status, data = await asyncio.wait_for(conn.post(body), timeout)
            if status != 200:
                raise RuntimeError(f"reference request: HTTP {status}: {data[:200]!r}")
            out.append(np.asarray(json.loads(data)["data"][0]["embedding"], dtype=np.float32))
    finally:
        await conn.close()
    return np.stack(out)


def server_counts(url: str) -> dict[str, int]:
    """The server's own request counts for /embeddings by status, from GET /metrics."""
    import re
    import urllib.request

    root = url.removesuffix("/api/v1")
    try:
        with urllib.request.urlopen(root + "/metrics", timeout=30) as resp:
            text = resp.read().decode()
    except OSError as exc:
        return {f"unavailable ({exc})": 0}
    pattern = r'embedrouter_requests_total\{route="/api/v1/embeddings",status="(\d+)"\} (\d+)'
    return {m.group(1): int(m.group(2)) for m in re.finditer(pattern, text)}


def p95(xs: list[float]) -> float:
    return hb.percentile(xs, 95) if xs else 0.0


async def find_rate(traffic: Traffic, args: argparse.Namespace) -> tuple[float, list[dict]]:
    rate, best, probes = args.probe_start, 0.0, []
    for _ in range(args.probe_steps):  # bounded number of probes
        t = Tally()
        await traffic.run(rate, args.probe_seconds, args.max_inflight, t)
        probe = {"rate": round(rate, 2), "429": t.status_count("429"),
                 "5xx": t.status_count("5"), "backlog": t.client_backlog,
                 "p95_s": round(p95(t.latencies), 3)}
        probes.append(probe)
        hb.log(f"probe {probe}")
        if probe["429"] or probe["backlog"] or probe["p95_s"] > 5.0 or probe["5xx"]:
            break
        best = rate
        rate *= 1.4
        await asyncio.sleep(2)  # let the queue drain between probes
    chosen = max(best, args.probe_start) * args.rate_margin
    return chosen, probes


async def sample_rss(pid: int | None, every: float, out: list[tuple[float, float]],
                     stop: asyncio.Event) -> None:
    if pid is None:
        return
    start = time.perf_counter()
    while not stop.is_set():
        out.append((round(time.perf_counter() - start, 1), hb.proc_memory_mb(pid)["VmRSS"]))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def soak(args: argparse.Namespace, url: str, key: str, pid: int | None) -> dict[str, Any]:
    texts = hb.load_corpus()[:args.corpus_lines]
    hb.log(f"embedding {len(texts)} reference sentences one by one...")
    refs = await references(url, key, texts, args.timeout)
    mix = dict(zip(("valid", "malformed", "overlong", "disconnect"), args.mix, strict=True))
    traffic = Traffic(url, key, texts, refs, random.Random(args.seed), mix,
                      args.overlong_words, args.timeout)
    probes: list[dict] = []
    if args.rate == "auto":
        rate, probes = await find_rate(traffic, args)
    else:
        rate = float(args.rate)
    hb.log(f"soak at {rate:.2f} requests/s for {args.duration:.0f} s "
           f"(+{args.warmup:.0f} s warm-up)")
    warm = Tally()
    await traffic.run(rate, args.warmup, args.max_inflight, warm)
    t = Tally()
    rss: list[tuple[float, float]] = []
    stop = asyncio.Event()
    sampler = asyncio.ensure_future(sample_rss(pid, args.sample_every, rss, stop))
    started = time.perf_counter()
    try:
        await traffic.run(rate, args.duration, args.max_inflight, t)
    finally:
        stop.set()
        await sampler
        await traffic.close()
    wall = time.perf_counter() - started
    values = [v for _, v in rss]
    # A minute's worth at each end (at least five samples): single samples swing by ~40 MB as
    # the idle release runs between spells of traffic.
    k = max(5, len(values) // 10)
    head, tail = values[:k], values[-k:]
    drift = ((statistics.median(tail) - statistics.median(head)) / statistics.median(head) * 100
             if values else None)
    for part in (warm,):
        t.failures += [f"warm-up: {f}" for f in part.failures]
        t.counts.update({(k, s): n for (k, s), n in part.counts.items() if s.startswith("5")})
    return {
        "rate_req_per_s": round(rate, 2), "duration_s": round(wall, 1), "probes": probes,
        "requests": sum(t.counts.values()),
        "by_kind_status": {f"{k} {s}": n for (k, s), n in sorted(t.counts.items())},
        "server_counts_all_phases": await asyncio.to_thread(server_counts, url),
        "status_5xx": t.status_count("5"), "status_429": t.status_count("429"),
        "client_backlog": t.client_backlog, "vectors_checked": t.vectors_checked,
        "min_cosine": round(t.min_cosine, 7), "failures": t.failures,
        "valid_p50_ms": round(hb.percentile(t.latencies, 50) * 1000, 1) if t.latencies else None,
        "valid_p95_ms": round(p95(t.latencies) * 1000, 1),
        "rss_mb": {"start": head and round(statistics.median(head), 1),
                   "end": tail and round(statistics.median(tail), 1),
                   "min": values and round(min(values), 1),
                   "max": values and round(max(values), 1),
                   "drift_pct": None if drift is None else round(drift, 2),
                   "samples": rss},
    }


def report(r: dict[str, Any], max_drift: float) -> tuple[str, bool]:
    rss = r["rss_mb"]
    # One-sided: the soak looks for memory that accumulates; RSS that ends lower than it
    # started (idle releases between spells of traffic) is not a leak.
    drift_ok = rss["drift_pct"] is None or rss["drift_pct"] < max_drift
    server_5xx = sum(n for k, n in r.get("server_counts_all_phases", {}).items()
                     if k.startswith("5"))
    ok = not r["failures"] and r["status_5xx"] == 0 and server_5xx == 0 and drift_ok
    lines = [
        f"rate: {r['rate_req_per_s']} requests/s for {r['duration_s']} s, "
        f"{r['requests']} requests",
        *(f"  {k}: {n}" for k, n in r["by_kind_status"].items()),
        "server's /metrics for /embeddings, all phases (status: count): "
        + ", ".join(f"{k}: {v}" for k, v in r.get("server_counts_all_phases", {}).items()),
        f"5XX: {r['status_5xx']}   429: {r['status_429']}   client backlog (not sent): "
        f"{r['client_backlog']}",
        f"vectors checked: {r['vectors_checked']}, min cosine {r['min_cosine']}",
        f"valid p50 {r['valid_p50_ms']} ms, p95 {r['valid_p95_ms']} ms",
        f"RSS MB: start {rss['start']}, end {rss['end']}, min {rss['min']}, max {rss['max']}, "
        f"drift {rss['drift_pct']}% ({'PASS' if drift_ok else 'FAIL'}: growth < {max_drift:g}%)",
        f"failures: {len(r['failures'])}",
        *(f"  {f}" for f in r["failures"][:10]),
        "RESULT: " + ("PASS" if ok else "FAIL"),
    ]
    return "\n".join(lines), ok


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=600.0)
    p.add_argument("--rate", default="auto", help="requests/s, or auto")
    p.add_argument("--rate-margin", type=float, default=0.85)
    p.add_argument("--probe-start", type=float, default=4.0)
    p.add_argument("--probe-seconds", type=float, default=15.0)
    p.add_argument("--probe-steps", type=int, default=12)
    p.add_argument("--warmup", type=float, default=20.0)
    p.add_argument("--mix", type=float, nargs=4, default=[0.7, 0.1, 0.1, 0.1],
                   metavar=("VALID", "MALFORMED", "OVERLONG", "DISCONNECT"))
    p.add_argument("--overlong-words", type=int, default=5000)
    p.add_argument("--corpus-lines", type=int, default=300)
    p.add_argument("--max-inflight", type=int, default=128)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--sample-every", type=float, default=5.0)
    p.add_argument("--max-drift-pct", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--url", default=None)
    p.add_argument("--key", default=None)
    p.add_argument("--pid", type=int, default=None, help="server pid, for RSS (local only)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.url and not args.key:
        p.error("--url needs --key")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="embedrouter-soak-"))
    server = None
    try:
        if args.url:
            url, key, pid = args.url, args.key, args.pid
        else:
            config = tmp / "soak.toml"
            config.write_text(CONFIG)
            server, key = hb.start_server(tmp / "data", tmp / "onnx", config=config)
            server.stop()
            if key is None:
                raise RuntimeError("no bootstrap key printed")
            server, _ = hb.start_server(tmp / "data", tmp / "onnx", config=config)
            url, pid = server.base_url, server.pid
        result = asyncio.run(soak(args, url, key, pid))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    text, ok = report(result, args.max_drift_pct)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
