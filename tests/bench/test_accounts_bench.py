"""bench/accounts_bench.py: its verdict arithmetic (per-round pairs), and a tiny run on real
servers (SQLite, remote workload)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bench.scripts import load_bench

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


ab = load_bench("accounts_bench")


def _r(rps: float, p99: float, lat: list[float] | None = None) -> dict[str, object]:
    # ``lat``: the round's latencies (ms); by default 100 requests whose p99 is ``p99``.
    return {"rps": rps, "p50": 1.0, "p99": p99, "cpu_us": 100.0,
            "lat": lat if lat is not None else [1.0] * 98 + [p99] * 2}


def test_the_verdict_is_the_median_of_each_rounds_own_comparison(
        capsys: pytest.CaptureFixture[str]) -> None:
    # The machine slows down after round 1 and, in round 2, speeds up again between the off
    # and the on server: the ratio of medians would say +50% (900 against 600); each round's
    # own pair says -10%, +50%, -10%, whose median is the verdict.
    results = {("remote", "sqlite-off"): [_r(1000, 10), _r(600, 20), _r(600, 20)],
               ("remote", "sqlite-on"): [_r(900, 12), _r(900, 12), _r(540, 22)]}
    assert ab.report(results, ["sqlite-off", "sqlite-on"], ["remote"]) is True
    line = next(x for x in capsys.readouterr().out.splitlines() if "sqlite-on" in x)
    assert "-10.0%" in line and "+2.00" in line and line.endswith("PASS")


def test_pooled_is_the_difference_of_the_p99s_of_all_requests(
        capsys: pytest.CaptureFixture[str]) -> None:
    # Both servers have six stalled requests out of 300: the off server's all in one round,
    # the on server's two in each. Each round's own p99 says +35 ms in two rounds of three
    # (the verdict); over all their requests the two p99s are the same.
    quiet = [5.0] * 100
    results = {("remote", "sqlite-off"): [_r(1000, 40, [5.0] * 94 + [40.0] * 6),
                                          _r(1000, 5, quiet), _r(1000, 5, quiet)],
               ("remote", "sqlite-on"): [_r(1000, 40, [5.0] * 98 + [40.0] * 2)] * 3}
    assert ab.report(results, ["sqlite-off", "sqlite-on"], ["remote"]) is False
    line = next(x for x in capsys.readouterr().out.splitlines() if "sqlite-on" in x).split()
    assert line[6] == "+35.00"  # p99 added: the median of 0, +35, +35
    assert line[7] == "+0.00"  # pooled


def test_a_cost_over_the_target_in_most_rounds_fails(capsys: pytest.CaptureFixture[str]) -> None:
    results = {("remote", "sqlite-off"): [_r(1000, 10)] * 3,
               ("remote", "sqlite-on"): [_r(800, 10), _r(1000, 10), _r(800, 10)]}
    assert ab.report(results, ["sqlite-off", "sqlite-on"], ["remote"]) is False
    assert "-20.0%" in capsys.readouterr().out


def test_the_p99_bound_alone_can_fail(capsys: pytest.CaptureFixture[str]) -> None:
    results = {("remote", "sqlite-off"): [_r(1000, 10)] * 3,
               ("remote", "sqlite-on"): [_r(1000, 16)] * 3}
    assert ab.report(results, ["sqlite-off", "sqlite-on"], ["remote"]) is False
    assert "+6.00" in capsys.readouterr().out


def test_rounds_the_disk_stalled_in_are_named_and_the_verdict_still_counts_them(
        capsys: pytest.CaptureFixture[str]) -> None:
    off = [_r(1000, 10)] * 3
    on = [{**_r(1000, 40), "window": (0.0, 1.0)}, {**_r(1000, 12), "window": (2.0, 3.0)},
          {**_r(1000, 50), "window": (4.0, 5.0)}]
    samples = [(0.5, 80.0), (1.5, 90.0), (2.5, 0.2), (4.5, 26.0), (7.0, 300.0)]
    ab.attach_disk_stalls({("remote", "sqlite-on"): on}, samples)
    assert [r["disk_max"] for r in on] == [80.0, 0.2, 26.0]  # only samples inside each window
    results = {("remote", "sqlite-off"): off, ("remote", "sqlite-on"): on}
    assert ab.report(results, ["sqlite-off", "sqlite-on"], ["remote"],
                     [ms for _, ms in samples]) is False  # +30 ms: the median of every round
    out = capsys.readouterr().out
    assert "max 300.0 ms; over 20 ms: 4" in out
    assert "disk, remote sqlite-on: a stall over 20 ms in 2 of 3 rounds; p99 added in the " \
        "other 1: median +2.00 ms" in out


def test_a_tiny_run_on_sqlite_measures_both_servers_and_their_cpu() -> None:
    # The verdict of 50-request rounds means nothing: only that the run completes and prints.
    # Pinned, as for a steadier comparison: the servers must still start and answer.
    proc = subprocess.run(
        [sys.executable, str(BENCH / "accounts_bench.py"), "--requests", "50", "--repeats", "2",
         "--stores", "sqlite", "--workloads", "remote", "--server-cpus", "0",
         "--paced", "1", "--paced-seconds", "0.5"],
        capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    rows = [x.split() for x in proc.stdout.splitlines() if x.startswith("remote ")]
    assert [r[1] for r in rows] == ["sqlite-off", "sqlite-on"]
    for row in rows:
        assert float(row[2]) > 0  # req/s
    assert rows[1][-1] in ("PASS", "FAIL")
    # The "on" server's ledger: its mean commit (ms) and rows a commit; the "off" one has none.
    commits = [[c for c in row if re.fullmatch(r"\d+\.\d\d/\d+", c)] for row in rows]
    assert commits[0] == [] and len(commits[1]) == 1
    ms, per_commit = commits[1][0].split("/")
    assert float(ms) > 0 and int(per_commit) >= 1
    assert "disk: " in proc.stdout and "disk, remote sqlite-on: " in proc.stdout
    assert "[bench] servers pinned to CPUs 0" in proc.stdout
    paced = [x.split() for x in proc.stdout.splitlines() if x.startswith(" " * 34 + "remote")]
    assert [r[1] for r in paced] == ["sqlite-off", "sqlite-on"]
    assert float(paced[0][2]) > 0 and paced[0][2] == paced[1][2]  # one offered rate for both


def test_scratch_databases_leave_no_schema_or_redis_keys_behind() -> None:
    import psycopg
    import redis

    with ab.scratch_databases(["sqlite", "pg"]) as envs:
        assert list(envs) == ["sqlite-off", "sqlite-on", "pg-off", "pg+redis-on"]
        url = envs["pg-off"]["EMBEDROUTER_DATABASE_URL"]
        schema = url.rsplit("%3D", 1)[1]
        prefix = envs["pg+redis-on"]["EMBEDROUTER_REDIS_PREFIX"]
        assert envs["pg+redis-on"]["EMBEDROUTER_DATABASE_URL"] == url
        client = redis.Redis.from_url(ab.REDIS_URL)
        client.set(f"{prefix}probe", 1)
        with psycopg.connect(ab.PG_URL) as conn:
            assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                                (schema,)).fetchone() is not None
    with psycopg.connect(ab.PG_URL) as conn:
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                            (schema,)).fetchone() is None
    assert client.get(f"{prefix}probe") is None
    with ab.scratch_databases(["sqlite"]) as envs:
        assert list(envs) == ["sqlite-off", "sqlite-on"]


class _SlowConnection:
    """A connection whose every request takes ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.sent: list[float] = []

    async def post(self, body: bytes) -> tuple[int, bytes]:
        self.sent.append(time.perf_counter())
        await asyncio.sleep(self.seconds)
        return 200, b"{}"


def test_paced_requests_go_out_on_schedule_and_a_backlog_counts_from_when_they_were_due(
) -> None:
    # Fast server: requests leave every 1 / rate s and each one's latency is its own.
    fast = _SlowConnection(0.001)
    lat = asyncio.run(ab.run_paced([fast, _SlowConnection(0.001)], b"{}", 20, 100.0))
    assert len(lat) == 20 and max(lat) < 30
    # One connection at 50 ms a request, asked for one every 10 ms: request i waits for the
    # i before it, and its latency counts from when it was due (about 50 + 40 i ms), not from
    # when it could be sent (50 ms each), which would hide the backlog.
    slow = _SlowConnection(0.05)
    lat = asyncio.run(ab.run_paced([slow], b"{}", 5, 100.0))
    assert lat[0] < 70
    assert lat[-1] > 50 + 4 * 40 - 15


def test_the_equal_load_table_is_the_median_of_each_rounds_p99_difference() -> None:
    paced = {("remote", "sqlite-off"): [_r(0, 10), _r(0, 30), _r(0, 10)],
             ("remote", "sqlite-on"): [_r(0, 12), _r(0, 31), _r(0, 30)]}
    lines = ab.paced_report(paced, {"remote": 500.0}, ["sqlite-off", "sqlite-on"], ["remote"])
    line = next(x for x in lines if "sqlite-on" in x)
    on = line.split()
    assert on[2] == "500" and on[5] == "+2.00"  # the median of +2, +1, +20
    assert line.endswith(" met") and "not met" not in line
    paced[("remote", "sqlite-on")] = [_r(0, 16), _r(0, 31), _r(0, 30)]  # +6: over 5 ms
    lines = ab.paced_report(paced, {"remote": 500.0}, ["sqlite-off", "sqlite-on"], ["remote"])
    assert next(x for x in lines if "sqlite-on" in x).endswith(" not met")
    assert lines[-1].startswith("(each round offers every server the same rate")
