"""What this instance has seen of each endpoint: recent failures, rate-limit rests, speed.

Single owner: the router's dispatcher updates it and ``selection.plan`` reads snapshots of it.
Percentiles come from a rolling five-minute window of the latest calls, as OpenRouter computes
its ``preferred_*`` figures. In-process only for now; several instances each keep their own.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import numpy as np

from embedrouter.router.selection import Health

WINDOW_S = 300.0
MAX_SAMPLES = 512
_PCTS = {"p50": 50, "p75": 75, "p90": 90, "p99": 99}


class _Endpoint:
    __slots__ = ("last_failure", "rate_limited_until", "samples")

    def __init__(self) -> None:
        self.last_failure: float | None = None
        self.rate_limited_until: float | None = None
        self.samples: deque[tuple[float, float, float]] = deque(maxlen=MAX_SAMPLES)


class HealthBook:
    """Per-endpoint health keyed by provider slug."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._by: dict[str, _Endpoint] = {}

    def now(self) -> float:
        return self._clock()

    def _get(self, provider: str) -> _Endpoint:
        return self._by.setdefault(provider, _Endpoint())

    def failed(self, provider: str, *, retry_after: float | None = None) -> None:
        entry = self._get(provider)
        now = self._clock()
        entry.last_failure = now
        if retry_after is not None:
            entry.rate_limited_until = max(entry.rate_limited_until or 0.0, now + retry_after)

    def succeeded(self, provider: str, *, seconds: float, tokens: int) -> None:
        now = self._clock()
        self._get(provider).samples.append((now, seconds, tokens / seconds if seconds > 0
                                            else 0.0))

    def snapshot(self) -> dict[str, Health]:
        now = self._clock()
        out: dict[str, Health] = {}
        for provider, entry in self._by.items():
            recent = [s for s in entry.samples if now - s[0] <= WINDOW_S]
            latency = throughput = None
            if recent:
                lat = np.array([s[1] for s in recent])
                tps = np.array([s[2] for s in recent])
                latency = {k: float(np.percentile(lat, q)) for k, q in _PCTS.items()}
                # Throughput percentiles are read from the slow end: p90 is what 90% beat.
                throughput = {k: float(np.percentile(tps, 100 - q)) for k, q in _PCTS.items()}
            out[provider] = Health(last_failure=entry.last_failure,
                                   rate_limited_until=entry.rate_limited_until,
                                   throughput=throughput, latency=latency)
        return out
