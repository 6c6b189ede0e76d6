"""Batcher: ordering under concurrency, back-pressure, cancellation, failures, shutdown."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedrouter.engine import Batcher, LocalModel
from embedrouter.engine.batcher import SMALL_BATCH_TOKENS, _Item, _Request, grow_batch
from embedrouter.errors import InvalidRequest, Overloaded, PayloadTooLarge, ServiceUnavailable
from tests.engine.gated import POISON, GatedModel
from tests.engine.util import cosine, entered, until, worker_batcher


def _random_seqs(rng: random.Random, n: int, max_len: int = 60) -> list[list[int]]:
    return [[101, *(rng.randrange(1000, 29000) for _ in range(rng.randrange(0, max_len))), 102]
            for _ in range(n)]


async def test_golden_through_batcher(minilm: LocalModel, golden: list[dict[str, Any]]) -> None:
    batcher = Batcher(minilm, max_batch_tokens=1024, max_batch_size=8)
    await batcher.start()
    try:
        groups = [golden[i:i + 3] for i in range(0, len(golden), 3)]
        results = await asyncio.gather(*(batcher.embed([g["token_ids"] for g in group])
                                         for group in groups))
        out = np.concatenate(results)
        assert cosine(out, np.array([g["embedding"] for g in golden])).min() >= 0.9999
        assert batcher.stats()["batches_run"] > 1
    finally:
        await batcher.close()


async def test_order_under_concurrency(minilm: LocalModel) -> None:
    rng = random.Random(42)
    requests = [_random_seqs(rng, rng.randrange(1, 6)) for _ in range(40)]
    batcher = Batcher(minilm, max_batch_tokens=512, max_batch_size=8)
    await batcher.start()

    async def call(seqs: list[list[int]]) -> np.ndarray:
        await asyncio.sleep(rng.random() * 0.02)
        return await batcher.embed(seqs)

    try:
        results = await asyncio.gather(*(call(r) for r in requests))
    finally:
        await batcher.close()
    for seqs, got in zip(requests, results, strict=True):
        assert got.shape == (len(seqs), minilm.dim) and got.dtype == np.float32
        want = np.concatenate([minilm.forward([s]) for s in seqs])
        np.testing.assert_allclose(got, want, atol=1e-5)
    stats = batcher.stats()
    total = sum(map(len, requests))
    assert stats["items_run"] == total and stats["queue_items"] == 0
    assert stats["tokens_run"] == sum(len(s) for r in requests for s in r)
    assert stats["batches_run"] > 1


async def test_queue_full_raises_overloaded(gated: GatedModel) -> None:
    batcher = Batcher(gated, max_queue_items=10, max_batch_size=4,  # type: ignore[arg-type]
                      inline_max_tokens=0)  # worker path: a closed gate would hold the loop
    await batcher.start()
    gated.gate.clear()
    first = asyncio.ensure_future(batcher.embed([[101, 7592, 102]]))
    await entered(gated)  # in the worker, so off the queue
    second = asyncio.ensure_future(batcher.embed([[101, 7593, 102]]))
    await until(lambda: batcher.stats()["inflight_batches"] == 2)
    waiting = asyncio.ensure_future(batcher.embed([[101, 2000 + i, 102] for i in range(10)]))
    await until(lambda: batcher.stats()["queue_items"] == 10)
    with pytest.raises(Overloaded) as info:
        await batcher.embed([[101, 102]])
    assert info.value.retry_after >= 1 and info.value.headers["retry-after"]
    with pytest.raises(PayloadTooLarge):
        await batcher.embed([[101, 102]] * 11)
    gated.gate.set()
    assert (await waiting).shape == (10, 384)
    await first
    await second
    assert (await batcher.embed([[101, 102]])).shape == (1, 384)
    await batcher.close()


async def test_cancelled_requests_are_skipped(gated: GatedModel) -> None:
    # Worker path (a closed gate would hold the loop); batches of at most 5 rows, so the
    # third request cannot join the waiting batch and stays queued.
    batcher = Batcher(gated, max_batch_size=5, inline_max_tokens=0)  # type: ignore[arg-type]
    await batcher.start()
    gated.gate.clear()
    running = asyncio.ensure_future(batcher.embed([[101, 7592, 102]]))
    await entered(gated)
    pending = asyncio.ensure_future(batcher.embed([[101, 2000 + i, 102] for i in range(5)]))
    await until(lambda: batcher.stats()["inflight_batches"] == 2)  # handed to the worker
    queued = asyncio.ensure_future(batcher.embed([[101, 3000 + i, 102] for i in range(3)]))
    await until(lambda: batcher.stats()["queue_items"] == 3)
    pending.cancel()
    queued.cancel()
    await asyncio.sleep(0)
    assert batcher.stats()["queue_items"] == 0
    gated.gate.set()
    assert (await running).shape == (1, 384)
    kept = await batcher.embed([[101, 4000, 102]])
    assert kept.shape == (1, 384)
    stats = batcher.stats()
    assert stats["dropped_cancelled"] == 8
    assert stats["items_run"] == 2
    computed = [s for b in gated.batches for s in b]
    assert computed == [[101, 7592, 102], [101, 4000, 102]]
    await batcher.close()


async def test_forward_error_reaches_only_its_batch(gated: GatedModel) -> None:
    # worker path: a closed gate would hold the loop
    batcher = Batcher(gated, inline_max_tokens=0)  # type: ignore[arg-type]
    await batcher.start()
    gated.gate.clear()
    bad = asyncio.ensure_future(batcher.embed([[101, POISON, 102], [101, 5, 102]]))
    await entered(gated)
    good = asyncio.ensure_future(batcher.embed([[101, 7592, 102]]))
    await until(lambda: batcher.stats()["inflight_batches"] == 2)
    gated.gate.set()
    with pytest.raises(RuntimeError, match="boom"):
        await bad
    assert (await good).shape == (1, 384)
    after = await batcher.embed([[101, 7592, 102]])
    np.testing.assert_allclose(after, gated.inner.forward([[101, 7592, 102]]), atol=1e-6)
    assert batcher.stats()["failed_batches"] == 1
    await batcher.close()


async def test_invalid_sequences_rejected_before_batching(minilm: LocalModel) -> None:
    batcher = Batcher(minilm)
    await batcher.start()
    try:
        for seqs in ([[]], [[101] * 257], [[101, 30522, 102]], [[101, -1, 102]]):
            with pytest.raises(InvalidRequest):
                await batcher.embed(seqs)
        assert (await batcher.embed([])).shape == (0, 384)
        assert batcher.stats()["batches_run"] == 0
    finally:
        await batcher.close()


async def test_close_fails_queued_and_refuses_new(gated: GatedModel) -> None:
    # Worker path (a closed gate would hold the loop); one row a batch, so the third request
    # cannot join the waiting batch and stays queued.
    batcher = Batcher(gated, max_batch_size=1, inline_max_tokens=0)  # type: ignore[arg-type]
    await batcher.start()
    gated.gate.clear()
    running = asyncio.ensure_future(batcher.embed([[101, 7592, 102]]))
    await entered(gated)
    second = asyncio.ensure_future(batcher.embed([[101, 7593, 102]]))
    await until(lambda: batcher.stats()["inflight_batches"] == 2)
    queued = asyncio.ensure_future(batcher.embed([[101, 7594, 102]]))
    await until(lambda: batcher.stats()["queue_items"] == 1)
    closing = asyncio.ensure_future(batcher.close())
    await asyncio.sleep(0.01)
    gated.gate.set()
    await closing
    assert (await running).shape == (1, 384)  # handed over before close: finished
    assert (await second).shape == (1, 384)
    with pytest.raises(ServiceUnavailable):
        await queued
    with pytest.raises(ServiceUnavailable):
        await batcher.embed([[101, 102]])


async def test_embed_starts_lazily(minilm: LocalModel) -> None:
    batcher = Batcher(minilm)
    try:
        assert (await batcher.embed([[101, 102]])).shape == (1, 384)
    finally:
        await batcher.close()


async def test_event_loop_stays_responsive(minilm: LocalModel) -> None:
    batcher = Batcher(minilm)
    await batcher.start()
    rng = random.Random(1)
    seqs = _random_seqs(rng, 32, max_len=250)
    gaps: list[float] = []
    task = asyncio.ensure_future(batcher.embed(seqs))
    last = time.perf_counter()
    while not task.done():
        await asyncio.sleep(0.005)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    await task
    await batcher.close()
    assert len(gaps) > 5 and max(gaps) < 0.25


def test_rejects_batch_budget_below_context(minilm: LocalModel) -> None:
    with pytest.raises(ValueError, match="max_batch_tokens"):
        Batcher(minilm, max_batch_tokens=100)


class _Shape:
    dim, max_seq_length, vocab_size = 4, 256, 30522


@settings(max_examples=100, deadline=None)
@given(lengths=st.lists(st.integers(2, 256), min_size=1, max_size=300),
       budget=st.integers(256, 4096), size=st.integers(1, 64))
def test_batch_selection_is_fifo_anchored_and_within_limits(lengths: list[int], budget: int,
                                                            size: int) -> None:
    batcher = Batcher(_Shape(), max_batch_tokens=budget, max_batch_size=size,  # type: ignore
                      max_queue_items=10_000)
    req = _Request(future=None, out=np.empty(0), remaining=len(lengths),  # type: ignore
                   queued=len(lengths))
    items = [_Item(req, i, [1] * n) for i, n in enumerate(lengths)]
    batcher._queue.extend(items)
    batcher._queued = len(items)
    seen: list[int] = []
    while batcher._queue:
        oldest = batcher._queue[0].row
        batch = batcher._take_batch()
        rows = [it.row for it in batch]
        assert oldest in rows
        assert 1 <= len(batch) <= size
        padded = max(len(it.ids) for it in batch) * len(batch)
        waste = padded - sum(len(it.ids) for it in batch)
        assert padded <= budget
        # Padding taken on while the batch was small is free; past that, at most 20 %.
        assert waste <= SMALL_BATCH_TOKENS + 0.2 * padded
        # What stays queued keeps its arrival order.
        remaining = [it.row for it in batcher._queue]
        assert remaining == sorted(remaining)
        seen.extend(rows)
    assert sorted(seen) == list(range(len(lengths)))
    assert batcher._queued == 0


def test_grow_batch_keeps_similar_lengths_together() -> None:
    lengths = [10, 11, 12, 100, 101, 102, 103, 250]
    # Anchored on 101: the 100s join; the short ones (~90 % padding) and the 250 do not.
    assert grow_batch(lengths, 4, max_size=64, max_tokens=16384, max_padding=0.2) == (3, 6)
    # Anchored on 11: 4 x 100 tokens is past the small-batch allowance, so the 100s stay out.
    assert grow_batch(lengths, 1, max_size=64, max_tokens=16384, max_padding=0.2) == (0, 2)
    # Under the small-batch allowance padding does not matter.
    assert grow_batch([5, 6, 30, 40], 0, max_size=64, max_tokens=16384,
                      max_padding=0.2) == (0, 3)
    assert grow_batch(lengths, 4, max_size=2, max_tokens=16384, max_padding=0.2) in {(3, 4),
                                                                                     (4, 5)}
    assert grow_batch(lengths, 7, max_size=64, max_tokens=300, max_padding=1.0) == (7, 7)


def test_grow_batch_caps_attention_memory() -> None:
    """count x longest^2 stays under the cap: 256-token items come 16 at a time, not 64."""
    long = [256] * 100
    lo, hi = grow_batch(long, 0, max_size=64, max_tokens=16384, max_padding=0.2,
                        max_attention=64 * 128 * 128)
    assert hi - lo + 1 == 16
    short = [128] * 100
    lo, hi = grow_batch(short, 0, max_size=64, max_tokens=16384, max_padding=0.2,
                        max_attention=64 * 128 * 128)
    assert hi - lo + 1 == 64  # the benchmark corpus' longest items still batch fully
    assert grow_batch(long, 0, max_size=64, max_tokens=16384, max_padding=0.2) == (0, 63)


async def test_idle_batcher_releases_memory_once_per_idle_spell(gated: GatedModel) -> None:
    batcher = Batcher(gated, idle_release_s=0.05)  # type: ignore[arg-type]
    await batcher.start()
    await asyncio.sleep(0.2)
    assert gated.releases == 0  # nothing ran yet: nothing to release
    await batcher.embed([[101, 7592, 102]])
    await until(lambda: batcher.stats()["idle_releases"] == 1)
    await asyncio.sleep(0.2)
    assert gated.releases == 1  # once per idle spell, not every 50 ms
    got = await batcher.embed([[101, 7592, 102]] * 3)  # still serves after releasing
    np.testing.assert_allclose(got, gated.inner.forward([[101, 7592, 102]] * 3), atol=1e-5)
    await until(lambda: batcher.stats()["idle_releases"] == 2)
    await batcher.close()


async def test_no_release_while_requests_keep_coming(gated: GatedModel) -> None:
    batcher = Batcher(gated, idle_release_s=0.5)  # type: ignore[arg-type]
    await batcher.start()
    for _ in range(20):  # bounded: 20 requests 50 ms apart, never 0.5 s idle
        await batcher.embed([[101, 7592, 102]])
        await asyncio.sleep(0.05)
    assert gated.releases == 0
    await batcher.close()


def test_release_memory_shrinks_rss_after_large_batches(minilm: LocalModel) -> None:
    """The real model: after its largest batches, release_memory gives most of the arena back."""
    def rss_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc")
    for n, length in ((64, 128), (16, 256), (32, 181)):
        minilm.forward([[101] + [2000] * (length - 2) + [102]] * n)
    grown = rss_mb()
    minilm.release_memory()
    released = rss_mb()
    # The arena for 16 x 256 alone holds > 150 MB of activations; most must go back.
    assert grown - released > 100, (grown, released)
    # Still correct afterwards.
    np.testing.assert_allclose(minilm.forward([[101, 7592, 102]]),
                               minilm.forward([[101, 7592, 102]]), atol=1e-6)


async def test_forwards_run_at_once_on_their_own_threads(gated: GatedModel) -> None:
    """With forwards=2 a second batch starts while the first is still in its forward, on
    another worker thread, and both get the rows the model alone gives."""
    a, b = [[101, *range(2000, 2010), 102]], [[101, 3000, 3001, 102], [101, 4000, 102]]
    batcher = Batcher(gated, forwards=2, inline_max_tokens=0)  # type: ignore[arg-type]
    gated.gate.clear()
    try:
        first = asyncio.create_task(batcher.embed(a))
        await entered(gated)
        gated.entered.clear()
        second = asyncio.create_task(batcher.embed(b))
        await entered(gated)  # while the first forward is still held at the gate
        assert gated.max_overlap == 2 and len(set(gated.threads)) == 2
        gated.gate.set()
        out_a, out_b = await first, await second
    finally:
        gated.gate.set()
        await batcher.close()
    np.testing.assert_allclose(out_a, gated.inner.forward(a), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out_b, gated.inner.forward(b), rtol=1e-5, atol=1e-6)
    assert batcher.max_inflight_batches == 2


async def test_one_forward_at_a_time_by_default(gated: GatedModel) -> None:
    batcher = Batcher(gated, inline_max_tokens=0)  # type: ignore[arg-type]
    gated.gate.clear()
    try:
        first = asyncio.create_task(batcher.embed([[101, 2000, 102]]))
        await entered(gated)
        second = asyncio.create_task(batcher.embed([[101, 2001, 2002, 102]]))
        await until(lambda: batcher.stats()["inflight_batches"] == 2)
        await asyncio.sleep(0.05)  # time for a second worker, were there one, to enter
        assert gated.max_overlap == 1
        gated.gate.set()
        await first, await second
    finally:
        gated.gate.set()
        await batcher.close()
    assert gated.max_overlap == 1


def test_forwards_must_be_positive(minilm: LocalModel) -> None:
    with pytest.raises(ValueError, match="forwards"):
        Batcher(minilm, forwards=0)


async def test_on_ready_runs_for_a_whole_forward_before_any_caller_wakes(
        gated: GatedModel) -> None:
    # Admission queues each request's charge in on_ready: the ledger's group commit starts there,
    # and must see every request of the forward before the first caller's own work runs.
    events: list[str] = []
    async with worker_batcher(gated, max_batch_size=8) as batcher:

        async def call(i: int) -> np.ndarray:
            out = await batcher.embed([[101, 2000 + i, 102]],
                                      on_ready=lambda: events.append(f"ready {i}"))
            events.append(f"woke {i}")
            return out

        gated.gate.clear()
        first = asyncio.ensure_future(call(0))
        await entered(gated)  # a forward of one request is running: the rest queue behind it
        rest = [asyncio.ensure_future(call(i)) for i in range(1, 5)]
        for _ in range(3):  # their first steps: queued, or in the batch waiting for the worker
            await asyncio.sleep(0)
        gated.gate.set()
        results = await asyncio.gather(first, *rest)
    assert [r.shape for r in results] == [(1, 384)] * 5
    assert [len(b) for b in gated.batches] == [1, 4]
    assert sorted(events) == sorted([f"ready {i}" for i in range(5)]
                                    + [f"woke {i}" for i in range(5)])  # each once
    at = {event: k for k, event in enumerate(events)}
    assert at["ready 0"] < at["woke 0"]
    # The second forward's four callbacks all run before any of its callers wakes. How the two
    # forwards interleave is the scheduler's: the worker may finish the second before the
    # first's caller has run (CI saw "ready 1" before "woke 0" once).
    assert max(at[f"ready {i}"] for i in range(1, 5)) < min(at[f"woke {i}"] for i in range(1, 5))


async def test_on_ready_is_not_called_for_a_failed_or_cancelled_request(
        gated: GatedModel) -> None:
    ready: list[str] = []
    async with worker_batcher(gated, max_batch_size=8) as batcher:
        with pytest.raises(RuntimeError):
            await batcher.embed([[101, POISON, 102]], on_ready=lambda: ready.append("poison"))
        gated.gate.clear()
        running = asyncio.ensure_future(batcher.embed([[101, 7592, 102]]))
        await entered(gated)
        gone = asyncio.ensure_future(batcher.embed([[101, 2000, 102]],
                                                   on_ready=lambda: ready.append("gone")))
        for _ in range(3):
            await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        gated.gate.set()
        await running
        kept = await batcher.embed([[101, 4000, 102]], on_ready=lambda: ready.append("kept"))
        assert kept.shape == (1, 384)
    assert ready == ["kept"]


async def test_a_failing_on_ready_does_not_strand_its_batch(gated: GatedModel) -> None:
    def broken() -> None:
        raise ValueError("a bug in a hook")

    async with worker_batcher(gated, max_batch_size=8) as batcher:
        gated.gate.clear()
        first = asyncio.ensure_future(batcher.embed([[101, 7592, 102]]))
        await entered(gated)
        both = [asyncio.ensure_future(batcher.embed([[101, 2000 + i, 102]], on_ready=broken))
                for i in range(2)]
        for _ in range(3):
            await asyncio.sleep(0)
        gated.gate.set()
        results = await asyncio.gather(first, *both)
    assert [r.shape for r in results] == [(1, 384)] * 3
