"""Batcher ``admit``: a request's reservation runs while its rows queue, and none of them is
computed before it succeeds."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from embedrouter.engine import Batcher, LocalModel
from embedrouter.errors import InvalidRequest, Overloaded, PaymentRequired
from tests.engine.gated import GatedModel

A = [[101, 7592, 102], [101, 7593, 2088, 102]]
B = [[101, 2000, 102]]


@pytest.fixture
def gated(minilm: LocalModel) -> GatedModel:
    return GatedModel(minilm)


async def _until(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def _computed(model: GatedModel) -> list[list[int]]:
    return [s for batch in model.batches for s in batch]


class Admission:
    """An ``admit`` hook that waits for the test to let it finish, and says what it saw."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.open = asyncio.Event()
        self.fail = fail
        self.calls = 0
        self.finished = False

    async def __call__(self) -> None:
        self.calls += 1
        try:
            await self.open.wait()
            if self.fail is not None:
                raise self.fail
        finally:
            self.finished = True


async def test_rows_wait_for_admission_while_later_requests_run(gated: GatedModel,
                                                               minilm: LocalModel) -> None:
    batcher = Batcher(gated, inline_max_tokens=0)  # type: ignore[arg-type]
    await batcher.start()
    try:
        admit = Admission()
        first = asyncio.ensure_future(batcher.embed(A, admit))
        await _until(lambda: admit.calls == 1)
        assert batcher.stats()["queue_items"] == 2  # queued, not computable yet
        # A later request that needs no admission is not held behind it.
        assert (await batcher.embed(B)).shape == (1, 384)
        await asyncio.sleep(0.05)  # the batcher idles meanwhile (a spin would hang the test)
        assert not first.done() and _computed(gated) == B
        admit.open.set()
        got = await first
        np.testing.assert_allclose(got, minilm.forward(A), atol=1e-5)
        assert _computed(gated) == B + A
        assert batcher.stats()["queue_items"] == 0
    finally:
        await batcher.close()


async def test_refused_admission_computes_nothing(gated: GatedModel) -> None:
    batcher = Batcher(gated, inline_max_tokens=0)  # type: ignore[arg-type]
    await batcher.start()
    try:
        admit = Admission(fail=PaymentRequired("Insufficient credits"))
        admit.open.set()
        with pytest.raises(PaymentRequired):
            await batcher.embed(A, admit)
        assert _computed(gated) == [] and batcher.stats()["queue_items"] == 0
        assert (await batcher.embed(B)).shape == (1, 384)  # the batcher carries on
        assert _computed(gated) == B
    finally:
        await batcher.close()


async def test_refused_while_others_queue_behind_it(gated: GatedModel) -> None:
    batcher = Batcher(gated, inline_max_tokens=0)  # type: ignore[arg-type]
    await batcher.start()
    gated.gate.clear()  # the first forward holds, so what follows queues
    try:
        running = asyncio.ensure_future(batcher.embed(B))
        await asyncio.to_thread(gated.entered.wait, 5)
        refused = Admission(fail=PaymentRequired("Insufficient credits"))
        held = asyncio.ensure_future(batcher.embed(A, refused))
        behind = asyncio.ensure_future(batcher.embed([[101, 3000, 102]]))
        await _until(lambda: refused.calls == 1)
        refused.open.set()
        with pytest.raises(PaymentRequired):
            await held
        gated.gate.set()
        await running
        assert (await behind).shape == (1, 384)
        assert [101, 7592, 102] not in _computed(gated)
        assert batcher.stats()["queue_items"] == 0
    finally:
        gated.gate.set()
        await batcher.close()


async def test_admission_never_starts_for_invalid_or_refused_rows(gated: GatedModel) -> None:
    batcher = Batcher(gated, max_queue_items=2, inline_max_tokens=0)  # type: ignore[arg-type]
    await batcher.start()
    gated.gate.clear()
    try:
        admit = Admission()
        with pytest.raises(InvalidRequest):
            await batcher.embed([[101, 10**7, 102]], admit)
        running = asyncio.ensure_future(batcher.embed(B))
        await asyncio.to_thread(gated.entered.wait, 5)
        second = asyncio.ensure_future(batcher.embed([[101, 2001, 102]]))
        await _until(lambda: batcher.stats()["inflight_batches"] == 2)
        waiting = asyncio.ensure_future(batcher.embed(A))
        await _until(lambda: batcher.stats()["queue_items"] == 2)
        with pytest.raises(Overloaded):
            await batcher.embed(B, admit)
        assert admit.calls == 0  # nothing reserved for a request that could not queue
        gated.gate.set()
        await asyncio.gather(running, second, waiting)
    finally:
        gated.gate.set()
        await batcher.close()


async def test_cancelled_caller_returns_only_after_admission_finished(
        gated: GatedModel) -> None:
    batcher = Batcher(gated, inline_max_tokens=0)  # type: ignore[arg-type]
    await batcher.start()
    try:
        admit = Admission()
        task = asyncio.ensure_future(batcher.embed(A, admit))
        await _until(lambda: admit.calls == 1)
        task.cancel()
        await asyncio.sleep(0.05)
        # Still waiting: the caller releases what admission reserved once it hears back, so
        # it must not hear back before the reservation is made or refused.
        assert not task.done() and not admit.finished
        assert batcher.stats()["queue_items"] == 0  # its rows already left the queue
        admit.open.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert admit.finished and _computed(gated) == []
        assert (await batcher.embed(B)).shape == (1, 384)
    finally:
        await batcher.close()


async def test_lone_request_is_admitted_before_its_inline_forward(gated: GatedModel) -> None:
    batcher = Batcher(gated)  # type: ignore[arg-type]
    await batcher.start()
    seen: list[int] = []

    async def admit() -> None:
        seen.append(len(gated.batches))  # forwards run before admission finished
        await asyncio.sleep(0.01)
        seen.append(len(gated.batches))

    try:
        assert (await batcher.embed(B, admit)).shape == (1, 384)
        assert seen == [0, 0] and _computed(gated) == B
        assert batcher.stats()["inline_batches"] == 1
    finally:
        await batcher.close()


async def test_refused_rows_never_join_a_batch_formed_in_the_same_turn(
        gated: GatedModel) -> None:
    batcher = Batcher(gated, inline_max_tokens=0)  # type: ignore[arg-type]
    await batcher.start()
    try:
        opened = asyncio.Event()  # both answers arrive together, as from one Redis reply
        refused, admitted = Admission(fail=PaymentRequired("no")), Admission()
        refused.open = admitted.open = opened
        # The admitted one first: its answer wakes the batch loop before the refusal is seen.
        ok = asyncio.ensure_future(batcher.embed(B, admitted))
        held = asyncio.ensure_future(batcher.embed(A, refused))
        await _until(lambda: refused.calls == admitted.calls == 1)
        opened.set()
        with pytest.raises(PaymentRequired):
            await held
        assert (await ok).shape == (1, 384)
        assert _computed(gated) == B
        assert batcher.stats()["queue_items"] == 0
    finally:
        await batcher.close()
