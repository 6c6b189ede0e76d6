"""Where one short input's time goes, stage by stage, in one run.

    python bench/short_path.py [--n 500] [--rounds 3] [--no-http]

Per precision (fp32, int8), medians over ``--rounds`` interleaved rounds of ``--n`` calls each:

- ``tokenize``: ``LocalModel.tokenize_capped`` of the one sentence (what the provider runs inline);
- ``forward, N threads``: ``Session.run`` of that one sequence in sessions with 1 and 2 intra-op
  threads, back to back (the compute floor), and the 2-thread session after 5 ms idle
  (``after idle``: ORT's pool threads have stopped spinning and must be woken);
- on one event loop, taking turns call by call, 5 ms apart like sequential HTTP requests:
  ``forward on the loop`` (``LocalModel.forward`` called from a coroutine: the floor), and
  ``Batcher.embed`` of the pre-tokenized sequence two ways: ``via the engine thread``
  (``inline_max_tokens=0``: event loop -> engine thread -> event loop, the path before the inline
  rule) and ``inline`` (as shipped: a lone short batch runs on the loop's thread);
- over HTTP (``embedrouter serve``, one keep-alive connection each), against two servers side by
  side taking turns: ``[engine] inline_max_tokens = 0`` (the engine thread) and the default
  (inline): ``GET /health`` (server + client + loopback, no engine) and ``POST /embeddings`` with
  the one input, 5 ms apart and back to back, in turns of 25 calls (back to back falls within
  the inline rule's quiet spell, so both servers take the engine thread there).

The difference between rows is what each stage adds. The machine is shared: read medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from http_bench import MODEL, SHORT, start_server

GAP_S = 0.005  # between calls that model sequential requests


def p50_us(fn: Callable[[], Any], n: int, gap: float = 0.0) -> float:
    times = []
    for _ in range(n):
        if gap:
            time.sleep(gap)
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def paired_p50_us(calls: dict[str, Callable[[], Any]], n: int, gap: float, block: int = 1
                  ) -> dict[str, float]:
    """p50 of each of ``calls``, ``n`` times each, taking turns every ``block`` calls, so that a
    slow spell on the machine hits every variant alike (they are compared with each other)."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for start in range(0, n, block):
        for name, fn in calls.items():
            for _ in range(min(block, n - start)):
                if gap:
                    time.sleep(gap)
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) * 1e6 for name, ts in times.items()}


async def paired_loop_p50_us(calls: dict[str, Callable[[], Any]], n: int) -> dict[str, float]:
    """``paired_p50_us`` from a coroutine (awaiting what a call returns), GAP_S apart."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(n):
        for name, call in calls.items():
            await asyncio.sleep(GAP_S)
            t0 = time.perf_counter()
            out = call()
            if asyncio.iscoroutine(out):
                await out
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) * 1e6 for name, ts in times.items()}


class Http:
    """A minimal keep-alive HTTP/1.1 client over a blocking socket (no event loop in the way)."""

    def __init__(self, base_url: str, key: str) -> None:
        import socket
        from urllib.parse import urlsplit

        u = urlsplit(base_url)
        self.prefix = u.path
        self.key = key
        self.sock = socket.create_connection((u.hostname, u.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def request(self, method: str, path: str, body: bytes = b"") -> bytes:
        head = (f"{method} {self.prefix}{path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                f"{self.key}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
                # One sentence, sent again and again: the vector cache would answer all but the
                # first, and this measures the compute path.
                "\r\nCache-Control: no-store\r\n\r\n").encode()
        self.sock.sendall(head + body)
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        head_end = self.buf.index(b"\r\n\r\n") + 4
        length = 0
        for line in self.buf[:head_end].split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(self.buf) < head_end + length:
            self.buf += self.sock.recv(65536)
        status = int(self.buf[9:12])
        body_out, self.buf = self.buf[head_end:head_end + length], self.buf[head_end + length:]
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {body_out[:200]!r}")
        return body_out


def main(argv: Sequence[str] | None = None) -> int:
    import json

    from embedrouter.engine import Batcher, LocalModel, default_model_dir
    from embedrouter.engine.batcher import DEFAULT_INLINE_MAX_TOKENS
    from embedrouter.engine.model import _new_session, _session_options

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-http", action="store_true")
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="embedrouter-short-"))
    cache = tmp / "cache"
    models = {q: LocalModel.load(default_model_dir(), cache_dir=cache, precision=q)
              for q in ("fp32", "int8")}
    seq = models["fp32"].tokenize([SHORT])[0]
    import numpy as np

    feed = {"input_ids": np.array([seq], dtype=np.int64),
            "attention_mask": np.ones((1, len(seq)), dtype=np.int64)}
    sessions = {(q, t): _new_session(str(m.onnx_path), _session_options(t), q)
                for q, m in models.items() for t in (1, 2)}
    servers: dict[str, tuple[Any, str | None]] = {}
    if not args.no_http:
        thread_cfg = tmp / "engine-thread.toml"
        thread_cfg.write_text("[engine]\ninline_max_tokens = 0\n")
        servers["engine thread"] = start_server(tmp / "data-thread", cache, config=thread_cfg)
        servers["inline"] = start_server(tmp / "data-inline", cache)
    rows: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        rows.setdefault(name, []).append(value)
        print(f"  {name}: {value:.0f} us", file=sys.stderr, flush=True)

    try:
        for rnd in range(args.rounds):
            print(f"round {rnd + 1}/{args.rounds}", file=sys.stderr, flush=True)
            m = models["fp32"]
            add("tokenize (inline in the provider)",
                p50_us(lambda m=m: m.tokenize_capped([SHORT], 256), args.n))
            for q in ("fp32", "int8"):
                for t in (1, 2):
                    s = sessions[(q, t)]
                    add(f"{q} forward, {t} thread(s), back to back",
                        p50_us(lambda s=s: s.run(["embeddings"], feed), args.n))
                s = sessions[(q, 2)]
                add(f"{q} forward, 2 threads, after {GAP_S * 1e3:g} ms idle",
                    p50_us(lambda s=s: s.run(["embeddings"], feed), args.n // 2, GAP_S))

                async def on_loop(q: str = q) -> dict[str, float]:
                    m = models[q]
                    via_thread = Batcher(m, inline_max_tokens=0)
                    inline = Batcher(m, inline_max_tokens=DEFAULT_INLINE_MAX_TOKENS)
                    try:
                        return await paired_loop_p50_us({
                            f"{q} forward on the loop": lambda: m.forward([seq]),
                            f"{q} Batcher.embed via the engine thread":
                                lambda: via_thread.embed([seq]),
                            f"{q} Batcher.embed inline (lone short batch)":
                                lambda: inline.embed([seq]),
                        }, args.n // 2)
                    finally:
                        await via_thread.close()
                        await inline.close()
                for name, value in asyncio.run(on_loop()).items():
                    add(f"{name}, {GAP_S * 1e3:g} ms apart", value)
            if servers:
                conns = {label: Http(server.base_url, key)
                         for label, (server, key) in servers.items()}
                for label, v in paired_p50_us(
                        {label: lambda c=c: c.request("GET", "/health")
                         for label, c in conns.items()}, args.n // 2, GAP_S).items():
                    add(f"HTTP GET /health ({label} server)", v)
                for q in ("fp32", "int8"):
                    extra = {} if q == "fp32" else {"provider": {"quantizations": [q]}}
                    body = json.dumps({"model": MODEL, "input": [SHORT],
                                       "encoding_format": "base64", **extra}).encode()
                    # Turns of 25, not call by call: after its forward one server's ORT pool
                    # threads spin on, and would slow the other's next call (16.7 against
                    # 8.8 ms once on the 2-core VM); back to back would not be back to back.
                    for gap, when in ((GAP_S, f"{GAP_S * 1e3:g} ms apart"),
                                      (0.0, "back to back")):
                        got = paired_p50_us(
                            {label: lambda b=body, c=c: c.request("POST", "/embeddings", b)
                             for label, c in conns.items()}, args.n // 2, gap, 25)
                        for label, v in got.items():
                            add(f"{q} HTTP POST /embeddings, one input, {label} server, {when}",
                                v)
    finally:
        for server, _ in servers.values():
            server.stop()
    print(f"one input of {len(seq)} tokens ({SHORT!r}); p50 in microseconds, median of "
          f"{args.rounds} rounds (runs in brackets)\n")
    print("| stage | p50 us | runs |")
    print("|---|---:|---|")
    for name, vals in rows.items():
        print(f"| {name} | {statistics.median(vals):.0f} | "
              f"{', '.join(f'{v:.0f}' for v in vals)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
