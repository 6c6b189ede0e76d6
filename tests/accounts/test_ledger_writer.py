"""The ledger writer's callbacks: each row's hears its commit's outcome exactly once, whether
the commit succeeded or failed, and one failing callback does not strand the others."""

from __future__ import annotations

import asyncio
import logging

import pytest

from embedrouter.accounts.ledger import LedgerWriter
from embedrouter.store.records import GenerationRecord


def _row(i: int) -> GenerationRecord:
    return GenerationRecord(id=f"gen-{i}", key_hash="k" * 64, model="a/b", upstream_model="b",
                            provider="P", tokens=1, cost_nanos=1, created_ms=1, latency_ms=1)


async def test_rows_submitted_while_a_commit_runs_share_the_next_one() -> None:
    batches: list[list[str]] = []
    gate = asyncio.Event()

    async def flush(rows: list[GenerationRecord]) -> None:
        batches.append([r.id for r in rows])
        if len(batches) == 1:
            await gate.wait()  # the first commit is slow: the rest gather meanwhile

    writer = LedgerWriter(flush)
    heard: list[tuple[int, BaseException | None]] = []
    for i in range(5):
        writer.submit(_row(i), lambda exc, i=i: heard.append((i, exc)))
        await asyncio.sleep(0)
    gate.set()
    await writer.close()
    assert batches == [["gen-0"], ["gen-1", "gen-2", "gen-3", "gen-4"]]
    assert sorted(heard) == [(i, None) for i in range(5)]  # each once, all committed
    assert (writer.commits, writer.rows) == (2, 5)


async def test_a_failed_commit_is_reported_to_every_row_of_it_and_counted_nowhere() -> None:
    async def flush(rows: list[GenerationRecord]) -> None:
        raise RuntimeError("disk full")

    writer = LedgerWriter(flush)
    heard: list[BaseException | None] = []
    for i in range(3):
        writer.submit(_row(i), heard.append)
    await writer.close()
    assert len(heard) == 3 and all(isinstance(e, RuntimeError) for e in heard)
    assert (writer.commits, writer.rows) == (0, 0)


async def test_a_raising_callback_does_not_strand_the_rest(
        caplog: pytest.LogCaptureFixture) -> None:
    async def flush(rows: list[GenerationRecord]) -> None:
        return None

    def broken(exc: BaseException | None) -> None:
        raise ValueError("bug")

    writer = LedgerWriter(flush)
    heard: list[BaseException | None] = []
    writer.submit(_row(0), broken)
    writer.submit(_row(1), heard.append)
    with caplog.at_level(logging.ERROR, logger="embedrouter.accounts"):
        await writer.close()
    assert heard == [None]
    assert [r.getMessage() for r in caplog.records] == ["a ledger callback failed: ValueError"]


async def test_every_commit_is_timed_for_metrics_whatever_its_outcome() -> None:
    calls = 0

    async def flush(rows: list[GenerationRecord]) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.03)
        if calls == 2:
            raise OSError("disk gone")

    writer = LedgerWriter(flush)
    outcomes: list[BaseException | None] = []
    writer.submit(_row(1), outcomes.append)
    await writer.close()
    writer.submit(_row(2), outcomes.append)
    await writer.close()
    assert outcomes[0] is None and isinstance(outcomes[1], OSError)
    h = writer.commit_seconds
    assert sum(h.counts) == 2 and 0.06 <= h.total < 1.0
    buckets = dict(h.buckets())
    assert buckets["0.025"] == 0 and buckets["+Inf"] == 2  # each took at least 30 ms
