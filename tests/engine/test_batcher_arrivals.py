"""Batcher: a batch for an idle worker waits, briefly, for requests still on their way to it
(in their key read or admission claim), so a group of clients that came back together is
not split into a small forward and a large one (embedrouter/arrivals.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from embedrouter.arrivals import Arrivals, Ticket
from embedrouter.engine import Batcher
from tests.engine.gated import GatedModel
from tests.engine.util import entered, until

A, B, C = [101, 7592, 102], [101, 7593, 102], [101, 7594, 102]
# The wait is capped at half the last forward: a first forward held this long at its gate
# makes that half (0.5 s) far longer than anything these tests time, whatever the machine.
HELD_S = 1.0


@contextlib.asynccontextmanager
async def _batcher(gated: GatedModel, arrivals: Arrivals, **kw: Any) -> AsyncIterator[Batcher]:
    batcher = Batcher(gated, inline_max_tokens=0, arrivals=arrivals,  # type: ignore[arg-type]
                      **kw)
    await batcher.start()
    try:
        # One slow forward first, so the cap is set by arrival_wait_s, not by a quick forward.
        gated.gate.clear()
        first = asyncio.ensure_future(batcher.embed([C]))
        await entered(gated)
        await asyncio.sleep(HELD_S)
        gated.gate.set()
        await first
        gated.batches.clear()
        yield batcher
    finally:
        gated.gate.set()
        await batcher.close()


async def _arrive(batcher: Batcher, on_way: Ticket, seq: list[int]) -> Any:
    # As the local provider does: leave the count and queue the request in one step.
    on_way.leave()
    return await batcher.embed([seq])


async def test_a_batch_waits_for_a_request_on_its_way_and_takes_it(gated: GatedModel) -> None:
    arrivals = Arrivals()
    async with _batcher(gated, arrivals, arrival_wait_s=30.0) as batcher:
        on_way = arrivals.enter()
        first = asyncio.ensure_future(batcher.embed([A]))
        await asyncio.sleep(0.05)
        assert gated.batches == [] and batcher.stats()["queue_items"] == 1  # held, not run
        second = asyncio.ensure_future(_arrive(batcher, on_way, B))
        await first, await second
        assert gated.batches == [[A, B]]
        assert batcher.stats()["arrival_waits"] == 1


async def test_nothing_on_its_way_nothing_waits(gated: GatedModel) -> None:
    arrivals = Arrivals()
    async with _batcher(gated, arrivals, arrival_wait_s=30.0) as batcher:
        started = time.perf_counter()
        await batcher.embed([A])
        assert time.perf_counter() - started < 5.0  # not the 0.5 s cap, let alone 30 s
        assert gated.batches == [[A]] and batcher.stats()["arrival_waits"] == 0


async def test_a_request_that_never_comes_holds_the_batch_no_longer_than_the_cap(
        gated: GatedModel) -> None:
    arrivals = Arrivals()
    async with _batcher(gated, arrivals, arrival_wait_s=0.3) as batcher:
        arrivals.enter()  # never leaves
        started = time.perf_counter()
        await batcher.embed([A])
        waited = time.perf_counter() - started
        assert 0.25 <= waited < 5.0, waited
        assert gated.batches == [[A]] and batcher.stats()["arrival_waits"] == 1


async def test_a_request_that_ends_on_its_way_releases_the_batch_at_once(
        gated: GatedModel) -> None:
    # Refused in admission (402, 429) or failed: it leaves without reaching the queue, and
    # the batch starts then, not at the cap.
    arrivals = Arrivals()
    async with _batcher(gated, arrivals, arrival_wait_s=30.0) as batcher:
        on_way = arrivals.enter()
        first = asyncio.ensure_future(batcher.embed([A]))
        await until(lambda: batcher.stats()["queue_items"] == 1)
        await asyncio.sleep(0.05)
        assert gated.batches == []
        left = time.perf_counter()
        on_way.leave()
        await first
        # The cap (30 s; half the last forward, 0.5 s) was not what ended the wait.
        assert time.perf_counter() - left < 0.4
        assert gated.batches == [[A]]


async def test_a_busy_worker_is_not_waited_for(gated: GatedModel) -> None:
    # With a forward running, the next batch is handed over at once and stays open for
    # arrivals (test_batcher_absorb.py): there is nothing to wait for.
    arrivals = Arrivals()
    async with _batcher(gated, arrivals, arrival_wait_s=30.0) as batcher:
        gated.gate.clear()
        gated.entered.clear()
        running = asyncio.ensure_future(batcher.embed([A]))
        await entered(gated)
        arrivals.enter()
        waiting = asyncio.ensure_future(batcher.embed([B]))
        await until(lambda: batcher.stats()["inflight_batches"] == 2)
        gated.gate.set()
        await running, await waiting
        assert gated.batches == [[A], [B]] and batcher.stats()["arrival_waits"] == 0
