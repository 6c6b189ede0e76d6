"""Two source trees side by side through accounts_bench.py's servers, in one interleaved run.

    python bench/accounts_ab.py --before /tmp/old/src [--after src] [--stores pg,sqlite]
                                [--workloads local] [--repeats 6] [--server-cpus 0]

Every server kind of accounts_bench.py (``sqlite-off``, ``sqlite-on``, ``pg-off``,
``pg+redis-on``) is started twice, once from each tree (``PYTHONPATH``), and each round measures
all of them (every other round in reverse order). Prints, per server, the medians over rounds,
then per kind the median of each round's after/before throughput ratio and p99 difference, and
per tree the on-vs-off cost as accounts_bench.py computes it.

Why this and not two accounts_bench.py runs: on these VMs a whole run drifts by 10% or more
against the next (2026-11-27: `[engine] nice` looked like +7-9% across two runs, and was
0.97-1.00x interleaved); only rounds taken side by side compare two trees.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import accounts_bench as ab  # sibling scripts, not a package
import http_bench as hb
import proxy_bench as pb

SRC = str(Path(__file__).resolve().parents[1] / "src")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", required=True, help="the baseline tree's src directory")
    ap.add_argument("--after", default=SRC, help="the tree to compare (default: this one)")
    ap.add_argument("--stores", default="pg", help="comma-separated: sqlite, pg")
    ap.add_argument("--workloads", default="local", help="comma-separated: local, remote")
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--server-cpus", default=None, help="taskset's CPU list for the servers")
    args = ap.parse_args()
    procs: list[Any] = []
    with tempfile.TemporaryDirectory() as tmpdir, contextlib.ExitStack() as stack:
        tmp = Path(tmpdir)
        kinds = stack.enter_context(ab.scratch_databases(args.stores.split(",")))
        stack.callback(lambda: [pb.stop(p) for p in procs])  # before the databases go
        up_port = pb.free_port()
        procs.append(pb.spawn([sys.executable, "-c", pb.UPSTREAM, str(up_port)]))
        upstream = f"http://127.0.0.1:{up_port}/v1"
        servers: dict[tuple[str, str], tuple[int, str]] = {}
        for tree, src in (("before", args.before), ("after", args.after)):
            (tmp / tree).mkdir()
            for kind, env in kinds.items():
                hb.log(f"starting {kind} from {src}")
                proc, key, port = ab.start(kind, tmp / tree,  # type: ignore[misc]
                                           upstream, {**env, "PYTHONPATH": src},
                                           args.server_cpus)
                procs.append(proc)
                servers[(kind, tree)] = (port, key)
        for workload in args.workloads.split(","):
            model = ab.LOCAL if workload == "local" else ab.REMOTE
            for port, key in servers.values():
                asyncio.run(ab.measure(port, key, model, 200, args.concurrency))
            res: dict[tuple[str, str], list[dict[str, Any]]] = {s: [] for s in servers}
            for r in range(args.repeats):
                for name, (port, key) in ab.round_order(servers, r):
                    root = f"http://127.0.0.1:{port}"
                    before = hb.batcher_counters(root)
                    out = asyncio.run(ab.measure(port, key, model, args.requests,
                                                 args.concurrency))
                    out["batch"] = ab.end_round(root, before)
                    res[name].append(out)
                hb.log(f"{workload} round {r + 1} done")
            report(workload, res, list(kinds))


def report(workload: str, res: dict[tuple[str, str], list[dict[str, Any]]],
           kinds: list[str]) -> None:
    med = statistics.median
    print(f"\n{workload}: medians over rounds")
    for (kind, tree), runs in res.items():
        batch = med(r["batch"] for r in runs)
        print(f"  {kind:12s} {tree:6s} {med(r['rps'] for r in runs):7.0f} req/s  "
              f"p99 {med(r['p99'] for r in runs):7.2f} ms  batch {batch:5.1f}"
              "  rounds: " + " ".join(f"{r['rps']:.0f}" for r in runs))
    print(f"{workload}: after / before, medians of each round's pair")
    for kind in kinds:
        b, a = res[(kind, "before")], res[(kind, "after")]
        ratio = med(y["rps"] / x["rps"] for x, y in zip(b, a, strict=True))
        print(f"  {kind:12s} throughput {ratio:.3f}x  "
              f"p99 {med(y['p99'] - x['p99'] for x, y in zip(b, a, strict=True)):+.2f} ms")
    for tree in ("before", "after"):
        for on, (off, _limit) in ab.TARGETS.items():
            if on not in kinds:
                continue
            ons, offs = res[(on, tree)], res[(off, tree)]
            cost = med(y["rps"] / x["rps"] - 1 for x, y in zip(offs, ons, strict=True)) * 100
            added = med(ab.p99_diffs(ons, offs))
            print(f"  {tree:6s} {on:12s} vs {off}: {cost:+.1f}% throughput, "
                  f"p99 added {added:+.2f} ms")


if __name__ == "__main__":
    main()
