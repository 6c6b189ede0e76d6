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
REFRESH_S = 1.0
_PCTS = {"p50": 50, "p75": 75, "p90": 90, "p99": 99}


class _Endpoint:
    __slots__ = ("last_failure", "percentiles", "percentiles_at", "rate_limited_until",
                 "samples")

    def __init__(self) -> None:
        self.last_failure: float | None = None
        self.rate_limited_until: float | None = None
        self.samples: deque[tuple[float, float, float]] = deque(maxlen=MAX_SAMPLES)
        self.percentiles: tuple[dict[str, float] | None, dict[str, float] | None] = (None, None)
        self.percentiles_at = float("-inf")

    def speed(self, now: float) -> tuple[dict[str, float] | None, dict[str, float] | None]:
        """(throughput, latency) percentiles, recomputed at most once a second: they describe
        five minutes, and every request reads them."""
        if now - self.percentiles_at >= REFRESH_S:
            recent = [s for s in self.samples if now - s[0] <= WINDOW_S]
            if recent:
                lat = np.array([s[1] for s in recent])
                tps = np.array([s[2] for s in recent])
                qs = list(_PCTS.values())
                lat_q = np.percentile(lat, qs)
                # Throughput is read from the slow end: p90 is what 90% of calls beat.
                tps_q = np.percentile(tps, [100 - q for q in qs])
                self.percentiles = (dict(zip(_PCTS, map(float, tps_q), strict=True)),
                                    dict(zip(_PCTS, map(float, lat_q), strict=True)))
            else:
                self.percentiles = (None, None)
            self.percentiles_at = now
        return self.percentiles


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
            throughput, latency = entry.speed(now)
            out[provider] = Health(last_failure=entry.last_failure,
                                   rate_limited_until=entry.rate_limited_until,
                                   throughput=throughput, latency=latency)
        return out
