"""Bucket counts in Prometheus's histogram shape, kept by one owner on the event loop (the
batcher, the ledger writer).

The engine and accounts do not import a metrics library: the API's collectors read these when
scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence


class Histogram:
    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)  # the last is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le: bound >= value
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative ``(le, count)`` pairs ending with ``+Inf``."""
        out, running = [], 0
        for bound, n in zip([*map(repr, map(float, self.bounds)), "+Inf"], self.counts,
                            strict=True):
            running += n
            out.append((bound, float(running)))
        return out


BATCH_SIZE_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
BATCH_TOKEN_BOUNDS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
ENGINE_SECONDS_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# A group commit of charges: ~0.1-1 ms on a quiet local disk, seconds when one stalls.
LEDGER_COMMIT_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                        2.5, 5.0)
