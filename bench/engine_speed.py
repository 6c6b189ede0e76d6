"""In-process speed of the local engine on bench/corpus.jsonl.

    python bench/engine_speed.py [--threads N] [--runs 3] [--cache-dir DIR]

Prints the cold build time (only when the cache dir has no graph yet), the warm load time, the
median sentences/s of ``LocalModel.embed`` (batch 32, length-sorted) over the corpus, and the
p50 latency of ``forward`` on a single short input; then the same corpus through the Batcher as
2,000 concurrent one-sentence requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from embedrouter.engine import Batcher, LocalModel, default_model_dir

CORPUS = Path(__file__).resolve().parent / "corpus.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="ONNX cache (default: a fresh temp dir, so the build is timed too)")
    args = parser.parse_args()
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="embedrouter-bench-"))

    started = time.perf_counter()
    model = LocalModel.load(default_model_dir(), cache_dir=cache, threads=args.threads)
    first = time.perf_counter() - started
    if model.built_onnx:
        print(f"cold load (build + cache ONNX): {first:.2f} s")
    loads = []
    for _ in range(3):
        started = time.perf_counter()
        model = LocalModel.load(default_model_dir(), cache_dir=cache, threads=args.threads)
        loads.append(time.perf_counter() - started)
    print(f"warm load from cache: {statistics.median(loads):.3f} s (median of 3)")

    texts = [json.loads(line)["text"] for line in CORPUS.read_text().splitlines() if line]
    model.embed(texts[:64], batch_size=args.batch_size)  # warm-up: ORT allocates on first runs
    rates = []
    for run in range(args.runs):
        started = time.perf_counter()
        model.embed(texts, batch_size=args.batch_size)
        rate = len(texts) / (time.perf_counter() - started)
        rates.append(rate)
        print(f"run {run + 1}: {rate:.1f} sentences/s")
    print(f"embed {len(texts)} sentences, batch {args.batch_size} length-sorted: "
          f"median {statistics.median(rates):.1f} sentences/s")

    (short,) = model.tokenize(["How do I set a timeout on sockets?"])
    for _ in range(20):
        model.forward([short])
    times = []
    for _ in range(200):
        started = time.perf_counter()
        model.forward([short])
        times.append(time.perf_counter() - started)
    print(f"forward, 1 input of {len(short)} tokens: p50 {statistics.median(times) * 1e3:.2f} ms, "
          f"p90 {statistics.quantiles(times, n=10)[-1] * 1e3:.2f} ms")

    seqs = [model.truncate(ids, model.max_seq_length) for ids in model.tokenize(texts)]
    print(f"batcher, {len(seqs)} concurrent 1-sentence requests (pre-tokenized): "
          f"{asyncio.run(_batcher_rate(model, seqs)):.1f} sentences/s")


async def _batcher_rate(model: LocalModel, seqs: list[list[int]]) -> float:
    batcher = Batcher(model)
    await batcher.start()
    try:
        await batcher.embed(seqs[:64])
        started = time.perf_counter()
        await asyncio.gather(*(batcher.embed([s]) for s in seqs))
        return len(seqs) / (time.perf_counter() - started)
    finally:
        await batcher.close()


if __name__ == "__main__":
    main()
