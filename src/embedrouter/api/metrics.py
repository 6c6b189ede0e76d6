"""Prometheus text exposition: request counters kept by the app, engine gauges from the router."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping


class RequestMetrics:
    """Counts and total latency per (route, status); owned by the app, updated on the loop."""

    def __init__(self) -> None:
        self._count: dict[tuple[str, int], int] = defaultdict(int)
        self._seconds: dict[str, float] = defaultdict(float)
        self._observed: dict[str, int] = defaultdict(int)

    def observe(self, route: str, status: int, seconds: float) -> None:
        self._count[(route, status)] += 1
        self._seconds[route] += seconds
        self._observed[route] += 1

    def render(self, engine: Mapping[str, Mapping[str, float]],
               cache: Mapping[str, Mapping[str, float]] | None = None) -> bytes:
        """``cache``: the vector cache's stats dict per backend (``*_total`` names are
        counters, the rest gauges), rendered as ``embedrouter_cache_<name>{backend=...}``."""
        lines = ["# TYPE embedrouter_requests_total counter"]
        for (route, status), n in sorted(self._count.items()):
            lines.append(f'embedrouter_requests_total{{route="{route}",status="{status}"}} {n}')
        lines.append("# TYPE embedrouter_request_duration_seconds summary")
        for route in sorted(self._observed):
            lines.append(f'embedrouter_request_duration_seconds_sum{{route="{route}"}} '
                         f"{self._seconds[route]:.6f}")
            lines.append(f'embedrouter_request_duration_seconds_count{{route="{route}"}} '
                         f"{self._observed[route]}")
        names = sorted({k for stats in engine.values() for k in stats})
        for name in names:
            lines.append(f"# TYPE embedrouter_batcher_{name} gauge")
            for model, stats in sorted(engine.items()):
                if name in stats:
                    lines.append(f'embedrouter_batcher_{name}{{model="{model}"}} {stats[name]}')
        cache = cache or {}
        for name in sorted({k for stats in cache.values() for k in stats}):
            kind = "counter" if name.endswith("_total") else "gauge"
            lines.append(f"# TYPE embedrouter_cache_{name} {kind}")
            for backend, stats in sorted(cache.items()):
                if name in stats:
                    lines.append(f'embedrouter_cache_{name}{{backend="{backend}"}} {stats[name]}')
        return ("\n".join(lines) + "\n").encode()
