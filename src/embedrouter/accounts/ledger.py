"""Group commit of charges: many requests' generation rows in one durable transaction.

Each caller hands in its row and waits for the commit that contains it; one flusher task owns
the queue and writes whatever has gathered while the previous commit ran. At low load a row
commits alone (no added wait); under load one fsync covers many charges.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from embedrouter.store.records import GenerationRecord

MAX_BATCH = 512
# How long rows written behind (free requests) wait to be gathered into one commit.
BEHIND_DELAY_S = 0.05
log = logging.getLogger("embedrouter.accounts")


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("a usage record of a free request was not written: %s",
                    type(future.exception()).__name__)

Flush = Callable[[list[GenerationRecord]], Awaitable[None]]


class LedgerWriter:
    def __init__(self, flush: Flush, *, max_batch: int = MAX_BATCH) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._queue: list[tuple[GenerationRecord, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.commits = 0  # for /metrics: rows per commit = rows / commits
        self.rows = 0

    async def write(self, row: GenerationRecord) -> None:
        """Return once ``row`` is committed; raise what the commit raised if it failed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Read the outcome even if the caller was cancelled, so a failed commit is not also
        # reported as "exception never retrieved".
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.append((row, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        # Shielded: a caller that is cancelled (client gone) must not cancel a commit that
        # other requests' charges share; its own row is committed regardless.
        await asyncio.shield(future)

    def write_behind(self, row: GenerationRecord) -> None:
        """Queue ``row`` without waiting for its commit: for a record that charges nothing,
        where no money can be lost or doubled, an fsync per request is latency for nothing.
        A failed commit is logged; ``settled`` and ``close`` wait for queued rows."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        future.add_done_callback(_log_failure)
        self._queue.append((row, future))
        # Gathered for a moment first: a commit per free request, even off the response's
        # path, is a worker thread contending for the GIL with the loop once per request.
        if (self._task is None or self._task.done()) and self._timer is None:
            self._timer = loop.call_later(BEHIND_DELAY_S, self._start)

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
            try:
                await self._flush([row for row, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.commits += 1
            self.rows += len(batch)
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    async def close(self) -> None:
        """Wait for rows already handed in to be written."""
        self._start()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
