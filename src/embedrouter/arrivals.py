"""Requests on their way to a provider: accepted, still in authentication or admission.

A closed-loop group of clients comes back to the server together, but with accounting each
request first waits on a key read and a claim (PostgreSQL, Redis): the first few reach the
local model while the rest are still in those round trips. Started at once, the first few
make a small forward and the rest wait a whole forward for the next one; from then on the
clients run as two cohorts of half-size batches (bench/README.md, Accounts: 16 sequences a
forward against 30 without accounting, -11% throughput). With this count the batcher holds
a batch for an idle worker while requests are still on their way (engine/batcher.py,
``ARRIVAL_WAIT_MAX_S``), so they share one forward.

The API layer ``enter``s each embeddings request and sets ``ARRIVAL`` to its ticket for the
request's task. It calls ``arrived()`` itself once the body names a model that is not local
(such a request joins no local batch), the local provider calls it where the request reaches
the model's queue, and the API layer leaves in any case when the request ends. Unset (the
CLI's one-shot embed, tests that call the router directly) nothing is counted.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar


class Ticket:
    """One request's place in the count; ``leave`` is idempotent."""

    __slots__ = ("_arrivals", "_left")

    def __init__(self, arrivals: Arrivals) -> None:
        self._arrivals = arrivals
        self._left = False

    def leave(self) -> None:
        if not self._left:
            self._left = True
            self._arrivals._leave()


class Arrivals:
    """How many requests are on their way, and who waits for that to drop to 0."""

    __slots__ = ("_waiting", "count")

    def __init__(self) -> None:
        self.count = 0
        # Only a batcher holding a batch is here: a set() per request for every batcher
        # whenever the count touched 0 cost remote requests (which never queue locally) a
        # wake-up of every batcher task each.
        self._waiting: set[asyncio.Event] = set()

    def enter(self) -> Ticket:
        self.count += 1
        return Ticket(self)

    def wake_at_zero(self, event: asyncio.Event) -> None:
        """Set ``event`` once, when the count next drops to 0 (until ``forget``)."""
        self._waiting.add(event)

    def forget(self, event: asyncio.Event) -> None:
        self._waiting.discard(event)

    def _leave(self) -> None:
        self.count -= 1
        if self.count == 0 and self._waiting:
            for event in self._waiting:
                event.set()
            self._waiting.clear()


ARRIVAL: ContextVar[Ticket | None] = ContextVar("embedrouter_arrival", default=None)


def arrived() -> None:
    """This task's request has reached its provider: it no longer counts as on its way."""
    ticket = ARRIVAL.get()
    if ticket is not None:
        ticket.leave()
