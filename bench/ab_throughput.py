"""Throughput of two source trees side by side: `embedrouter serve` from each (same venv, same
ONNX cache), rounds alternating between them, base64 requests of 1-16 corpus sentences at
concurrency 32 (http_bench's load). Prints each round, the medians and after/before.

    git archive BASE src | tar -x -C /tmp/base     # the tree to compare against
    .venv/bin/python bench/ab_throughput.py --before /tmp/base/src [--rounds 5] [--sentences N]
        [--concurrency 32] [--one-per-request] [--quantization int8]

Made for issue 13's check that prometheus_client metrics cost under 2% at c = 32.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import http_bench as hb

HERE_SRC = Path(__file__).resolve().parents[1] / "src"


def start(src: Path, data: Path, cache: Path) -> tuple[hb.Server, str]:
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(src)  # this tree's embedrouter shadows the installed one
    try:
        server, key = hb.start_server(data, cache)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    if key is None:
        raise RuntimeError("no bootstrap key")
    return server, key


async def one_round(server: hb.Server, key: str, bodies: list[tuple[bytes, int]],
                    concurrency: int) -> float:
    conns = await hb.open_conns("raw", server.base_url, key, concurrency, bodies[0][0])
    try:
        return (await hb.run_load(conns, bodies)).rate
    finally:
        await hb.close_conns(conns)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--before", type=Path, required=True, help="the src/ dir to compare against")
    p.add_argument("--after", type=Path, default=HERE_SRC)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--sentences", type=int, default=None,
                   help="use the first N corpus sentences a round (default: all 2,000)")
    p.add_argument("--one-per-request", action="store_true",
                   help="one sentence per request instead of http_bench's 1-16")
    p.add_argument("--quantization", default=None,
                   help="ask for this precision of the default model (e.g. int8)")
    args = p.parse_args()
    texts = hb.load_corpus()[:args.sentences]
    plan = ([(i, i + 1) for i in range(len(texts))] if args.one_per_request
            else hb.plan_requests(len(texts)))
    extra = {"provider": {"quantizations": [args.quantization]}} if args.quantization else None
    bodies = hb.encode_bodies(texts, plan, "base64", extra)
    tmp = Path(tempfile.mkdtemp(prefix="ab-"))
    servers = {}
    try:
        for name, src in (("before", args.before), ("after", args.after)):
            servers[name] = start(src, tmp / name, tmp / "onnx")
        rates: dict[str, list[float]] = {"before": [], "after": []}
        for r in range(args.rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for name in order:
                server, key = servers[name]
                rate = asyncio.run(one_round(server, key, bodies, args.concurrency))
                rates[name].append(rate)
                hb.log(f"round {r + 1} {name}: {rate:.0f} sentences/s")
        b, a = statistics.median(rates["before"]), statistics.median(rates["after"])
        print(f"c={args.concurrency}, {len(bodies)} requests ({len(texts)} sentences) a round, "
              f"{args.rounds} rounds")
        print(f"before {args.before}: median {b:.0f} sentences/s  runs "
              f"{' '.join(f'{x:.0f}' for x in rates['before'])}")
        print(f"after  {args.after}: median {a:.0f} sentences/s  runs "
              f"{' '.join(f'{x:.0f}' for x in rates['after'])}")
        print(f"after/before = {a / b:.3f}")
    finally:
        for server, _ in servers.values():
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
