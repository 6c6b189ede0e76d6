"""OpenTelemetry traces of embeddings requests, when an OTLP endpoint is configured.

One SERVER span per ``POST /embeddings`` with the GenAI semantic conventions
(``gen_ai.operation.name`` = ``embeddings``, ``gen_ai.request.model``,
``gen_ai.usage.input_tokens``, ...), and child spans ``parse`` (body read and decoded),
``queue`` (waiting for the local model's batcher) and ``inference`` (the forward passes, or the
upstream round trip). All spans are built once the response is sent, from timestamps taken
along the way, so a traced request does no span work while it is being served; an app without
tracing holds ``None`` and does none at all. The ``otel`` extra is imported only here, and
only when tracing is configured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from embedrouter import __version__
from embedrouter.timing import Interval


class Tracing:
    """Turns a served request's timings into spans on ``provider`` (an OTel TracerProvider)."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._provider = provider
        self._tracer = provider.get_tracer("embedrouter", __version__)
        self._propagator = TraceContextTextMapPropagator()

    @classmethod
    def otlp(cls, endpoint: str) -> Tracing:
        """Spans batched and sent over OTLP/HTTP (protobuf) to ``endpoint`` (…/v1/traces)."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create(
            {"service.name": "embedrouter", "service.version": __version__}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        return cls(provider)

    def record(self, *, method: str, route: str, status: int, start_ns: int, end_ns: int,
               headers: Mapping[str, str], model: str, response_model: str, provider: str,
               tokens: int, encoding_format: str, intervals: Sequence[Interval]) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        # A caller's W3C traceparent makes this request a child of its trace.
        parent = self._propagator.extract(dict(headers))
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "embeddings",
            "http.request.method": method,
            "http.route": route,
            "http.response.status_code": status,
        }
        if model:
            attributes["gen_ai.request.model"] = model
        if encoding_format:
            attributes["gen_ai.request.encoding_formats"] = [encoding_format]
        if response_model:
            attributes["gen_ai.response.model"] = response_model
        if provider:
            attributes["gen_ai.provider.name"] = provider
        if status == 200:
            attributes["gen_ai.usage.input_tokens"] = tokens
        else:
            attributes["error.type"] = str(status)
        name = f"embeddings {model}" if model else "embeddings"
        root = self._tracer.start_span(name, context=parent, kind=SpanKind.SERVER,
                                       start_time=start_ns, attributes=attributes)
        if status >= 500:
            root.set_status(Status(StatusCode.ERROR))
        inside = trace.set_span_in_context(root)
        for child, start, end in intervals:
            self._tracer.start_span(child, context=inside, start_time=start).end(end_time=end)
        root.end(end_time=end_ns)

    def shutdown(self) -> None:
        """Flushes the spans still batched (blocking: run it off the event loop)."""
        shutdown = getattr(self._provider, "shutdown", None)
        if shutdown is not None:
            shutdown()
