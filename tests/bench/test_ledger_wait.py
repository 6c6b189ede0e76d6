"""bench/ledger_wait.py: a tiny run against each real store (PostgreSQL; SQLite with its ledger
process) prints each setting's waits, ordered, and the rows it committed together."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("store", ["pg", "sqlite"])
def test_a_tiny_run_prints_the_wait_with_the_cores_idle_and_busy(store: str) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ledger_wait.py"), "--repeats", "2",
         "--seconds", "0.3", "--rate", "200", "--batch", "5", "--burn", "0,1",
         "--store", store],
        capture_output=True, text=True, check=True, timeout=120, cwd=ROOT).stdout
    assert out.startswith(f"{store}: 200 rows/s in groups of 5")
    lines = [x for x in out.splitlines() if "processes spinning:" in x]
    assert [x.split()[0] for x in lines] == ["0", "1"]
    for line in lines:
        found = re.search(r"p50 +([0-9.]+) +p99 +([0-9.]+) +p99\.9 +([0-9.]+) ms; "
                          r"([0-9.]+) rows a commit", line)
        assert found is not None, line
        p50, p99, p999, per = map(float, found.groups())
        assert 0 < p50 <= p99 <= p999
        assert per >= 5  # rows handed in at once always share a commit
