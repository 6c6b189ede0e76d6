"""Where a closed-loop cohort's cycle goes: the phases between two forwards of the local model,
per server, with PostgreSQL + Redis accounting on and off.

    python bench/cycle_trace.py [--store pg|sqlite] [--tree NAME=SRC ...] [--requests 3000]
                                [--rounds 3] [--concurrency 32] [--server-cpus 0]

At c = 32 on a priced local model the clients run as one cohort: a forward of ~32 sequences,
then a gap in which the responses go out, the next requests come in, are authenticated (one
PostgreSQL key read a loop turn), tokenized, claimed (Redis) and queued, and the next forward
starts. Accounting can only lengthen the gap (the forward is the same work), and the gap's
median is a far steadier figure than a round's p99, which is the slowest of ~30 cycles. Each
server runs with a tracer (a ``sitecustomize`` on its PYTHONPATH, nothing in the server
changed) that records when each key read, claim call, ledger commit and forward ran; the
report gives, per server, medians over cycles of (ms from the forward's end):

  gap          until the next forward starts
  commit       the first ledger commit's start and the last one's end (on only)
  keys done    the last key read's end
  claims done  the last claim call's reply, and from there to the next forward

``--store sqlite`` runs ``sqlite-off`` and ``sqlite-on`` instead (keys cached, counters in the
process: only the commits to trace). ``--tree NAME=SRC`` adds an "on" server run from another
source tree (A/B within one run: the servers take turns, so the machine's drift hits each
alike). Cycles whose forward had fewer than half the clients' requests (the cohort split) are
left out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import signal
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import accounts_bench as ab  # sibling scripts, not a package
import http_bench as hb
import proxy_bench as pb

TRACER = textwrap.dedent('''
    import atexit, functools, json, os, time
    EV = []
    pc = time.perf_counter

    def _wrap(cls, name, tag, size, is_async):
        orig = getattr(cls, name)
        if is_async:
            async def w(self, *a, **k):
                t0 = pc()
                try:
                    return await orig(self, *a, **k)
                finally:
                    EV.append((tag, t0, pc(), size(a)))
        else:
            def w(self, *a, **k):
                t0 = pc()
                try:
                    return orig(self, *a, **k)
                finally:
                    EV.append((tag, t0, pc(), size(a)))
        setattr(cls, name, functools.wraps(orig)(w))

    def _dump():
        with open(os.environ["EMBEDROUTER_CYCLE_TRACE"], "w") as f:
            json.dump(EV, f)

    if os.environ.get("EMBEDROUTER_CYCLE_TRACE"):
        atexit.register(_dump)
        import embedrouter.engine.batcher as B
        import embedrouter.store.postgres as P
        import embedrouter.store.sqlite as S
        _wrap(P.PostgresStore, "_read_keys", "key", lambda a: len(a[0]), True)
        _wrap(P.PostgresStore, "record_generations", "commit", lambda a: len(a[0]), True)
        _wrap(S.SQLiteStore, "record_generations", "commit", lambda a: len(a[0]), True)
        _wrap(B.Batcher, "_compute", "fwd", lambda a: len(a[0]), False)
        import embedrouter.accounts.redis_counters as R
        _wrap(R.RedisCounters, "_run_claims", "claim", lambda a: len(a[0]), True)
''')


def cycles(events: list[list[Any]], least: int) -> list[dict[str, float]]:
    """Per gap between two forwards (the second of at least ``least`` sequences), the phases
    in ms from the first forward's end."""
    events.sort(key=lambda e: e[1])
    fwd = [e for e in events if e[0] == "fwd" and e[3] > 0]
    out = []
    for a, b in itertools.pairwise(fwd):
        if b[3] < least:
            continue
        g0 = a[2]
        inside = [e for e in events if e[0] != "fwd" and g0 <= e[1] < b[1]]

        def ms(t: float, g0: float = g0) -> float:
            return (t - g0) * 1000

        row = {"gap": ms(b[1])}
        for tag in ("key", "claim", "commit"):
            es = [e for e in inside if e[0] == tag]
            if es:
                row[f"{tag} first"] = ms(es[0][1])
                row[f"{tag} done"] = ms(max(e[2] for e in es))
        if "claim done" in row:
            row["claims -> fwd"] = row["gap"] - row["claim done"]
        out.append(row)
    return out[len(out) // 10:]  # the first rounds' warm-up


def report(traces: dict[str, list[dict[str, float]]], off: str = "pg-off") -> None:
    cols = ["gap", "commit first", "commit done", "key done", "claim done", "claims -> fwd"]
    tails = ["gap", "commit done"]
    print(f"\n{'server':<22} {'cycles':>6} " + " ".join(f"{c:>13}" for c in cols)
          + "".join(f" {c + ' p90/p97':>21}" for c in tails))
    off_gap = None
    for name, rows in traces.items():
        cells = []
        for c in cols:
            vals = [r[c] for r in rows if c in r]
            cells.append(f"{statistics.median(vals):13.2f}" if vals else f"{'-':>13}")
        for c in tails:
            vals = [r[c] for r in rows if c in r]
            cells.append(f"{hb.percentile(vals, 90):10.2f}/{hb.percentile(vals, 97):10.2f}"
                         if vals else f"{'-':>21}")
        gap = statistics.median(r["gap"] for r in rows) if rows else float("nan")
        if name == off:
            off_gap = gap
        extra = f"   gap vs {off} {gap - off_gap:+.2f} ms" \
            if off_gap is not None and name != off else ""
        print(f"{name:<22} {len(rows):>6} " + " ".join(cells) + extra)
    print("(medians over cycles, ms from a forward's end; commit: the ledger's first commit "
          "start and last commit end; key/claim done: the last key read's and claim call's "
          "end; claims -> fwd: from the last claim reply to the next forward; p90/p97: the "
          "tail over cycles, p97 being about the slowest of a 1,000-request round's ~31)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", choices=["pg", "sqlite"], default="pg")
    ap.add_argument("--tree", action="append", default=[],
                    help="NAME=SRC: another tree's \"on\" server beside this one's")
    ap.add_argument("--requests", type=int, default=3000, help="per round and server")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--server-cpus", default="0", help="taskset's CPU list for the servers")
    args = ap.parse_args()
    procs: list[Any] = []
    with tempfile.TemporaryDirectory() as tmpdir, contextlib.ExitStack() as stack:
        tmp = Path(tmpdir)
        (tmp / "tracer").mkdir()
        (tmp / "tracer" / "sitecustomize.py").write_text(TRACER)
        kinds = stack.enter_context(ab.scratch_databases([args.store]))
        off, on = ("pg-off", "pg+redis-on") if args.store == "pg" else ("sqlite-off", "sqlite-on")
        stack.callback(lambda: [pb.stop(p) for p in procs])  # before the databases go
        up_port = pb.free_port()
        procs.append(pb.spawn([sys.executable, "-c", pb.UPSTREAM, str(up_port)]))
        upstream = f"http://127.0.0.1:{up_port}/v1"
        here = str(Path(__file__).resolve().parents[1] / "src")
        wanted = [(off, off, here), (on, on, here)]
        for spec in args.tree:
            tree, _, src = spec.partition("=")
            wanted.append((f"{on} {tree}", on, src))
        servers: dict[str, tuple[Any, int, str, Path]] = {}
        for i, (name, kind, src) in enumerate(wanted):
            (tmp / str(i)).mkdir()
            trace = tmp / f"{i}.json"
            hb.log(f"starting {name} from {src}")
            env = {**kinds[kind], "PYTHONPATH": f"{tmp / 'tracer'}:{src}",
                   "EMBEDROUTER_CYCLE_TRACE": str(trace)}
            proc, key, port = ab.start(kind, tmp / str(i), upstream, env,  # type: ignore[misc]
                                       args.server_cpus)
            procs.append(proc)
            servers[name] = (proc, port, key, trace)
        for _, port, key, _ in servers.values():
            asyncio.run(ab.measure(port, key, ab.LOCAL, 300, args.concurrency))
        for r in range(args.rounds):
            for name, (_, port, key, _) in ab.round_order(servers, r):
                out = asyncio.run(ab.measure(port, key, ab.LOCAL, args.requests,
                                             args.concurrency))
                hb.log(f"round {r + 1} {name}: {out['rps']:.0f} req/s, p99 {out['p99']:.2f} ms")
        traces = {}
        for name, (proc, _, _, trace) in servers.items():
            proc.send_signal(signal.SIGINT)  # a clean exit writes the trace
            proc.wait(60)
            traces[name] = cycles(json.loads(trace.read_text()), args.concurrency // 2)
        report(traces, off)


if __name__ == "__main__":
    main()
