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
               accounts: Mapping[str, float] | None = None) -> bytes:
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
        # Ledger commits and rows (rows / commits = charges per group commit), and in shared
        # mode how often Redis failed (each failure refused a metered request with 503).
        for name, value in sorted((accounts or {}).items()):
            lines.append(f"# TYPE embedrouter_accounts_{name} counter")
            lines.append(f"embedrouter_accounts_{name} {value}")
        return ("\n".join(lines) + "\n").encode()
