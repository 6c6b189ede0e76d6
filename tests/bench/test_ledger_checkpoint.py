"""bench/ledger_checkpoint.py: a tiny run prints both checkpoint modes' commit times, ordered,
and the ledger's own checkpoints (none in SQLite's automatic mode: it checkpoints in a commit)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_tiny_run_prints_each_modes_commit_times(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ledger_checkpoint.py"), "--commits", "20",
         "--rows", "32", "--gap-ms", "1", "--prefill", "1000", "--repeats", "2",
         "--dir", str(tmp_path)],
        capture_output=True, text=True, check=True, timeout=120, cwd=ROOT).stdout
    rows = {line.split()[0]: [float(x) for x in line.split()[1:]]
            for line in out.splitlines() if line.startswith(("sqlite-auto ", "ledger "))}
    assert set(rows) == {"sqlite-auto", "ledger"}
    for mode, (p50, p90, p99, most, checkpoint) in rows.items():
        assert 0 < p50 <= p90 <= p99 <= most, mode
        # 20 commits of 32 rows pass CHECKPOINT_ROWS (256) twice: only the ledger checkpoints.
        assert math.isnan(checkpoint) == (mode == "sqlite-auto"), mode
    assert list(tmp_path.iterdir()) == []  # the databases went with the run
