"""bench/roundtrip_cpu.py: a tiny run against the machine's PostgreSQL and Redis prints every
call kind with positive, ordered figures, and leaves no scratch schema behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
KINDS = ["pg-pool-select", "pg-held-select", "pg-ledger-commit", "redis-script",
         "redis-py-ping"]


def _scratch_schemas() -> set[str]:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test") as conn:
        return {r[0] for r in conn.execute(
            "SELECT schema_name FROM information_schema.schemata "
            "WHERE schema_name LIKE 'er_cpu_%'")}


def test_a_tiny_run_prints_every_call_kind() -> None:
    before = _scratch_schemas()
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "roundtrip_cpu.py"), "--calls", "20",
         "--repeats", "2"], capture_output=True, text=True, check=True, timeout=120,
        cwd=ROOT).stdout
    rows = {line.split()[0]: [float(x) for x in line.split()[1:]]
            for line in out.splitlines()[1:]}
    assert list(rows) == KINDS
    for name, (cpu_min, cpu_mid, wall_min, wall_mid) in rows.items():
        assert 0 < cpu_min <= cpu_mid, name
        assert 0 < wall_min <= wall_mid, name
    assert _scratch_schemas() <= before
