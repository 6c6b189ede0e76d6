"""Batcher: the lone small batch that runs on the event loop's thread, and when it must not."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from embedrouter.engine import Batcher, LocalModel
from embedrouter.engine.batcher import (
    DEFAULT_INLINE_MAX_TOKENS,
    INLINE_AFTER_WAVE_S,
    INLINE_WAVE_REQUESTS,
)
from embedrouter.errors import ServiceUnavailable
from embedrouter.settings import Settings
from embedrouter.timing import SPANS
from tests.engine.gated import POISON, GatedModel

SHORT = [101, 2129, 2079, 1045, 2275, 1037, 2051, 5833, 2006, 14769, 1029, 102]  # 12 ids
LONG = [101, *range(2000, 2038), 102]  # 40 ids: past the default bound



async def _entered(model: GatedModel) -> None:
    await asyncio.to_thread(model.entered.wait, 5)


def test_the_server_default_is_the_batchers() -> None:
    assert Settings().inline_max_tokens == DEFAULT_INLINE_MAX_TOKENS > 0


def test_rejects_a_negative_bound(minilm: LocalModel) -> None:
    with pytest.raises(ValueError, match="inline_max_tokens"):
        Batcher(minilm, inline_max_tokens=-1)


async def test_lone_short_request_runs_on_the_loop_thread(gated: GatedModel) -> None:
    batcher = Batcher(gated)  # type: ignore[arg-type]
    loop_thread = threading.get_ident()
    try:
        got = await batcher.embed([SHORT])
        await asyncio.sleep(0.01)  # past the quiet spell after that forward
        got_two = await batcher.embed([SHORT[:5], SHORT[:8]])  # 2 x 8 padded tokens
    finally:
        await batcher.close()
    assert gated.threads == [loop_thread, loop_thread]
    stats = batcher.stats()
    assert (stats["inline_batches"], stats["batches_run"], stats["items_run"]) == (2, 2, 3)
    assert (stats["tokens_run"], stats["padded_tokens_run"]) == (12 + 5 + 8, 12 + 16)
    hists = batcher.histograms()
    assert sum(hists["engine_seconds"].counts) == 2 and hists["engine_seconds"].total > 0
    assert hists["batch_size"].total == 3 and hists["batch_tokens"].total == 12 + 5 + 8
    np.testing.assert_allclose(got, gated.inner.forward([SHORT]), atol=1e-6)
    np.testing.assert_allclose(got_two, gated.inner.forward([SHORT[:5], SHORT[:8]]), atol=1e-6)


async def test_inline_rows_equal_the_worker_paths(minilm: LocalModel) -> None:
    """Same session, same padded shape: the same numbers whichever thread runs the forward."""
    seqs = [SHORT, [*SHORT[:6], 102]]
    inline, worker = Batcher(minilm), Batcher(minilm, inline_max_tokens=0)
    try:
        a = await inline.embed(seqs)
        b = await worker.embed(seqs)
    finally:
        await inline.close()
        await worker.close()
    assert inline.stats()["inline_batches"] == 1 and worker.stats()["inline_batches"] == 0
    np.testing.assert_array_equal(a, b)


async def test_token_bound_counts_padded_tokens(gated: GatedModel) -> None:
    batcher = Batcher(gated, inline_max_tokens=16, inline_quiet_s=0)  # type: ignore[arg-type]
    loop_thread = threading.get_ident()
    try:
        await batcher.embed([[101, *range(2000, 2014), 102]])  # 16 tokens: inline
        await batcher.embed([[101, *range(2000, 2015), 102]])  # 17: the worker
        await batcher.embed([[101, 2000, 102], [101, *range(2000, 2012), 102]])  # 2 x 14 padded
        await batcher.embed([[101, 2000, 102]] * 5)  # 5 x 3 = 15 padded: inline
    finally:
        await batcher.close()
    on_loop = [t == loop_thread for t in gated.threads]
    assert on_loop == [True, False, False, True]
    assert batcher.stats()["inline_batches"] == 2


async def test_zero_bound_never_runs_inline(gated: GatedModel) -> None:
    batcher = Batcher(gated, inline_max_tokens=0, inline_quiet_s=0)  # type: ignore[arg-type]
    try:
        for _ in range(3):
            await batcher.embed([[101, 102]])
    finally:
        await batcher.close()
    assert threading.get_ident() not in gated.threads and len(gated.threads) == 3
    assert batcher.stats()["inline_batches"] == 0


async def test_concurrent_requests_still_batch_on_the_worker(gated: GatedModel) -> None:
    """Requests that come together form one batch; past the bound it goes to the worker."""
    batcher = Batcher(gated)  # type: ignore[arg-type]
    try:
        results = await asyncio.gather(*(batcher.embed([SHORT]) for _ in range(8)))
    finally:
        await batcher.close()
    assert len(gated.batches) == 1 and len(gated.batches[0]) == 8
    assert gated.threads[0] != threading.get_ident()
    stats = batcher.stats()
    assert (stats["batches_run"], stats["inline_batches"], stats["items_run"]) == (1, 0, 8)
    want = gated.inner.forward([SHORT])
    for got in results:
        np.testing.assert_allclose(got, want, atol=1e-5)


async def test_requests_right_after_a_forward_go_to_the_worker(gated: GatedModel) -> None:
    """Within the quiet spell after a forward (where requests that waited behind it arrive) a
    small batch is not run on the loop, so those that follow it can batch on the worker."""
    batcher = Batcher(gated, inline_quiet_s=60)  # type: ignore[arg-type]
    loop_thread = threading.get_ident()
    try:
        await batcher.embed([SHORT])  # nothing ran before it: inline
        await batcher.embed([SHORT])
        await asyncio.gather(*(batcher.embed([[101, 2000 + i, 102]]) for i in range(3)))
    finally:
        await batcher.close()
    assert [t == loop_thread for t in gated.threads] == [True, False, False]
    assert [len(b) for b in gated.batches] == [1, 1, 3]
    assert batcher.stats()["inline_batches"] == 1


async def test_a_lone_request_soon_after_a_wave_goes_to_the_worker(gated: GatedModel) -> None:
    """After a forward of several requests, their clients may be on their way back: a lone
    request then runs on the worker, not on the loop where it would hold them all up."""
    batcher = Batcher(gated)  # type: ignore[arg-type]
    loop_thread = threading.get_ident()
    try:
        await asyncio.gather(*(batcher.embed([SHORT]) for _ in range(INLINE_WAVE_REQUESTS)))
        await asyncio.sleep(0.01)  # past INLINE_QUIET_S, inside INLINE_AFTER_WAVE_S
        await batcher.embed([SHORT])
        await asyncio.sleep(INLINE_AFTER_WAVE_S + 0.01)  # the wave is long gone
        await batcher.embed([SHORT])
    finally:
        await batcher.close()
    assert [len(b) for b in gated.batches] == [INLINE_WAVE_REQUESTS, 1, 1]
    assert [t == loop_thread for t in gated.threads] == [False, False, True]
    assert batcher.stats()["inline_batches"] == 1


async def test_one_request_of_many_inputs_is_no_wave(gated: GatedModel) -> None:
    batcher = Batcher(gated)  # type: ignore[arg-type]
    loop_thread = threading.get_ident()
    try:
        await batcher.embed([SHORT] * INLINE_WAVE_REQUESTS)  # past the token bound: the worker
        await asyncio.sleep(0.01)
        await batcher.embed([SHORT])
    finally:
        await batcher.close()
    assert [len(b) for b in gated.batches] == [INLINE_WAVE_REQUESTS, 1]
    assert [t == loop_thread for t in gated.threads] == [False, True]


async def test_never_inline_while_a_batch_is_in_flight(gated: GatedModel) -> None:
    batcher = Batcher(gated, inline_quiet_s=0)  # type: ignore[arg-type]
    await batcher.start()
    gated.gate.clear()
    running = asyncio.ensure_future(batcher.embed([LONG]))  # past the bound: the worker
    await _entered(gated)
    short = asyncio.ensure_future(batcher.embed([SHORT]))
    await asyncio.sleep(0.05)
    assert not short.done() and batcher.stats()["inflight_batches"] == 2
    gated.gate.set()
    await running
    await short
    assert threading.get_ident() not in gated.threads
    assert batcher.stats()["inline_batches"] == 0 and gated.max_overlap == 1
    await batcher.close()


async def test_requests_that_come_together_take_the_queue(gated: GatedModel) -> None:
    """Two short requests in the same loop iteration: neither runs inline, both batch."""
    batcher = Batcher(gated, inline_quiet_s=0)  # type: ignore[arg-type]
    try:
        await asyncio.gather(batcher.embed([SHORT]), batcher.embed([[101, 2000, 102]]))
    finally:
        await batcher.close()
    assert len(gated.threads) == 1 and threading.get_ident() not in gated.threads
    assert [len(b) for b in gated.batches] == [2]
    assert batcher.stats()["inline_batches"] == 0


async def test_never_inline_while_memory_is_released(gated: GatedModel) -> None:
    batcher = Batcher(gated, idle_release_s=0.02, inline_quiet_s=0)  # type: ignore[arg-type]
    gated.release_gate.clear()
    try:
        await batcher.embed([SHORT])
        await asyncio.to_thread(gated.release_entered.wait, 5)
        waiting = asyncio.ensure_future(batcher.embed([SHORT]))
        await asyncio.sleep(0.05)
        assert not waiting.done() and batcher.stats()["queue_items"] == 1
        gated.release_gate.set()
        await waiting
    finally:
        await batcher.close()
    assert gated.threads[0] == threading.get_ident() != gated.threads[1]
    assert gated.max_overlap == 1 and batcher.stats()["inline_batches"] == 1


class _Shape:
    dim, max_seq_length, vocab_size = 4, 256, 30522


@pytest.mark.parametrize(("state", "lengths", "lone"), [
    ({}, [12], True),
    ({}, [32], True),
    ({}, [33], False),  # 33 padded tokens: past the bound
    ({}, [8, 8, 8, 8], True),  # 4 x 8
    ({}, [2, 2, 9, 2], False),  # 4 x 9 = 36 padded, though only 15 real
    ({"_queued": 1}, [12], False),
    ({"_inflight": {object()}}, [12], False),
    ({"_releasing": True}, [12], False),
    ({"_closed": True}, [12], False),
    ({"_last_forward_end": "now"}, [12], False),  # within the quiet spell
    ({"_last_forward_end": 0.01}, [12], True),  # 10 ms ago: past it
    # After a wave (a forward for INLINE_WAVE_REQUESTS requests) the spell is INLINE_AFTER_WAVE_S.
    ({"_last_forward_end": 0.01, "_last_batch_requests": INLINE_WAVE_REQUESTS}, [12], False),
    ({"_last_forward_end": 0.01, "_last_batch_requests": INLINE_WAVE_REQUESTS - 1}, [12], True),
    ({"_last_forward_end": INLINE_AFTER_WAVE_S + 0.01, "_last_batch_requests": 32}, [12], True),
    ({"inline_max_tokens": 0}, [2], False),
])
def test_when_a_request_is_lone(state: dict[str, object], lengths: list[int],
                                lone: bool) -> None:
    batcher = Batcher(_Shape())  # type: ignore[arg-type]
    for name, value in state.items():
        if name == "_last_forward_end":  # "now", or seconds ago
            value = time.perf_counter() - (0.0 if value == "now" else value)  # type: ignore
        setattr(batcher, name, value)
    assert batcher._lone([[101] * n for n in lengths]) is lone


async def test_closed_while_it_yields(minilm: LocalModel) -> None:
    batcher = Batcher(minilm)
    await batcher.start()
    task = asyncio.ensure_future(batcher.embed([SHORT]))
    await asyncio.sleep(0)  # the request is now at its one-iteration yield
    await batcher.close()
    with pytest.raises(ServiceUnavailable):
        await task
    assert batcher.stats()["batches_run"] == 0


async def test_inline_forward_error_reaches_its_caller_only(gated: GatedModel) -> None:
    batcher = Batcher(gated, inline_quiet_s=0)  # type: ignore[arg-type]
    try:
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.embed([[101, POISON, 102]])
        after = await batcher.embed([SHORT])
    finally:
        await batcher.close()
    assert gated.threads == [threading.get_ident()] * 2
    stats = batcher.stats()
    assert (stats["failed_batches"], stats["batches_run"], stats["inline_batches"]) == (1, 1, 1)
    np.testing.assert_allclose(after, gated.inner.forward([SHORT]), atol=1e-6)


async def test_inline_request_is_traced(minilm: LocalModel) -> None:
    batcher = Batcher(minilm)
    spans: list[tuple[str, int, int]] = []
    token = SPANS.set(spans)
    try:
        await batcher.embed([SHORT])
    finally:
        SPANS.reset(token)
        await batcher.close()
    assert batcher.stats()["inline_batches"] == 1
    assert [name for name, _, _ in spans] == ["queue", "inference"]
    (_, q0, q1), (_, i0, i1) = spans
    assert 0 < q0 <= q1 == i0 < i1


async def test_idle_release_after_inline_forwards_never_overlaps_one(gated: GatedModel) -> None:
    batcher = Batcher(gated, idle_release_s=0.05, inline_quiet_s=0)  # type: ignore[arg-type]
    try:
        await batcher.embed([SHORT])
        for _ in range(100):  # the release runs once 50 ms have passed without a forward
            if batcher.stats()["idle_releases"]:
                break
            await asyncio.sleep(0.01)
        for i in range(20):  # gaps up to 57 ms race releases: none may overlap a forward
            await batcher.embed([SHORT])
            await asyncio.sleep(0.003 * i)
        stats = batcher.stats()
    finally:
        await batcher.close()
    assert stats["idle_releases"] >= 1 and stats["batches_run"] == 21
    # Those that came while a release ran waited for it and took the worker.
    assert 10 <= stats["inline_batches"] <= 21 and gated.max_overlap == 1
