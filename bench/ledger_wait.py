"""How long a charge waits for its durable commit: the ledger writer on the real PostgreSQL
store (or SQLite's, with its ledger process), with the cores idle and with them kept busy, in
one run.

    python bench/ledger_wait.py [--rate 400] [--batch 10] [--seconds 5] [--repeats 5]
                                [--burn 0,2] [--store pg|sqlite]

Charges arrive as the local model hands them over: ``--batch`` rows at once (a forward's
sequences settle together), ``--rate`` rows a second in all. Each row's wait runs from its
submit to its commit's callback, which is what a charged response waits for after its
forward. In the rounds of each ``--burn`` count, that many processes spin meanwhile, as ONNX
Runtime's threads keep the cores busy in a server under load, so that PostgreSQL and the event
loop wait for a core as they do there. Rounds alternate between the counts so that drift hits
each alike; prints each count's p50, p99 and p99.9 wait (medians over rounds) and the rows per
commit.

Measured with it (bench/README.md, Accounts): a second commit in flight (tried, not kept) did
not shorten the wait: at this arrival pattern each group commits alone, and with single rows
at 1,500 a second it made smaller groups and more commits to wait on.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time

import http_bench as hb  # sibling scripts, not a package
import uvloop
from admission_cpu import scratch_store

from embedrouter.accounts.ledger import LedgerWriter
from embedrouter.api.encode import generation_id
from embedrouter.store.records import GenerationRecord


def _burn(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    while not stop.is_set():
        sum(range(10_000))


def _row() -> GenerationRecord:
    return GenerationRecord(id=generation_id(), key_hash="a" * 64, model="bench/m",
                            upstream_model="m", provider="Bench", tokens=12, cost_nanos=240,
                            created_ms=int(time.time() * 1000), latency_ms=20)


async def one_round(store_kind: str, rate: float, batch: int, seconds: float
                    ) -> tuple[list[float], float]:
    """Every row's wait in ms, and rows per commit."""
    async with scratch_store(store_kind) as store:
        # Not timed: the first commit starts SQLite's ledger process (or opens a pooled
        # connection), once per server, not per charge.
        await store.record_generations([_row()])
        writer = LedgerWriter(store.record_generations)
        waits: list[float] = []
        loop = asyncio.get_running_loop()
        every = batch / rate
        start = loop.time()
        n = 0
        while loop.time() - start < seconds:
            submitted = time.perf_counter()
            for _ in range(batch):
                writer.submit(_row(), lambda exc, t=submitted: waits.append(
                    (time.perf_counter() - t) * 1000))
            n += 1
            await asyncio.sleep(max(0.0, start + n * every - loop.time()))
        await writer.close()
        return waits, writer.rows / max(1, writer.commits)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=400.0, help="rows a second")
    ap.add_argument("--batch", type=int, default=10, help="rows handed in at once")
    ap.add_argument("--seconds", type=float, default=5.0, help="per round")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--burn", default="0,2", help="processes spinning, one count per setting")
    ap.add_argument("--store", choices=("pg", "sqlite"), default="pg")
    args = ap.parse_args()
    settings = [int(c) for c in args.burn.split(",")]
    results: dict[int, list[tuple[list[float], float]]] = {c: [] for c in settings}
    for i in range(args.repeats):
        for count in settings if i % 2 == 0 else reversed(settings):
            stop = multiprocessing.Event()
            burners = [multiprocessing.Process(target=_burn, args=(stop,), daemon=True)
                       for _ in range(count)]
            for p in burners:
                p.start()
            try:
                results[count].append(uvloop.run(one_round(args.store, args.rate, args.batch,
                                                           args.seconds)))
            finally:
                stop.set()
                for p in burners:
                    p.join()
    print(f"{args.store}: {args.rate:g} rows/s in groups of {args.batch}, "
          f"{args.repeats} rounds of {args.seconds:g} s each (medians over rounds)")
    for count in settings:
        rounds = results[count]
        cols = [statistics.median(hb.percentile(w, q) for w, _ in rounds) for q in (50, 99, 99.9)]
        per = statistics.median(r for _, r in rounds)
        print(f"{count} processes spinning: wait p50 {cols[0]:6.2f}  p99 {cols[1]:6.2f}  "
              f"p99.9 {cols[2]:6.2f} ms; {per:.1f} rows a commit")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
