"""bench/redis_script_cost.py: a tiny run against the local Redis completes, checks its own
arithmetic (every claim granted, every hold settled, the account adding up) and prints both
figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_tiny_run_prints_the_cost_of_a_claim_and_of_a_settle() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "redis_script_cost.py"), "--claims", "40",
         "--batch", "16", "--claim-batch", "1,7", "--repeats", "1"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = re.findall(r"median ([0-9.]+) us", proc.stdout)
    assert len(figures) == 4 and all(float(x) > 0 for x in figures), proc.stdout
    assert "(1 a call)" in proc.stdout and "(7 a call)" in proc.stdout
