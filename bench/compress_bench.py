"""Response compression: what each gzip level buys on real response bodies, and what the
server's compression costs in throughput at concurrency 32, in one run.

    python bench/compress_bench.py [--repeats 5] [--quick] [--json OUT]

1. Levels. Embeds the first 1,000 corpus sentences in-process, builds the exact response bodies
   the server sends (float JSON and base64 JSON, 1,000 x 384) and times ``zlib`` at gzip levels
   1-6 on each: kept fraction and MB/s of input (median of ``--level-runs``). zstd (package
   ``zstandard``) and brotli (package ``brotli``) are timed beside it when importable, so the
   case for adding one of them can be judged on the same bodies.
2. Load. One ``embedrouter serve`` takes the corpus at concurrency 32 (requests of 1-16 inputs,
   as in http_bench.py) four ways per round: base64 and float, each with and without
   ``Accept-Encoding: gzip``. Rounds interleave the four passes, ``--repeats`` rounds, medians
   reported, and the ratio with/without compression per encoding. The client decodes what it
   receives (that CPU is on the same cores, as a real client's would be). Server CPU-seconds per
   1,000 sentences are reported too: steadier than throughput on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import http_bench as hb  # a sibling script, not a package

LEVELS = (1, 2, 3, 4, 5, 6)
CONCURRENCY = 32
# The passes of one round, interleaved so that a slow spell on the machine hits all of them.
PASSES = (("base64", False), ("base64", True), ("float", False), ("float", True))
TARGET_BASE64_DROP = 0.03


class GzipConnection(hb.RawConnection):
    """The raw client, asking for gzip and decoding it; counts the bytes that crossed the wire."""

    def __init__(self, base_url: str, key: str, *, gzip: bool) -> None:
        super().__init__(base_url, key)
        if gzip:
            self.head = self.head.replace(b"Content-Length: ",
                                          b"Accept-Encoding: gzip\r\nContent-Length: ")
        self.wire_bytes = 0
        self.gzipped = 0
        self.reconnects = 0

    async def post(self, body: bytes) -> tuple[int, bytes]:
        try:
            status, data = await super().post(body)
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            # uvicorn closes a keep-alive connection idle for 5 s, which a slow spell on a shared
            # machine can cause between passes; nothing was answered, so sending again is safe.
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise
            await self.close()
            self.reader = self.writer = None
            self.reconnects += 1
            status, data = await super().post(body)
        self.wire_bytes += len(data)
        # A JSON body never starts with the gzip magic, so the sniff cannot misfire.
        if data[:2] == b"\x1f\x8b":
            self.gzipped += 1
            data = zlib.decompress(data, wbits=31)
        return status, data


# -- levels --------------------------------------------------------------------------------


def _codecs() -> dict[str, Callable[[bytes], bytes]]:
    out: dict[str, Callable[[bytes], bytes]] = {
        f"gzip {lvl}": (lambda b, lvl=lvl: zlib.compress(b, lvl, wbits=31)) for lvl in LEVELS}
    try:
        import zstandard

        for lvl in (1, 3):
            out[f"zstd {lvl}"] = zstandard.ZstdCompressor(level=lvl).compress
    except ImportError:
        hb.log("zstandard not importable: zstd not measured")
    try:
        import brotli

        for lvl in (1, 4):
            out[f"br {lvl}"] = lambda b, lvl=lvl: brotli.compress(b, quality=lvl)
    except ImportError:
        hb.log("brotli not importable: br not measured")
    return out


def response_bodies(texts: Sequence[str], cache_dir: Path) -> dict[str, bytes]:
    """The server's own response bodies for ``texts``, both encodings."""
    from embedrouter.api.encode import embeddings_body
    from embedrouter.engine import LocalModel, default_model_dir
    from embedrouter.types import EmbeddingResult, Usage

    engine = LocalModel.load(default_model_dir(), cache_dir=cache_dir)
    result = EmbeddingResult(engine.embed(texts), "sentence-transformers/all-MiniLM-L6-v2",
                             "embedrouter", Usage(0, 0, Decimal(0)))
    return {fmt: embeddings_body(result, fmt, "gen-emb-0-bench") for fmt in ("float", "base64")}


def measure_levels(bodies: dict[str, bytes], runs: int) -> list[dict[str, Any]]:
    rows = []
    for name, fn in _codecs().items():
        for fmt, body in bodies.items():
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                out = fn(body)
                times.append(time.perf_counter() - t0)
            t = statistics.median(times)
            rows.append({"codec": name, "encoding": fmt, "in_bytes": len(body),
                         "out_bytes": len(out), "kept": len(out) / len(body),
                         "mb_s": len(body) / t / 1e6, "ms": t * 1e3})
    return rows


# -- load ----------------------------------------------------------------------------------


async def one_pass(server: hb.Server, key: str, texts: Sequence[str],
                   plan: Sequence[tuple[int, int]], fmt: str, gzip: bool) -> dict[str, Any]:
    bodies = hb.encode_bodies(texts, plan, fmt)
    conns = [GzipConnection(server.base_url, key, gzip=gzip) for _ in range(CONCURRENCY)]
    # Connect every worker with a one-input request, so the warm-up costs 32 sentences.
    warm = hb.encode_bodies(texts, [(0, 1)], fmt)[0][0]
    await asyncio.gather(*(c.post(warm) for c in conns))
    for c in conns:
        c.wire_bytes = c.gzipped = 0
    before = hb.CpuSnap.take(server.pid)
    res = await hb.run_load(conns, bodies)
    after = hb.CpuSnap.take(server.pid)
    await hb.close_conns(conns)
    gzipped = sum(c.gzipped for c in conns)
    if gzip and fmt == "float" and gzipped != len(bodies):
        raise RuntimeError(f"only {gzipped} of {len(bodies)} float responses were gzipped")
    if (not gzip or fmt == "base64") and gzipped:
        raise RuntimeError(f"{gzipped} responses were gzipped that should not have been")
    return {"rate": res.rate, "p50_ms": res.p50_ms,
            "server_cpu_s_per_1k": (after.server - before.server) / res.sentences * 1e3,
            "wire_bytes_per_sentence": sum(c.wire_bytes for c in conns) / res.sentences,
            "gzipped": gzipped, "cores": after.cores_since(before)}


async def measure_load(texts: Sequence[str], repeats: int, seed: int, tmp: Path
                       ) -> dict[str, list[dict[str, Any]]]:
    plan = hb.plan_requests(len(texts), seed=seed)
    server, key = await asyncio.to_thread(hb.start_server, tmp / "data", tmp / "onnx-cache")
    if key is None:
        raise RuntimeError("the server printed no inference key")
    runs: dict[str, list[dict[str, Any]]] = {f"{fmt} {'gzip' if gz else 'identity'}": []
                                             for fmt, gz in PASSES}
    try:
        # One unmeasured pass: the ONNX arena and the batcher reach their steady state.
        await one_pass(server, key, texts, plan, "base64", False)
        for i in range(repeats):
            for fmt, gz in PASSES:
                name = f"{fmt} {'gzip' if gz else 'identity'}"
                runs[name].append(await one_pass(server, key, texts, plan, fmt, gz))
                hb.log(f"round {i + 1}: {name}: {runs[name][-1]['rate']:.0f} sentences/s")
    finally:
        server.stop()
    return runs


# -- report --------------------------------------------------------------------------------


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    med = {name: {k: statistics.median(r[k] for r in rs)
                  for k in ("rate", "p50_ms", "server_cpu_s_per_1k", "wire_bytes_per_sentence")}
           for name, rs in runs.items()}
    for name, rs in runs.items():
        med[name]["rates"] = [r["rate"] for r in rs]
        med[name]["other_cores"] = statistics.median(r["cores"]["other"] for r in rs)
    ratios = {fmt: {"rate": med[f"{fmt} gzip"]["rate"] / med[f"{fmt} identity"]["rate"],
                    "server_cpu": med[f"{fmt} gzip"]["server_cpu_s_per_1k"]
                    / med[f"{fmt} identity"]["server_cpu_s_per_1k"],
                    "wire": med[f"{fmt} gzip"]["wire_bytes_per_sentence"]
                    / med[f"{fmt} identity"]["wire_bytes_per_sentence"]}
              for fmt in ("base64", "float")}
    drop = 1 - ratios["base64"]["rate"]
    # Half the range of the baseline's own runs: when the same pass moves more than the target
    # from run to run, a median ratio inside the target proves nothing either way.
    rates = med["base64 identity"]["rates"]
    spread = (max(rates) - min(rates)) / 2 / med["base64 identity"]["rate"]
    if drop > TARGET_BASE64_DROP:
        result = "FAIL"
    elif spread > TARGET_BASE64_DROP:
        result = "INCONCLUSIVE"
    else:
        result = "PASS"
    return {"passes": med, "ratios": ratios,
            "target": {"name": f"base64 c=32 throughput drop <= {TARGET_BASE64_DROP:.0%}",
                       "measured": f"{drop:+.1%} (baseline runs within ±{spread:.1%})",
                       "result": result}}


def gzip1_share(levels: list[dict[str, Any]], load: dict[str, Any]) -> dict[str, float]:
    """What compressing each encoding at level 1 would add to the server's CPU per sentence,
    from the level table's speed and the identity passes' bytes per sentence: the figure that
    decides whether base64 bodies are worth compressing at all."""
    out = {}
    for fmt in ("base64", "float"):
        speed = next(r["mb_s"] for r in levels if r["codec"] == "gzip 1" and r["encoding"] == fmt)
        ident = load["passes"][f"{fmt} identity"]
        cost_s = ident["wire_bytes_per_sentence"] / (speed * 1e6)
        out[fmt] = cost_s / (ident["server_cpu_s_per_1k"] / 1e3)
    return out


def report_levels(results: dict[str, Any]) -> str:
    lines = [f"embedrouter compression benchmark — {results['machine']}", ""]
    lines.append(f"Levels: response bodies for {results['level_sentences']} sentences x 384, "
                 f"median of {results['level_runs']} runs")
    lines.append("")
    lines.append("| codec | encoding | body MB | kept | MB/s | ms |")
    lines.append("|---|---|---:|---:|---:|---:|")
    for r in results["levels"]:
        lines.append(f"| {r['codec']} | {r['encoding']} | {r['in_bytes'] / 1e6:.2f} | "
                     f"{r['kept']:.1%} | {r['mb_s']:.0f} | {r['ms']:.1f} |")
    return "\n".join(lines)


def report_load(results: dict[str, Any]) -> str:
    lines = []
    load = results.get("load")
    if load:
        lines.append("")
        lines.append(f"Load: c={CONCURRENCY}, {results['sentences']} sentences in requests of "
                     f"1-16 inputs, medians of {results['repeats']} interleaved rounds")
        lines.append("")
        lines.append("| pass | sentences/s | runs | p50 ms | server CPU s / 1k sentences "
                     "| wire bytes / sentence | other cores |")
        lines.append("|---|---:|---|---:|---:|---:|---:|")
        for name, m in load["passes"].items():
            lines.append(f"| {name} | {m['rate']:.0f} | {hb.fmt_runs(m['rates'])} | "
                         f"{m['p50_ms']:.0f} | {m['server_cpu_s_per_1k']:.2f} | "
                         f"{m['wire_bytes_per_sentence']:.0f} | {m['other_cores']:.2f} |")
        lines.append("")
        lines.append("| encoding | throughput gzip / identity | server CPU gzip / identity "
                     "| wire bytes gzip / identity |")
        lines.append("|---|---:|---:|---:|")
        for fmt, r in load["ratios"].items():
            lines.append(f"| {fmt} | {r['rate']:.3f} | {r['server_cpu']:.3f} | "
                         f"{r['wire']:.3f} |")
        lines.append("")
        for fmt, share in load.get("gzip1_share", {}).items():
            lines.append(f"estimate: gzip level 1 on every {fmt} body would cost {share:.1%} of "
                         "the server's CPU per sentence (level table MB/s x wire bytes)")
        t = load["target"]
        lines.append("")
        lines.append(f"target: {t['name']}: measured {t['measured']} -> {t['result']}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=None,
                   help="interleaved load rounds, medians reported (default 5, 1 with --quick)")
    p.add_argument("--level-runs", type=int, default=5)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 200 sentences for both parts, one round")
    p.add_argument("--no-load", action="store_true", help="levels only")
    p.add_argument("--sentences", type=int, default=None,
                   help="first N corpus sentences for the load (default all 2,000; 200 with "
                        "--quick)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 5
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    import os
    import platform
    import shutil

    args = parse_args(argv)
    texts = hb.load_corpus()
    if args.quick:
        texts = texts[:200]
    if args.sentences:
        texts = texts[:args.sentences]
    tmp = Path(tempfile.mkdtemp(prefix="embedrouter-compress-bench-"))
    try:
        level_texts = hb.load_corpus()[:200 if args.quick else 1000]
        hb.log(f"building the response bodies for {len(level_texts)} sentences...")
        bodies = response_bodies(level_texts, tmp / "onnx-cache")
        results: dict[str, Any] = {
            "machine": f"{platform.machine()} {os.cpu_count()} cpus, Python "
                       f"{platform.python_version()}",
            "level_sentences": len(level_texts), "level_runs": args.level_runs,
            "levels": measure_levels(bodies, args.level_runs),
            "sentences": len(texts), "repeats": args.repeats,
        }
        # Printed now: a long load phase on a busy machine should not hold these back.
        print(report_levels(results), flush=True)
        if not args.no_load:
            runs = asyncio.run(measure_load(texts, args.repeats, args.seed, tmp))
            results["load"] = summarize(runs)
            results["load"]["gzip1_share"] = gzip1_share(results["levels"], results["load"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(report_load(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
