"""Intervals a request spends in lower layers (queued, computing), for whoever traces it.

The API layer sets ``SPANS`` to a list for a request it traces; the engine and router append
``(name, start_ns, end_ns)`` to it. Unset (the default, and always when tracing is off) the
lower layers do no timing work at all, so tracing costs nothing when it is not configured.
"""

from __future__ import annotations

from contextvars import ContextVar

Interval = tuple[str, int, int]  # (name, start, end) in time.time_ns()

SPANS: ContextVar[list[Interval] | None] = ContextVar("embedrouter_spans", default=None)
