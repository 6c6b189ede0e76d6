"""OpenTelemetry traces (issue 13 part 4), read back with the SDK's in-memory exporter: the GenAI
attributes, and parse / queue / inference spans inside the request's span."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from embedrouter.api.app import App
from embedrouter.api.tracing import Tracing
from embedrouter.server import build_services, create_app
from embedrouter.settings import Settings, load_settings
from tests.api.conftest import DEFAULT_MODEL

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


async def _lifespan(app: App) -> tuple[asyncio.Queue, asyncio.Queue, asyncio.Task]:
    inbox: asyncio.Queue = asyncio.Queue()
    outbox: asyncio.Queue = asyncio.Queue()
    task = asyncio.ensure_future(app({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    return inbox, outbox, task


@pytest.fixture
async def traced(tmp_path: Path, onnx_cache_dir: Path
                 ) -> AsyncIterator[tuple[httpx.AsyncClient, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(data_dir=tmp_path, cache_dir=onnx_cache_dir)
    app = App(lambda: build_services(settings), tracing=Tracing(provider))
    inbox, outbox, task = await _lifespan(app)
    assert app.services is not None
    key, _ = await app.services.keys.create("traced")  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test/api/v1", timeout=60,
                                 headers={"authorization": f"Bearer {key}"}) as client:
        yield client, exporter
    await inbox.put({"type": "lifespan.shutdown"})
    await outbox.get()
    await task


async def test_an_embeddings_request_is_one_genai_span_with_its_stages(traced) -> None:
    client, exporter = traced
    r = await client.post("/embeddings", headers={"traceparent": TRACEPARENT},
                          json={"model": DEFAULT_MODEL, "input": ["one text", "and another"],
                                "encoding_format": "base64"})
    assert r.status_code == 200
    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.parent is None or s.kind == SpanKind.SERVER)
    assert root.name == f"embeddings {DEFAULT_MODEL}"
    assert root.kind == SpanKind.SERVER
    attrs = dict(root.attributes)
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.request.model"] == DEFAULT_MODEL
    assert attrs["gen_ai.usage.input_tokens"] == r.json()["usage"]["prompt_tokens"]
    assert attrs["gen_ai.provider.name"] == "Local"
    assert attrs["gen_ai.request.encoding_formats"] == ("base64",)
    assert attrs["http.response.status_code"] == 200
    assert format(root.context.trace_id, "032x") == TRACE_ID  # the caller's trace continues
    children = {s.name: s for s in spans if s is not root}
    assert set(children) == {"parse", "queue", "inference"}
    for child in children.values():
        assert child.parent.span_id == root.context.span_id
        assert root.start_time <= child.start_time <= child.end_time <= root.end_time
    parse, queue, inference = children["parse"], children["queue"], children["inference"]
    assert parse.end_time <= queue.start_time <= queue.end_time == inference.start_time
    assert inference.end_time > inference.start_time


async def test_a_refused_request_is_traced_without_stages_and_others_not_at_all(traced) -> None:
    client, exporter = traced
    r = await client.post("/embeddings", json={"model": "nobody/none", "input": "x"})
    assert r.status_code == 400
    assert (await client.get("/embeddings/models")).status_code == 200
    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.kind == SpanKind.SERVER)
    assert root.attributes["error.type"] == "400"
    assert "gen_ai.usage.input_tokens" not in root.attributes
    assert root.status.status_code != StatusCode.ERROR  # a 4XX is the caller's, not ours
    assert {s.name for s in spans} == {root.name, "parse"}


def test_tracing_is_off_unless_an_endpoint_is_configured(tmp_path: Path) -> None:
    off = load_settings(None, overrides={"data_dir": tmp_path}, env={})
    assert off.otlp_endpoint is None and create_app(off).tracing is None
    on = load_settings(None, overrides={"data_dir": tmp_path},
                       env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/"})
    assert on.otlp_endpoint == "http://127.0.0.1:4318/v1/traces"
    app = create_app(on)
    assert app.tracing is not None
    app.tracing.shutdown()
    config = tmp_path / "c.toml"
    config.write_text('[telemetry]\notlp_endpoint = "http://127.0.0.1:9/v1/traces"\n')
    assert load_settings(config, env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1"}
                         ).otlp_endpoint == "http://127.0.0.1:9/v1/traces"
