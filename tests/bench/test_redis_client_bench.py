"""bench/redis_client_bench.py: a tiny run against the real Redis, both clients answering, and
both packing paths timed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.redis_scratch import require_redis

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_run_prints_packing_and_both_clients_at_both_concurrencies() -> None:
    require_redis()
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "redis_client_bench.py"), "--calls", "64",
         "--repeats", "1"], capture_output=True, text=True, check=True, timeout=60).stdout
    lines = out.splitlines()
    assert len(lines) == 6
    for line, name in zip(lines[:2], ["pack", "general path"], strict=True):
        assert line.startswith(f"packing  {name:<14}") and "us/command" in line
    for line, (c, name) in zip(lines[2:], [(1, "redis.asyncio"), (1, "redis_wire"),
                                           (32, "redis.asyncio"), (32, "redis_wire")],
                               strict=True):
        assert line.startswith(f"c={c:<3} {name:<14}") and "us CPU/call" in line
