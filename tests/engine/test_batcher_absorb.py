"""Batcher: a request that arrives while a batch waits for the busy worker joins that batch."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from embedrouter.engine import Batcher
from tests.engine.gated import GatedModel
from tests.engine.util import entered, until, worker_batcher


async def _two_in_flight(batcher: Batcher, gated: GatedModel) -> tuple[Any, Any]:
    """One batch held in the (gated) forward, a second handed to the worker behind it."""
    gated.gate.clear()
    running = asyncio.ensure_future(batcher.embed([[101, 7592, 102]]))
    await entered(gated)
    waiting = asyncio.ensure_future(batcher.embed([[101, 7593, 102]]))
    await until(lambda: batcher.stats()["inflight_batches"] == 2)
    return running, waiting


async def test_an_arrival_joins_the_batch_waiting_for_the_worker(gated: GatedModel) -> None:
    async with worker_batcher(gated) as batcher:
        running, waiting = await _two_in_flight(batcher, gated)
        seqs = [[101, 2000, 102], [101, 2001, 2002, 102]]
        late = asyncio.ensure_future(batcher.embed(seqs))
        await asyncio.sleep(0.01)
        stats = batcher.stats()
        assert (stats["queue_items"], stats["absorbed_items"]) == (0, 2)
        gated.gate.set()
        got = await late
        await running, await waiting
        # Two forwards, the second with the late request's rows, each row its own vector.
        assert gated.batches == [[[101, 7592, 102]], [[101, 7593, 102], *seqs]]
        want = np.concatenate([gated.inner.forward([s]) for s in seqs])
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert batcher.stats()["items_run"] == 4


async def test_an_arrival_that_does_not_fit_waits_in_the_queue(gated: GatedModel) -> None:
    # Too many rows for max_batch_size, and too much padding for max_padding: both queue.
    async with worker_batcher(gated, max_batch_size=2) as batcher:
        running, waiting = await _two_in_flight(batcher, gated)
        many = asyncio.ensure_future(batcher.embed([[101, 3000, 102], [101, 3001, 102]]))
        await until(lambda: batcher.stats()["queue_items"] == 2)
        gated.gate.set()
        await running, await waiting, await many
        assert batcher.stats()["absorbed_items"] == 0
        assert [len(b) for b in gated.batches] == [1, 1, 2]
    gated.batches.clear()
    async with worker_batcher(gated) as batcher:
        running, waiting = await _two_in_flight(batcher, gated)
        long = [101, *range(2000, 2200), 102]  # 3 real tokens padded to 202: 99% padding
        padded = asyncio.ensure_future(batcher.embed([long]))
        await until(lambda: batcher.stats()["queue_items"] == 1)
        gated.gate.set()
        await running, await waiting, await padded
        assert [len(b) for b in gated.batches] == [1, 1, 1]


async def test_an_arrival_never_jumps_the_queue(gated: GatedModel) -> None:
    # The 3-row request cannot join (1 + 3 > 3 rows); the 1-row one after it could, but it
    # would then run before a request that came first.
    async with worker_batcher(gated, max_batch_size=3) as batcher:
        running, waiting = await _two_in_flight(batcher, gated)
        first = asyncio.ensure_future(batcher.embed([[101, 3000 + i, 102] for i in range(3)]))
        await until(lambda: batcher.stats()["queue_items"] == 3)
        second = asyncio.ensure_future(batcher.embed([[101, 4000, 102]]))
        await until(lambda: batcher.stats()["queue_items"] == 4)
        gated.gate.set()
        await asyncio.gather(running, waiting, first, second)
        assert batcher.stats()["absorbed_items"] == 0
        assert gated.batches[1] == [[101, 7593, 102]]


async def test_a_started_batch_takes_no_one(gated: GatedModel) -> None:
    # One batch at a time: the only batch handed over is the one already computing.
    async with worker_batcher(gated, max_inflight_batches=1) as batcher:
        gated.gate.clear()
        running = asyncio.ensure_future(batcher.embed([[101, 7592, 102]]))
        await entered(gated)
        later = asyncio.ensure_future(batcher.embed([[101, 7593, 102]]))
        await until(lambda: batcher.stats()["queue_items"] == 1)
        gated.gate.set()
        await running, await later
        assert batcher.stats()["absorbed_items"] == 0
        assert gated.batches == [[[101, 7592, 102]], [[101, 7593, 102]]]


async def test_a_cancelled_arrival_is_not_computed(gated: GatedModel) -> None:
    async with worker_batcher(gated) as batcher:
        running, waiting = await _two_in_flight(batcher, gated)
        late = asyncio.ensure_future(batcher.embed([[101, 5000, 102], [101, 5001, 102]]))
        await until(lambda: batcher.stats()["absorbed_items"] == 2)
        late.cancel()
        await asyncio.sleep(0)
        gated.gate.set()
        await running, await waiting
        assert gated.batches == [[[101, 7592, 102]], [[101, 7593, 102]]]
        assert batcher.stats()["dropped_cancelled"] == 2
