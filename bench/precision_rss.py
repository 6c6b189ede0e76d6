"""Server memory with fp32 and int8 both loaded, against the batches' attention budget.

    python bench/precision_rss.py [--attention 64x128 32x128 32x128/1] [--repeats 1]
        [--sentences N]

A budget ``CxL`` caps count x longest^2 per forward at C x L^2 for fp32 (the shipped
``batcher.DEFAULT_MAX_BATCH_ATTENTION`` was 64x128); int8 gets that divided by
``quantize.ACTIVATION_FACTOR["int8"]`` as ``build_router`` does, or by F for ``CxL/F``.
Per budget, two servers (no config: fp32 and int8 endpoints, the budget patched in by the
launcher) each take the corpus at c = 32 (http_bench's requests of 1-16 inputs, base64) three
times back to back, one precision per pass, in the orders fp32 int8 fp32 and int8 fp32 int8 (the
shared ORT arena's growth depends on the order of batch shapes). After each pass: the server's
VmHWM (peak RSS) and the pass's sentences/s. Servers take turns sequence by sequence, so a slow
spell on the machine hits every budget; ``--repeats`` starts fresh servers and does it again.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import http_bench as hb  # sibling script, not a package

ORDERS = (("fp32", "int8", "fp32"), ("int8", "fp32", "int8"))
# Runs the CLI with the two budgets set first (build_router reads both when it starts).
PATCHED = ("import runpy, sys; import embedrouter.engine.batcher as b; "
           "import embedrouter.engine.quantize as q; "
           "b.DEFAULT_MAX_BATCH_ATTENTION = int(sys.argv.pop(1)); "
           "f = int(sys.argv.pop(1)); "
           "q.ACTIVATION_FACTOR['int8'] = f or q.ACTIVATION_FACTOR['int8']; "
           "runpy.run_module('embedrouter', run_name='__main__', alter_sys=True)")


def budget(spec: str) -> tuple[int, int]:
    """``CxL[/F]`` as (C x L^2, F); F 0 keeps quantize.ACTIVATION_FACTOR."""
    size, _, factor = spec.partition("/")
    count, _, longest = size.partition("x")
    return int(count) * int(longest) ** 2, int(factor or 0)


async def one_pass(server: hb.Server, key: str, bodies: list[tuple[bytes, int]]) -> float:
    conns = await hb.open_conns("raw", server.base_url, key, 32, bodies[0][0])
    try:
        return (await hb.run_load(conns, bodies)).rate
    finally:
        await hb.close_conns(conns)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--attention", nargs="+", default=["64x128", "32x128"])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--sentences", type=int, default=None)
    args = p.parse_args()
    texts = hb.load_corpus()[:args.sentences]
    plan = hb.plan_requests(len(texts))
    bodies = {q: hb.encode_bodies(texts, plan, "base64",
                                  {} if q == "fp32" else {"provider": {"quantizations": [q]}})
              for q in ("fp32", "int8")}
    tmp = Path(tempfile.mkdtemp(prefix="precision-rss-"))
    cache = tmp / "onnx"
    # Built (and quantized) here first, so no measured server's peak includes a build.
    from embedrouter.engine import LocalModel, default_model_dir

    LocalModel.load_precisions(default_model_dir(), ("fp32", "int8"), cache_dir=cache)
    hwm: dict[tuple[str, tuple[str, ...]], list[list[float]]] = {}
    rates: dict[tuple[str, str], list[float]] = {}
    for rep in range(args.repeats):
        servers: dict[tuple[str, tuple[str, ...]], tuple[hb.Server, str]] = {}
        try:
            for spec in args.attention:
                for order in ORDERS:
                    attention, factor = budget(spec)
                    launcher = [sys.executable, "-c", PATCHED, str(attention), str(factor)]
                    data = tmp / f"data-{spec.replace('/', '-')}-{order[0]}"
                    server, key = hb.start_server(data, cache, launcher=launcher)
                    if key is None:
                        raise RuntimeError("no bootstrap key")
                    servers[(spec, order)] = (server, key)
            turns = list(servers)
            for i, name in enumerate(turns[rep % len(turns):] + turns[:rep % len(turns)]):
                server, key = servers[name]
                peaks = [hb.proc_memory_mb(server.pid)["VmHWM"]]
                for precision in name[1]:
                    rate = asyncio.run(one_pass(server, key, bodies[precision]))
                    rates.setdefault((name[0], precision), []).append(rate)
                    peaks.append(hb.proc_memory_mb(server.pid)["VmHWM"])
                    hb.log(f"repeat {rep + 1} turn {i + 1}: {name[0]} {'-'.join(name[1])}: "
                           f"{precision} {rate:.0f} sentences/s, VmHWM {peaks[-1]:.0f} MB")
                hwm.setdefault(name, []).append(peaks)
        finally:
            for server, _ in servers.values():
                server.stop()
    print(f"{len(texts)} sentences a pass at c=32, {args.repeats} repeat(s); VmHWM in MB "
          "(median over repeats), sentences/s median over passes (runs in brackets)\n")
    print("| budget (count x longest^2) | order | ready | after 1st | after 2nd | after 3rd |")
    print("|---|---|---:|---:|---:|---:|")
    for (spec, order), runs in hwm.items():
        cols = [statistics.median(r[i] for r in runs) for i in range(4)]
        print(f"| {spec} | {' '.join(order)} | " + " | ".join(f"{c:.0f}" for c in cols) + " |")
    print("\n| budget | fp32 sentences/s | int8 sentences/s |")
    print("|---|---|---|")
    for spec in args.attention:
        cells = []
        for q in ("fp32", "int8"):
            r: Any = rates.get((spec, q), [])
            cells.append(f"{statistics.median(r):.0f} ({', '.join(f'{x:.0f}' for x in r)})")
        print(f"| {spec} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
