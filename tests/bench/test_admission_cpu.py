"""bench/admission_cpu.py: a tiny run of every mode, each printing a positive figure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("concurrency", [1, 32])
def test_a_tiny_run_prints_every_mode(concurrency: int) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "admission_cpu.py"), "--requests", "64",
         "--repeats", "2", "--concurrency", str(concurrency)],
        capture_output=True, text=True, check=True, timeout=120).stdout
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["off", "noop", "sqlite", "pg"]
    for line in lines:
        found = re.search(r"min +([0-9.]+) us, median +([0-9.]+) us", line)
        assert found is not None, line
        low, mid = map(float, found.groups())
        assert 0 < low <= mid
