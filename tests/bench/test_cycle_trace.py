"""bench/cycle_trace.py: its phase arithmetic, and tiny runs on real servers (PostgreSQL +
Redis, and SQLite; the local model)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.scripts import load_bench

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


ct = load_bench("cycle_trace")


def _cycle(start: float, size: int = 32) -> list[list[object]]:
    """One gap of 10 ms after a forward ending at ``start`` (s): a commit 1-3 ms in, key
    reads ending at 5 and 6 ms, a claim call 7-8 ms, the next forward at 10 ms."""
    ms = 0.001
    return [["commit", start + 1 * ms, start + 3 * ms, size],
            ["key", start + 4 * ms, start + 5 * ms, size - 1],
            ["key", start + 4.5 * ms, start + 6 * ms, 1],
            ["claim", start + 7 * ms, start + 8 * ms, size],
            ["fwd", start + 10 * ms, start + 100 * ms, size]]


def test_each_gap_is_split_into_its_phases_from_the_forwards_end() -> None:
    events: list[list[object]] = [["fwd", 0.0, 0.09, 32]]
    start = 0.09
    for _ in range(20):
        events += _cycle(start)
        start += 0.1
    rows = ct.cycles(events, 16)
    assert len(rows) == 18  # 20 gaps, the first tenth left out as warm-up
    row = rows[-1]
    assert row["gap"] == pytest.approx(10.0)
    assert (row["commit first"], row["commit done"]) == (pytest.approx(1.0), pytest.approx(3.0))
    assert row["key done"] == pytest.approx(6.0)  # the later of the two reads
    assert row["claim done"] == pytest.approx(8.0)
    assert row["claims -> fwd"] == pytest.approx(2.0)


def test_a_gap_before_a_split_cohorts_small_forward_is_left_out() -> None:
    events: list[list[object]] = [["fwd", 0.0, 0.09, 32]]
    start = 0.09
    for i in range(20):
        events += _cycle(start, size=4 if i % 2 else 32)
        start += 0.1
    assert len(ct.cycles(events, 16)) == 9  # the 10 full ones, less a tenth of them


@pytest.mark.slow
@pytest.mark.parametrize("store", ["pg", "sqlite"])
def test_a_tiny_run_traces_both_servers(store: str) -> None:
    off, on = ("pg-off", "pg+redis-on") if store == "pg" else ("sqlite-off", "sqlite-on")
    out = subprocess.run(
        [sys.executable, str(BENCH / "cycle_trace.py"), "--store", store, "--requests", "96",
         "--rounds", "1", "--concurrency", "8"], capture_output=True, text=True, check=True,
        timeout=400, cwd=ROOT).stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.startswith((f"{off} ", f"{on} "))}
    assert set(rows) == {off, on}, out
    for row in rows.values():
        assert int(row[1]) > 0, row  # cycles
    number = r"-?[0-9]+\.[0-9]{2}"
    # gap, commit first, commit done, key done, claim done, claims -> fwd: the "on" server
    # commits; with PostgreSQL + Redis it also reads keys and claims (SQLite: cached, in process).
    seen = [bool(re.fullmatch(number, x)) for x in rows[on][2:8]]
    assert seen == ([True] * 6 if store == "pg" else [True, True, True, False, False, False])
    assert f"gap vs {off}" in " ".join(rows[on])
