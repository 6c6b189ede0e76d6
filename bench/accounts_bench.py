"""What accounting costs: requests/s and p99 through the full admission path against
accounting off, on SQLite and on PostgreSQL + Redis, in one run.

    python bench/accounts_bench.py [--requests 1000] [--repeats 15] [--concurrency 32]
                                   [--stores sqlite,pg] [--workloads local,remote]
                                   [--server-cpus LIST] [--paced 8] [--paced-fraction 0.3]

Servers (all started once, then measured in interleaved rounds so drift hits each alike):

  sqlite-off   SQLite store, ``[accounts] enabled = false``: no admission, no ledger
  sqlite-on    SQLite + in-process counters: enforced credits, a key limit, RPM/TPM limits
  pg-off       PostgreSQL store, accounting off
  pg+redis-on  PostgreSQL ledger + Redis counters (one Lua round trip per step), as sqlite-on

"Full admission path" means every check runs for every request: the key has a spend limit
(daily reset) and RPM/TPM limits far above the load, and credits are enforced with a large
balance, so nothing is refused and every request is reserved, charged (group commit, fsync)
and settled.

Two workloads, each at ``--concurrency`` keep-alive connections: one short input to the local
model (priced), and one input to a remote model served by a fixed-vector upstream on
127.0.0.1 (proxy_bench.py's). PostgreSQL and Redis are the local servers (a scratch schema and
a scratch key prefix, removed afterwards). Everything shares the machine's cores with the
client: compare within one run only.

Verdicts: each round measures every server once (every other round in reverse order); "vs
off" and "p99 added" are the medians over rounds of that round's on/off comparison ("pooled"
beside them: the p99 of all rounds' requests, on minus off; see ``report``), "CPU us" the
server's processes' CPU per request (the SQLite ledger process included; PostgreSQL's and
Redis's own not), and "DB us" the PostgreSQL and Redis processes' CPU per request.

At equal load: in a closed loop at c = 32 the server is saturated, so its latency is 32 /
throughput and "p99 added" there restates the throughput cost (a 25% cost is +33% on every
percentile). After each workload's closed-loop rounds, ``--paced`` rounds offer every server the
same request rate (``--paced-fraction`` of the slowest server's median closed-loop rate; each
request is due at a fixed time, up to 32 in flight): the p99 added there is what accounting
adds to a request's latency when the server keeps up (its round trips, the wait for the
durable commit). Latency counts from when the request was due if every connection was busy
then (the server's backlog), else from when it was sent (the client's timer is not the
server's). Printed beside the closed-loop verdict, which stays the verdict.

The disk: every charge is committed durably (an fdatasync, group-committed) before its
response, which the "off" servers never wait for. A probe process fdatasyncs a small file every
``--disk-probe-ms`` during the run; the report says how long those took, in how many rounds the
probe saw a stall, and the p99 added of the rounds without one (information, not the verdict).
On a VM whose disk stalls for tens of ms every few seconds, that separates what the disk costs
from what accounting's own work costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import http_bench as hb  # sibling scripts, not a package
import orjson
import proxy_bench as pb

PG_URL = os.environ.get("EMBEDROUTER_BENCH_POSTGRES_URL",
                        "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("EMBEDROUTER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
LOCAL = hb.MODEL
REMOTE = "bench/fixed"
TARGETS = {"sqlite-on": ("sqlite-off", 0.15), "pg+redis-on": ("pg-off", 0.25)}
TARGET_P99_ADDED_MS = 5.0
# A write and fdatasync of this many bytes every DISK_PROBE_MS by a process of its own: how
# long the disk behind the ledger takes to make a small commit durable while the rounds run.
DISK_PROBE_BYTES = 8192
DISK_PROBE_MS = 10
# A round in which the probe waited longer than this for one fdatasync "saw a disk stall": a
# charge is durable before its response (group commit), so such a stall delays every request
# whose commit is in flight, and at 32 clients in a closed loop that is more than 1% of a
# round's 1,000 requests. Not 5 ms: on a loaded 2-core VM the probe's own fdatasyncs took
# 0.7-1 ms at p50 and 6-8 ms at p99 (the ledger's commits queue on the same disk, and the probe
# waits for a core), which is the disk's ordinary service, not a stall.
DISK_STALL_MS = 20.0
DISK_PROBE = textwrap.dedent('''
    import os, sys, time
    path, every_s, size = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    try:  # first in line for a core when its fdatasync returns, where allowed (root)
        os.nice(-20)
    except OSError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    buf = os.urandom(size)
    out = open(path + ".log", "w", buffering=1)
    while True:
        os.pwrite(fd, buf, 0)
        t0 = time.perf_counter()
        os.fdatasync(fd)
        out.write(f"{time.time():.4f} {(time.perf_counter() - t0) * 1000:.3f}\\n")
        time.sleep(every_s)
    ''')


def config(upstream: str, accounts_on: bool) -> str:
    accounts = ("[accounts]\nenforce_credits = true\n" if accounts_on
                else "[accounts]\nenabled = false\n")
    return textwrap.dedent('''
        [default_model]
        price_per_million = "0.02"

        # Repeated bodies would be vector-cache hits (free, no admission work to speak of):
        # this measures admission on computed requests.
        [cache]
        enabled = false

        ''') + pb.remote_model_toml(upstream, REMOTE, "0.13") + accounts


def cli(env: dict[str, str], cfg: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "embedrouter", *args, "--config", str(cfg)],
                          env=env, capture_output=True, text=True, check=True).stdout.strip()


def start(name: str, tmp: Path, upstream: str, extra_env: dict[str, str],
          cpus: str | None = None) -> tuple[Any, str]:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(config(upstream, name.endswith("-on")))
    env = {**os.environ, "BENCH_UPSTREAM_KEY": "sk-bench",
           "EMBEDROUTER_DATA_DIR": str(tmp / name), **extra_env}
    key = cli(env, cfg, "keys", "create", "--label", "bench", "--limit", "1000000",
              "--limit-reset", "daily", "--rpm", "10000000", "--tpm", "1000000000")
    cli(env, cfg, "credits", "add", "1000000")
    port = pb.free_port()
    pin = ["taskset", "-c", cpus] if cpus else []
    proc = pb.spawn([*pin, sys.executable, "-m", "embedrouter", "serve", "--config", str(cfg),
                     "--port", str(port)], env=env)
    wait_ready(f"http://127.0.0.1:{port}/health")
    return proc, key, port  # type: ignore[return-value]


def wait_ready(url: str, timeout: float = 180.0) -> None:
    """Until /health says 200 (it answers 503 while the models load)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, urllib.error.HTTPError), \
                urllib.request.urlopen(url, timeout=2) as resp:
            if resp.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready in {timeout} s")


@contextlib.asynccontextmanager
async def connections(port: int, key: str, model: str,
                      conc: int) -> AsyncIterator[tuple[list[Any], bytes]]:
    """``conc`` warm keep-alive connections to a server, and the one-input request body."""
    base = f"http://127.0.0.1:{port}/api/v1"
    body = orjson.dumps({"model": model, "input": hb.SHORT, "encoding_format": "base64"})
    conns = await hb.open_conns("raw", base, key, conc, body)
    try:
        yield conns, body
    finally:
        await hb.close_conns(conns)


def round_order(servers: dict[Any, Any], r: int) -> list[tuple[Any, Any]]:
    """The servers in the order round ``r`` measures them: every other round reversed, so
    neither server of a pair always runs first (the machine's drift then favours neither)."""
    order = list(servers.items())
    return order if r % 2 == 0 else order[::-1]


async def measure(port: int, key: str, model: str, n: int, conc: int) -> dict[str, Any]:
    async with connections(port, key, model, conc) as (conns, body):
        result = await hb.run_load(conns, [(body, 1)] * n)
    lat = [x * 1000 for x in result.latencies_s]
    return {"rps": result.requests / result.wall_s, "p50": hb.percentile(lat, 50),
            "p99": hb.percentile(lat, 99), "lat": lat}


async def run_paced(conns: list[Any], body: bytes, n: int, rate: float) -> list[float]:
    """``n`` requests due every 1 / ``rate`` s on ``conns`` (at most one in flight each); each
    one's latency in ms, from when it was due if it had to wait for a connection (the server
    was behind), else from when it was sent (a late timer is the client's, not the server's)."""
    nxt = 0
    lat: list[float] = []
    t0 = time.perf_counter() + 0.01

    async def worker(conn: Any) -> None:
        nonlocal nxt
        while nxt < n:
            due = t0 + nxt / rate
            nxt += 1
            now = time.perf_counter()
            if now < due:
                await asyncio.sleep(due - now)
                due = time.perf_counter()
            status, data = await conn.post(body)
            lat.append((time.perf_counter() - due) * 1000)
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {data[:300]!r}")

    await asyncio.gather(*(worker(c) for c in conns))
    return lat


async def measure_paced(port: int, key: str, model: str, n: int, conc: int,
                        rate: float) -> dict[str, Any]:
    async with connections(port, key, model, conc) as (conns, body):
        lat = await run_paced(conns, body, n, rate)
    return {"p50": hb.percentile(lat, 50), "p99": hb.percentile(lat, 99), "lat": lat}


def paced_rate(results: dict[tuple[str, str], list[dict[str, Any]]], workload: str,
               names: list[str], fraction: float) -> float:
    """The rate every server of ``workload`` is offered: ``fraction`` of the slowest one's
    median closed-loop rate."""
    return fraction * min(statistics.median(r["rps"] for r in results[(workload, name)])
                          for name in names)


def paced_report(paced: dict[tuple[str, str], list[dict[str, Any]]],
                 rates: dict[str, float], names: list[str], workloads: list[str]) -> list[str]:
    """The equal-load table: per server the medians of its rounds' p50 and p99, and for each
    "on" server the median of each round's p99 against its "off" server's, and pooled."""
    lines = [f"\nat equal load (paced, open loop): {'workload':<8} {'server':<12} "
             f"{'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'p99 added':>9} {'pooled':>7}"]
    for workload in workloads:
        for name in names:
            runs = paced.get((workload, name))
            if not runs:
                continue
            added = pooled = verdict = ""
            if name in TARGETS:
                offs = paced[(workload, TARGETS[name][0])]
                value = statistics.median(p99_diffs(runs, offs))
                added = f"{value:+.2f}"
                pooled = f"{pooled_p99(runs) - pooled_p99(offs):+.2f}"
                verdict = "met" if value <= TARGET_P99_ADDED_MS else "not met"
            lines.append(
                f"{'':<34}{workload:<8} {name:<12} {rates[workload]:>7.0f} "
                f"{statistics.median(r['p50'] for r in runs):>7.2f} "
                f"{statistics.median(r['p99'] for r in runs):>7.2f} {added:>9} {pooled:>7}  "
                f"{verdict}")
    lines.append(f"(each round offers every server the same rate; p99 added <= "
                 f"{TARGET_P99_ADDED_MS} ms here says what accounting adds to a request's "
                 "latency when the server keeps up; the closed-loop verdict above stays the "
                 "verdict)")
    return lines


@contextlib.contextmanager
def scratch_databases(stores: list[str]) -> Iterator[dict[str, dict[str, str]]]:
    """The environment of each server kind of ``stores`` (sqlite, pg): PostgreSQL on a scratch
    schema, Redis under a scratch key prefix, both removed on exit."""
    import psycopg
    import redis

    envs: dict[str, dict[str, str]] = {}
    if "sqlite" in stores:
        envs.update({"sqlite-off": {}, "sqlite-on": {}})
    if "pg" not in stores:
        yield envs
        return
    schema = f"er_bench_{int(time.time())}_{secrets.token_hex(3)}"
    prefix = f"erbench:{secrets.token_hex(4)}:"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        pg = {"EMBEDROUTER_DATABASE_URL": f"{PG_URL}?options=-csearch_path%3D{schema}"}
        envs.update({"pg-off": pg,
                     "pg+redis-on": {**pg, "EMBEDROUTER_REDIS_URL": REDIS_URL,
                                     "EMBEDROUTER_REDIS_PREFIX": prefix}})
        yield envs
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        client = redis.Redis.from_url(REDIS_URL)
        for k in client.scan_iter(match=f"{prefix}*"):
            client.delete(k)


def end_round(root_url: str, before: dict[str, float] | None) -> float:
    """After a round: the local model's mean sequences a forward since ``before`` (NaN where
    nothing ran: remote rounds), once its idle memory release is over (see wait_for_release)."""
    after = hb.batcher_counters(root_url)
    shape = hb.batch_shape(before, after)
    if shape and after is not None:
        wait_for_release(root_url, after.get("idle_releases", 0.0))
    return shape["items_per_batch"] if shape else math.nan


LEDGER_METRICS = ("ledger_commits_total", "ledger_rows_total", "ledger_commit_seconds_sum")


def ledger_counters(root_url: str) -> dict[str, float] | None:
    """The ledger's cumulative commit counters from GET /metrics (None without them: a
    server with accounting off)."""
    lines = hb.metrics_lines(root_url)
    if lines is None:
        return None
    out = {}
    for line in lines:
        m = re.match(r"embedrouter_accounts_(ledger_\w+) (\S+)$", line)
        if m and m.group(1) in LEDGER_METRICS:
            out[m.group(1)] = float(m.group(2))
    return out if len(out) == len(LEDGER_METRICS) else None


def commit_shape(before: dict[str, float] | None,
                 after: dict[str, float] | None) -> tuple[float, float]:
    """A round's mean commit time (ms) and rows a commit: what each charged request waited
    for (a round's p99 is often its slowest commit or two). NaN where nothing committed."""
    if before is None or after is None:
        return math.nan, math.nan
    commits = after["ledger_commits_total"] - before["ledger_commits_total"]
    if commits <= 0:
        return math.nan, math.nan
    seconds = after["ledger_commit_seconds_sum"] - before["ledger_commit_seconds_sum"]
    rows = after["ledger_rows_total"] - before["ledger_rows_total"]
    return seconds / commits * 1000, rows / commits


def wait_for_release(root_url: str, before: float, timeout: float = 5.0) -> None:
    """Until the server's local model has released its idle memory after a round (~1 s
    after its last forward: engine.batcher.DEFAULT_IDLE_RELEASE_S). That release costs tens
    of ms of CPU; left to happen during the next server's round, it stalls that one, and the
    server measured after a given one is not always of the same kind."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (hb.batcher_counters(root_url) or {}).get("idle_releases", 0.0) > before:
            return
        time.sleep(0.05)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants (the
    SQLite ledger process is the server's child). PostgreSQL's and Redis's own CPU is not in
    it: they are not the server's processes."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            total += hb.proc_cpu_s(p)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue  # gone meanwhile
    return total


def db_cpu_s() -> float:
    """CPU seconds used so far by this machine's PostgreSQL and Redis server processes (the
    servers' backends included): the share of a request's work that "CPU us" leaves out."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() in ("postgres", "redis-server"):
                total += hb.proc_cpu_s(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return total


def p99_diffs(runs: list[dict[str, Any]], offs: list[dict[str, Any]],
              skip: Callable[[dict[str, Any]], bool] = lambda on: False) -> list[float]:
    """Each round's p99 of the "on" server minus the "off" one's, rounds ``skip`` names left out."""
    return [on["p99"] - off["p99"] for on, off in zip(runs, offs, strict=True) if not skip(on)]


def report(results: dict[tuple[str, str], list[dict[str, Any]]], names: list[str],
           workloads: list[str], disk_ms: list[float] | None = None,
           paced: list[str] | None = None) -> bool:
    """Print the table; True if every target is met.

    "vs off" and "p99 added" are medians over rounds of each round's own comparison (the "on"
    server against the "off" one measured next to it in the same round): this machine's speed
    drifts by tens of percent within a minute, and a ratio of two medians taken from different
    moments carries that drift into the verdict.

    "pooled", shown beside it, is the p99 of all the "on" server's requests over every round
    minus the same of the "off" server's: a steadier order statistic than a round's own p99
    (the 10th-worst of 1,000 closed-loop requests), but one round in which the machine stalls
    one server decides it, which the median of rounds shrugs off."""
    ok = True
    print(f"\n{'workload':<8} {'server':<12} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'vs off':>8} {'p99 added':>9} {'pooled':>7} {'CPU us':>7} {'DB us':>6} {'batch':>5} "
          f"{'commit':>8}  "
          "per round: req/s (vs off)")
    for workload in workloads:
        for name in names:
            runs = results[(workload, name)]
            m = {k: statistics.median(r.get(k, math.nan) for r in runs)
                 for k in ("rps", "p50", "p99", "cpu_us", "db_us", "batch", "commit_ms",
                           "commit_rows")}
            commit = "" if math.isnan(m["commit_ms"]) else \
                f"{m['commit_ms']:.2f}/{m['commit_rows']:.0f}"
            ratio = added = pooled = verdict = ""
            rounds = [f"{r['rps']:.0f}" for r in runs]
            if name in TARGETS:
                base, limit = TARGETS[name]
                offs = results[(workload, base)]
                costs = [1 - on["rps"] / off["rps"] for on, off in zip(runs, offs, strict=True)]
                cost = statistics.median(costs)
                p99_added = statistics.median(p99_diffs(runs, offs))
                good = cost <= limit and p99_added <= TARGET_P99_ADDED_MS
                ok &= good
                ratio = f"{-cost:+.1%}"
                added = f"{p99_added:+.2f}"
                pooled = f"{pooled_p99(runs) - pooled_p99(offs):+.2f}"
                verdict = "PASS" if good else "FAIL"
                rounds = [f"{r} ({-c:+.0%})" for r, c in zip(rounds, costs, strict=True)]
            print(f"{workload:<8} {name:<12} {m['rps']:>8.0f} {m['p50']:>7.2f} {m['p99']:>7.2f} "
                  f"{ratio:>8} {added:>9} {pooled:>7} {m['cpu_us']:>7.0f} "
                  f"{'' if math.isnan(m['db_us']) else format(m['db_us'], '.0f'):>6} "
                  f"{'' if math.isnan(m['batch']) else format(m['batch'], '.1f'):>5} "
                  f"{commit:>8}  "
                  f"{', '.join(rounds)} {verdict}")
    print(f"\ntargets: throughput cost <= 15% (SQLite) and <= 25% (PostgreSQL + Redis) against "
          f"accounting off on the same store; p99 added <= {TARGET_P99_ADDED_MS} ms. Columns "
          f"other than pooled: medians of rounds; \"vs off\" and \"p99 added\": of each "
          f"round's own comparison. pooled: p99 of all rounds' requests, on - off. CPU us: the "
          f"server's processes' CPU per request (the SQLite ledger process included; "
          f"PostgreSQL's and Redis's not). DB us: this machine's PostgreSQL and Redis processes' "
          f"CPU per request (all of them, whichever server's). batch: the local model's mean "
          f"sequences per forward pass. commit: the ledger's mean commit (ms) / rows a "
          f"commit, what each charged request waited for")
    if paced:
        print("\n".join(paced))
    lines = disk_lines(results, names, workloads, disk_ms or [])
    if lines:
        print("\n" + "\n".join(lines) + "\n(the verdicts above count every round: a charge "
              "is durable before its response, so a stalled disk is part of what accounting "
              "costs on this machine)")
    return ok


def load_disk_samples(path: Path) -> list[tuple[float, float]]:
    """The disk probe's (wall time, fdatasync ms) samples, in order."""
    samples = []
    with contextlib.suppress(OSError):
        for line in Path(f"{path}.log").read_text().splitlines():
            with contextlib.suppress(ValueError):
                at, ms = line.split()
                samples.append((float(at), float(ms)))
    return samples


def attach_disk_stalls(results: dict[tuple[str, str], list[dict[str, Any]]],
                       samples: list[tuple[float, float]]) -> None:
    """Give each round the longest fdatasync the probe saw while it ran (``disk_max``)."""
    for runs in results.values():
        for r in runs:
            start, end = r["window"]
            r["disk_max"] = max((ms for at, ms in samples if start <= at <= end), default=math.nan)


def disk_lines(results: dict[tuple[str, str], list[dict[str, Any]]], names: list[str],
               workloads: list[str], disk_ms: list[float]) -> list[str]:
    """What the disk did during the run, and the p99 added of the rounds it did not stall:
    information beside the verdict, never a substitute for it."""
    if not disk_ms:
        return []
    every = sorted(disk_ms)
    lines = [f"disk: {len(every)} fdatasyncs of {DISK_PROBE_BYTES} bytes by a probe process "
             f"during the run: p50 {hb.percentile(every, 50):.2f}, p99 "
             f"{hb.percentile(every, 99):.2f}, p99.9 {hb.percentile(every, 99.9):.2f}, max "
             f"{every[-1]:.1f} ms; over {DISK_STALL_MS:g} ms: "
             f"{sum(ms > DISK_STALL_MS for ms in every)}"]
    for workload in workloads:
        for name in names:
            if name not in TARGETS or (workload, name) not in results:
                continue
            runs, offs = results[(workload, name)], results[(workload, TARGETS[name][0])]
            calm = p99_diffs(runs, offs, skip=lambda on: on.get("disk_max", math.nan)
                             > DISK_STALL_MS)
            stalled = len(runs) - len(calm)
            tail = (f"p99 added in the other {len(calm)}: median "
                    f"{statistics.median(calm):+.2f} ms" if calm else "no other round")
            lines.append(f"disk, {workload} {name}: a stall over {DISK_STALL_MS:g} ms in "
                         f"{stalled} of {len(runs)} rounds; {tail}")
    return lines


def pooled_p99(runs: list[dict[str, Any]]) -> float:
    """The p99 of every request of every round together."""
    return hb.percentile([x for r in runs for x in r["lat"]], 99)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Many short rounds rather than a few long ones: each verdict is a median of per-round
    # pairs, and a pair measured within a second or two sees the same machine (a shared VM's
    # speed was seen to drift by 2x within a minute).
    ap.add_argument("--requests", type=int, default=1000, help="per round and server")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--stores", default="sqlite,pg", help="comma-separated: sqlite, pg")
    ap.add_argument("--workloads", default="local,remote", help="comma-separated: local, remote")
    ap.add_argument("--disk-probe-ms", type=float, default=DISK_PROBE_MS,
                    help="fdatasync a small file this often during the run (0: never)")
    ap.add_argument("--disk-probe-dir", default=None,
                    help="where (default: the run's temporary directory, beside the SQLite "
                         "stores; give PostgreSQL's WAL disk if it is another)")
    ap.add_argument("--server-cpus", default=None,
                    help="run the servers on these CPUs only (taskset's list, e.g. 0): the "
                         "rest stay for PostgreSQL, Redis and the client, as when the "
                         "databases run on machines of their own")
    ap.add_argument("--paced", type=int, default=8,
                    help="rounds at equal offered load after each workload's closed-loop "
                         "rounds (0: none)")
    ap.add_argument("--paced-fraction", type=float, default=0.3,
                    help="the offered rate, as a fraction of the slowest server's median "
                         "closed-loop rate")
    ap.add_argument("--paced-seconds", type=float, default=2.5,
                    help="each paced round's length (its request count is rate x this)")
    args = ap.parse_args()
    if args.server_cpus:
        print(f"[bench] servers pinned to CPUs {args.server_cpus}", flush=True)
    stores = args.stores.split(",")
    workloads = args.workloads.split(",")
    procs: list[Any] = []
    with tempfile.TemporaryDirectory() as tmpdir, contextlib.ExitStack() as stack:
        tmp = Path(tmpdir)
        envs = stack.enter_context(scratch_databases(stores))
        stack.callback(lambda: [pb.stop(p) for p in procs])  # before the databases go
        up_port = pb.free_port()
        procs.append(pb.spawn([sys.executable, "-c", pb.UPSTREAM, str(up_port)]))
        upstream = f"http://127.0.0.1:{up_port}/v1"
        probe, probe_path = None, Path(args.disk_probe_dir or tmp) / "disk-probe"
        if args.disk_probe_ms > 0:
            probe = pb.spawn([sys.executable, "-c", DISK_PROBE, str(probe_path),
                              str(args.disk_probe_ms / 1000), str(DISK_PROBE_BYTES)])
            procs.append(probe)
        time.sleep(1.0)
        servers = {}
        for name, env in envs.items():
            hb.log(f"starting {name}")
            proc, key, port = start(name, tmp, upstream, env,  # type: ignore[misc]
                                    args.server_cpus)
            procs.append(proc)
            servers[name] = (port, key, proc.pid)
        results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        paced: dict[tuple[str, str], list[dict[str, Any]]] = {}
        rates: dict[str, float] = {}
        for workload, model in (("local", LOCAL), ("remote", REMOTE)):
            if workload not in workloads:
                continue
            for port, key, _ in servers.values():  # warm-up: pools, caches, counters
                asyncio.run(measure(port, key, model, 200, args.concurrency))
            for r in range(args.repeats):
                for name, (port, key, pid) in round_order(servers, r):
                    root = f"http://127.0.0.1:{port}"
                    cpu, db, before = tree_cpu_s(pid), db_cpu_s(), hb.batcher_counters(root)
                    ledger = ledger_counters(root)
                    started = time.time()
                    out = asyncio.run(measure(port, key, model, args.requests, args.concurrency))
                    out["window"] = (started, time.time())
                    out["cpu_us"] = (tree_cpu_s(pid) - cpu) / args.requests * 1e6
                    out["db_us"] = (db_cpu_s() - db) / args.requests * 1e6
                    out["commit_ms"], out["commit_rows"] = commit_shape(ledger,
                                                                        ledger_counters(root))
                    out["batch"] = end_round(root, before)
                    results.setdefault((workload, name), []).append(out)
                    hb.log(f"{workload} round {r + 1} {name}: {out['rps']:.0f} req/s, "
                           f"p99 {out['p99']:.2f} ms, server CPU {out['cpu_us']:.0f} us/req, "
                           f"{out['batch']:.1f} sequences a forward")
            if args.paced <= 0:
                continue
            rate = rates[workload] = paced_rate(results, workload, list(servers),
                                                args.paced_fraction)
            n = max(50, round(rate * args.paced_seconds))
            for r in range(args.paced):
                for name, (port, key, _) in round_order(servers, r):
                    root = f"http://127.0.0.1:{port}"
                    before = hb.batcher_counters(root)
                    out = asyncio.run(measure_paced(port, key, model, n, args.concurrency, rate))
                    out["batch"] = end_round(root, before)
                    paced.setdefault((workload, name), []).append(out)
                    hb.log(f"{workload} paced round {r + 1} {name}: {rate:.0f} req/s offered, "
                           f"p50 {out['p50']:.2f} ms, p99 {out['p99']:.2f} ms, "
                           f"{out['batch']:.1f} sequences a forward")
        samples = []
        if probe is not None:
            pb.stop(probe)
            samples = load_disk_samples(probe_path)
            attach_disk_stalls(results, samples)
        ok = report(results, list(servers), workloads, [ms for _, ms in samples],
                    paced_report(paced, rates, list(servers), workloads) if paced else None)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
