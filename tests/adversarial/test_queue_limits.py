"""Issue 8 item 9: the queue bound against max_inputs, and Retry-After from the drain rate."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from embedrouter.settings import SettingsError, load_settings
from tests.adversarial.conftest import LONG, MAX_INPUTS, MAX_QUEUE_ITEMS, MODEL, batcher_gauge
from tests.support.live import LiveServer

pytestmark = pytest.mark.adversarial

SMALL_QUEUE = "[server]\nmax_inputs = 64\n\n[engine]\nmax_queue_items = 63\n"


def test_queue_smaller_than_max_inputs_is_a_settings_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(SMALL_QUEUE)
    with pytest.raises(SettingsError) as info:
        load_settings(config, env={})
    assert "engine.max_queue_items" in str(info.value)
    assert "server.max_inputs" in str(info.value)
    # Equal is fine: one request of max_inputs inputs fits an empty queue exactly.
    config.write_text("[server]\nmax_inputs = 64\n\n[engine]\nmax_queue_items = 64\n")
    assert load_settings(config, env={}).max_queue_items == 64
    # The default max_queue_items (8192) against a larger max_inputs is caught too.
    config.write_text("[server]\nmax_inputs = 9000\n")
    with pytest.raises(SettingsError, match="max_queue_items"):
        load_settings(config, env={})


def test_serve_refuses_to_start_with_a_queue_smaller_than_max_inputs(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(SMALL_QUEUE)
    proc = subprocess.run(
        [sys.executable, "-m", "embedrouter", "serve", "--port", "0", "--data-dir",
         str(tmp_path / "data"), "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "engine.max_queue_items" in proc.stderr and "server.max_inputs" in proc.stderr
    assert "ready on" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(("items_ahead", "items_per_s", "expected"), [
    (0, 100.0, 1),          # empty queue: the minimum
    (1, 1000.0, 1),         # drains in 1 ms: rounded up to the minimum
    (100, 100.0, 1),        # exactly one second
    (101, 100.0, 2),        # a fraction over rounds up
    (8192, 300.0, 28),      # a full default queue at the corpus rate on 2 cores
    (256, 40.0, 7),         # 256 long inputs at 40/s
    (10**6, 1.0, 60),       # clamped to the maximum
    (500, 0.0, 1),          # no rate measured yet: the minimum, not a division by zero
    (500, -3.0, 1),         # nonsense rate: the minimum
    (500, float("nan"), 1),
    (500, float("inf"), 1),
    (-5, 100.0, 1),
])
def test_retry_after_table(items_ahead: int, items_per_s: float, expected: int) -> None:
    # Imported here so that the module's other tests still run against a build without it.
    from embedrouter.engine.batcher import retry_after_seconds

    assert retry_after_seconds(items_ahead, items_per_s) == expected


async def test_retry_after_reflects_the_queue_drain_rate(small_queue_server: LiveServer) -> None:
    """Fill the small queue with 256-token inputs: Retry-After must cover the queue ahead (several
    seconds at this rate), not the overflow of one request (always 1 s before)."""
    server = small_queue_server
    body = {"model": MODEL, "input": [LONG] * MAX_INPUTS}
    # no-store: through the vector cache these identical inputs would be computed once.
    headers = {"authorization": f"Bearer {server.api_key}", "cache-control": "no-store"}
    limits = httpx.Limits(max_connections=80, max_keepalive_connections=80)
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=120,
                                 limits=limits) as c:
        # One completed batch of long inputs gives the batcher a measured rate.
        assert (await c.post("/embeddings", json=body)).status_code == 200
        rate_before = batcher_gauge(server, "items_per_s")
        assert rate_before > 0
        # Twice what the queue holds, all at once.
        tasks = [asyncio.ensure_future(c.post("/embeddings", json=body))
                 for _ in range(2 * MAX_QUEUE_ITEMS // MAX_INPUTS)]
        refused: list[httpx.Response] = []
        deadline = time.monotonic() + 60
        try:
            for _ in range(1200):  # bounded: 1200 x 50 ms, and the deadline
                await asyncio.sleep(0.05)
                refused = [t.result() for t in tasks
                           if t.done() and not t.exception() and t.result().status_code == 429]
                if refused or all(t.done() for t in tasks) or time.monotonic() > deadline:
                    break
        finally:
            for t in tasks:
                t.cancel()  # hang up on the rest: their queued items are dropped
            await asyncio.gather(*tasks, return_exceptions=True)
    assert refused, "a queue of 256 items never refused 512"
    reply = refused[0]
    assert reply.json()["error"]["code"] == 429
    retry = int(reply.headers["retry-after"])
    assert reply.json()["error"]["metadata"]["retry_after_seconds"] == retry
    # A request of 8 is refused only with more than 248 items queued, so Retry-After must be
    # about 248 / rate; the old formula (the overflow, <= 8 items, over the rate) gives ~1/30 of
    # that. The rate is read before and after and allowed to move by 2x in between.
    rate_after = batcher_gauge(server, "items_per_s")
    lo, hi = min(rate_before, rate_after), max(rate_before, rate_after)
    ahead = MAX_QUEUE_ITEMS - MAX_INPUTS
    assert retry >= 2, (retry, lo, hi)
    assert retry >= min(60, ahead / hi / 2), (retry, lo, hi)
    assert retry <= min(60, math.ceil(MAX_QUEUE_ITEMS / lo * 2)), (retry, lo, hi)
