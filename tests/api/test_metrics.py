"""GET /metrics through prometheus_client (issue 13 part 4): latency histograms by route, model,
provider and status; tokens; batch sizes, batch tokens and engine time per forward pass."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import DEFAULT_MODEL
from tests.support.live import LiveServer

ROUTE = "/api/v1/embeddings"


def scrape(server: LiveServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = httpx.get(f"{server.root}/metrics", timeout=30)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    out = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)  # type: ignore[no-any-return]


def test_an_embeddings_request_moves_every_series_by_what_it_did(live_server: LiveServer
                                                                  ) -> None:
    texts = ["the first of three inputs", "a second one", "and a third, rather longer, input"]
    series = {"route": ROUTE, "model": DEFAULT_MODEL, "provider": "Local", "status": "200"}
    before = scrape(live_server)
    r = httpx.post(f"{live_server.base_url}/embeddings", timeout=60,
                   headers={"authorization": f"Bearer {live_server.api_key}"},
                   json={"model": DEFAULT_MODEL, "input": texts})
    assert r.status_code == 200
    tokens = r.json()["usage"]["prompt_tokens"]
    after = scrape(live_server)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("embedrouter_requests_total", route=ROUTE, status="200") == 1
    assert moved("embedrouter_request_duration_seconds_count", **series) == 1
    assert moved("embedrouter_request_duration_seconds_bucket", **series, le="+Inf") == 1
    assert 0 < moved("embedrouter_request_duration_seconds_sum", **series) < 60
    assert moved("embedrouter_input_tokens_total", model=DEFAULT_MODEL,
                 provider="Local") == tokens
    # The batcher's histograms: every input ran in some batch, with its real token count.
    assert moved("embedrouter_batch_size_sum", model=DEFAULT_MODEL) == len(texts)
    assert moved("embedrouter_batch_tokens_sum", model=DEFAULT_MODEL) == tokens
    batches = moved("embedrouter_batch_size_count", model=DEFAULT_MODEL)
    assert batches >= 1
    assert moved("embedrouter_engine_seconds_count", model=DEFAULT_MODEL) == batches
    assert moved("embedrouter_engine_seconds_sum", model=DEFAULT_MODEL) > 0
    assert ("embedrouter_batcher_queue_items", (("model", DEFAULT_MODEL),)) in after


def test_model_labels_stay_bounded_whatever_clients_send(live_server: LiveServer) -> None:
    headers = {"authorization": f"Bearer {live_server.api_key}"}
    for i in range(5):
        r = httpx.post(f"{live_server.base_url}/embeddings", headers=headers, timeout=30,
                       json={"model": f"nobody/model-{i}", "input": "x"})
        assert r.status_code == 400
    samples = scrape(live_server)
    models = {dict(labels).get("model") for (name, labels) in samples
              if name == "embedrouter_request_duration_seconds_count"}
    assert not any(m.startswith("nobody/") for m in models if m)
    assert value(samples, "embedrouter_request_duration_seconds_count", route=ROUTE,
                 model="unknown", provider="", status="400") >= 5
