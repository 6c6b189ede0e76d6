"""Group commit of charges: many requests' generation rows in one durable transaction.

Each caller hands in its row with a callback; one flusher task owns the queue, writes whatever
has gathered while the previous commit ran, and calls each row's callback with the commit's
outcome. At low load a row commits alone (no added wait); under load one fsync covers many
charges. Callbacks rather than a future per row: a charge's follow-up (settling its hold) is
then done by the flusher whether or not its request is still waiting, without a task or a
shield per request (that bookkeeping was about half of admission's own CPU per request,
bench/admission_cpu.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from embedrouter.histogram import LEDGER_COMMIT_BOUNDS, Histogram
from embedrouter.store.records import GenerationRecord

MAX_BATCH = 512
# How long rows written behind (free requests) wait to be gathered into one commit.
BEHIND_DELAY_S = 0.05
log = logging.getLogger("embedrouter.accounts")

Flush = Callable[[list[GenerationRecord]], Awaitable[None]]
# Called once per row by the flusher: None once the row is committed, else what the commit
# raised. Runs on the event loop inside the flusher, so it must not block or raise.
Done = Callable[[BaseException | None], None]


def _log_failure(exc: BaseException | None) -> None:
    if exc is not None:
        log.warning("a usage record of a free request was not written: %s",
                    type(exc).__name__)


class LedgerWriter:
    def __init__(self, flush: Flush, *, max_batch: int = MAX_BATCH) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._queue: list[tuple[GenerationRecord, Done]] = []
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.commits = 0  # for /metrics: rows per commit = rows / commits
        self.rows = 0
        # Every charged request waits for one of these (plus part of the one before it): an
        # operator sees here what the database's disk adds to the charged requests' latency.
        self.commit_seconds = Histogram(LEDGER_COMMIT_BOUNDS)

    def submit(self, row: GenerationRecord, done: Done) -> None:
        """Queue ``row`` for the next commit; ``done`` hears its outcome."""
        self._queue.append((row, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    def write_behind(self, row: GenerationRecord) -> None:
        """Queue ``row`` without waiting for its commit: for a record that charges nothing,
        where no money can be lost or doubled, an fsync per request is latency for nothing.
        A failed commit is logged; ``settled`` and ``close`` wait for queued rows."""
        self._queue.append((row, _log_failure))
        # Gathered for a moment first: a commit per free request, even off the response's
        # path, is work contending with the loop once per request.
        if (self._task is None or self._task.done()) and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(BEHIND_DELAY_S, self._start)

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._queue and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._run())

    async def settled(self) -> None:
        """Return once every row queued so far is committed (read-your-writes on this
        instance for rows written behind)."""
        self._start()
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
            outcome: BaseException | None = None
            started = time.perf_counter()
            try:
                await self._flush([row for row, _ in batch])
            except Exception as exc:
                outcome = exc
            else:
                self.commits += 1
                self.rows += len(batch)
            self.commit_seconds.observe(time.perf_counter() - started)
            for _, done in batch:
                try:
                    done(outcome)
                except Exception as exc:  # one row's follow-up must not strand the others'
                    log.error("a ledger callback failed: %s", type(exc).__name__)

    async def close(self) -> None:
        """Wait for rows already handed in to be written."""
        self._start()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
