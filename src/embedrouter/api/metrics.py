"""Prometheus metrics through ``prometheus_client``, one registry per app (nothing global).

Request metrics are observed on the event loop as each response goes out; the engine's are read
from the router when ``/metrics`` is scraped (a collector), so the engine never imports this.

    embedrouter_requests_total{route,status}                       counter
    embedrouter_request_duration_seconds{route,model,provider,status}  histogram
    embedrouter_input_tokens_total{model,provider}                 counter
    embedrouter_disconnected_requests_total{route}                 counter (also status 499)
    embedrouter_batcher_<name>{model}                              gauges: queue_items, ...
    embedrouter_batch_size{model}, embedrouter_batch_tokens{model},
    embedrouter_engine_seconds{model}                              histograms, per forward pass
    embedrouter_cache_<name>{backend}                              the vector cache's figures
                                                                   (``*_total``: counters)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from embedrouter import histogram

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Request latency: from a cached hit (~1 ms) to a long batch behind a full queue (tens of s).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0, 120.0)


class _EngineCollector(Collector):
    """Reads the router's gauges and histograms at scrape time (on the event loop)."""

    def __init__(self, stats: Callable[[], Mapping[str, Mapping[str, float]]],
                 histograms: Callable[[], Mapping[str, Mapping[str, Any]]]) -> None:
        self._stats, self._histograms = stats, histograms

    def collect(self) -> Iterator[Any]:
        engine = self._stats()
        for name in sorted({k for stats in engine.values() for k in stats}):
            family = GaugeMetricFamily(f"embedrouter_batcher_{name}",
                                       f"local model batcher: {name}", labels=["model"])
            for model, stats in sorted(engine.items()):
                if name in stats:
                    family.add_metric([model], float(stats[name]))
            yield family
        hists = self._histograms()
        for name in sorted({k for per_model in hists.values() for k in per_model}):
            family = HistogramMetricFamily(f"embedrouter_{name}", f"per forward pass: {name}",
                                           labels=["model"])
            for model, per_model in sorted(hists.items()):
                if name in per_model:
                    h = per_model[name]
                    family.add_metric([model], h.buckets(), h.total)
            yield family


class _CacheCollector(Collector):
    """The vector cache's stats dict per backend, read at scrape time."""

    def __init__(self, stats: Callable[[], Mapping[str, Mapping[str, float]]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Any]:
        cache = self._stats()
        for name in sorted({k for stats in cache.values() for k in stats}):
            base = f"embedrouter_cache_{name}"
            family: Any
            if name.endswith("_total"):
                family = CounterMetricFamily(base.removesuffix("_total"), f"vector cache: {name}",
                                             labels=["backend"])
            else:
                family = GaugeMetricFamily(base, f"vector cache: {name}", labels=["backend"])
            for backend, stats in sorted(cache.items()):
                if name in stats:
                    family.add_metric([backend], float(stats[name]))
            yield family


class _AccountsCollector(Collector):
    """Ledger commits and rows (rows / commits = charges per group commit), how long commits
    take, and in shared mode how often Redis failed (each failure refused a metered request
    with 503)."""

    def __init__(self, stats: Callable[[], Mapping[str, float]],
                 histograms: Callable[[], Mapping[str, histogram.Histogram]]) -> None:
        self._stats, self._histograms = stats, histograms

    def collect(self) -> Iterator[Any]:
        for name, value in sorted(self._stats().items()):
            family = CounterMetricFamily(f"embedrouter_accounts_{name}", f"accounts: {name}")
            family.add_metric([], float(value))
            yield family
        for name, h in sorted(self._histograms().items()):
            hist = HistogramMetricFamily(f"embedrouter_accounts_{name}", f"accounts: {name}")
            hist.add_metric([], h.buckets(), h.total)
            yield hist


class RequestMetrics:
    """The app's metrics; ``observe`` runs once per response, on the event loop."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._requests = Counter("embedrouter_requests", "HTTP requests by route and status",
                                 ["route", "status"], registry=self.registry)
        self._latency = Histogram("embedrouter_request_duration_seconds",
                                  "time from the request's arrival to its response",
                                  ["route", "model", "provider", "status"],
                                  buckets=LATENCY_BUCKETS, registry=self.registry)
        self._tokens = Counter("embedrouter_input_tokens", "input tokens embedded",
                               ["model", "provider"], registry=self.registry)
        self._disconnected = Counter("embedrouter_disconnected_requests",
                                     "requests whose client hung up before the answer",
                                     ["route"], registry=self.registry)
        # labels() costs a lock and a tuple hash each call; the children are cached instead
        # (label values are bounded: known routes, catalog models, configured providers).
        self._children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
        self._token_children: dict[tuple[str, str], Any] = {}
        self._engine: _EngineCollector | None = None
        self._cache: _CacheCollector | None = None

    def watch_engine(self, stats: Callable[[], Mapping[str, Mapping[str, float]]],
                     histograms: Callable[[], Mapping[str, Mapping[str, Any]]]) -> None:
        """Export the router's engine figures from now on (called once services exist)."""
        if self._engine is None:
            self._engine = _EngineCollector(stats, histograms)
            self.registry.register(self._engine)

    def watch_accounts(self, stats: Callable[[], Mapping[str, float]],
                       histograms: Callable[[], Mapping[str, histogram.Histogram]]) -> None:
        """Export the ledger's and counters' figures from now on (when accounting is on)."""
        self.registry.register(_AccountsCollector(stats, histograms))

    def watch_cache(self, stats: Callable[[], Mapping[str, Mapping[str, float]]]) -> None:
        """Export the vector cache's figures from now on (when a cache is configured)."""
        if self._cache is None:
            self._cache = _CacheCollector(stats)
            self.registry.register(self._cache)

    def observe(self, route: str, status: int, seconds: float, model: str = "",
                provider: str = "", tokens: int = 0) -> None:
        key = (route, model, provider, status)
        children = self._children.get(key)
        if children is None:
            children = (self._requests.labels(route, str(status)),
                        self._latency.labels(route, model, provider, str(status)))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if tokens:
            tk = self._token_children.get((model, provider))
            if tk is None:
                tk = self._token_children[(model, provider)] = self._tokens.labels(model,
                                                                                   provider)
            tk.inc(tokens)
        if status == 499:
            self._disconnected.labels(route).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
