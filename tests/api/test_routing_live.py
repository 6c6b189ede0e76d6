"""Routing end to end: a real `embedrouter serve` with two remote providers (OpenAI and Voyage
wire formats) served by the fake upstreams on 127.0.0.1: splitting, fallback, reassembly, errors,
and the upstream key kept out of every reply and log line."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.fake_formats import DEFAULT_DIM, vector_for
from tests.support.fake_upstreams import API_KEY, FakeUpstreams, Step
from tests.support.live import LiveServer, start_server

pytestmark = pytest.mark.slow
MODEL = "acme/fake-embed"
ORDER = {"order": ["alpha", "beta"]}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstreams]:
    upstreams = FakeUpstreams().start()
    yield upstreams
    upstreams.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, onnx_cache_dir: Path,
           fake: FakeUpstreams) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("routing")
    config = data / "embedrouter.toml"
    config.write_text(f"""
[default_model]
enabled = false

# Routing under scripted upstream replies: every request must reach the upstream, so no cache
# (tests/cache covers the cache in front of this same routing).
[cache]
enabled = false

[routing]
deadline_s = 4

[[providers]]
name = "alpha"
kind = "openai"
base_url = "{fake.base_url('openai')}"
api_key_env = "ALPHA_KEY"
display_name = "Alpha"
timeout_s = 2

[[providers]]
name = "beta"
kind = "voyage"
base_url = "{fake.base_url('voyage')}"
api_key_env = "BETA_KEY"
display_name = "Beta"
timeout_s = 2

[[providers]]
name = "gamma"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "GAMMA_KEY_NOT_SET"

[[models]]
slug = "{MODEL}"
dimensions = {DEFAULT_DIM}
context_length = 512
  [[models.endpoints]]
  provider = "alpha"
  upstream_model = "alpha-embed"
  price_per_million = "1"
  max_inputs = 3
  [[models.endpoints]]
  provider = "beta"
  upstream_model = "beta-embed"
  price_per_million = "2"
  data_collection = "deny"
  [[models.endpoints]]
  provider = "gamma"
  upstream_model = "never"
""")
    srv = start_server(data, cache_dir=onnx_cache_dir, config=config,
                       env={"ALPHA_KEY": API_KEY, "BETA_KEY": API_KEY})
    yield srv
    srv.stop()
    assert not any(API_KEY in line for line in srv.output), "an upstream key reached the log"


@pytest.fixture
def client(server: LiveServer, fake: FakeUpstreams) -> Iterator[httpx.Client]:
    fake.reset()
    with httpx.Client(base_url=server.base_url, timeout=30,
                      headers={"authorization": f"Bearer {server.api_key}"}) as c:
        yield c


def post(client: httpx.Client, texts: list[str], **kw: object) -> httpx.Response:
    return client.post("/embeddings", json={"model": MODEL, "input": texts, **kw})


def rows(resp: httpx.Response) -> np.ndarray:
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert [d["index"] for d in data] == list(range(len(data)))
    return np.array([d["embedding"] for d in data], dtype=np.float32)


def want(texts: list[str]) -> np.ndarray:
    return np.stack([vector_for(t, DEFAULT_DIM) for t in texts])


def test_split_to_caps_and_reassembled_by_index(client: httpx.Client,
                                                fake: FakeUpstreams) -> None:
    texts = [f"text number {i}" for i in range(10)]
    fake.script(*[Step.ok("shuffle") for _ in range(4)])
    resp = post(client, texts, provider=ORDER)
    np.testing.assert_allclose(rows(resp), want(texts), atol=1e-6)
    body = resp.json()
    assert body["provider"] == "Alpha" and body["model"] == "alpha-embed"
    assert len(fake.seen) == math.ceil(10 / 3) and all(len(s.json["input"]) <= 3
                                                       for s in fake.seen)
    assert fake.seen[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert body["usage"]["cost"] == pytest.approx(body["usage"]["prompt_tokens"] / 1e6)


def test_a_failed_part_falls_back_to_the_next_endpoint(client: httpx.Client,
                                                       fake: FakeUpstreams) -> None:
    fake.script(Step.error(500))
    resp = post(client, ["one", "two"], provider=ORDER)
    np.testing.assert_allclose(rows(resp), want(["one", "two"]), atol=1e-6)
    assert resp.json()["provider"] == "Beta"
    assert [s.wire for s in fake.seen] == ["openai", "voyage"]


@pytest.mark.parametrize("flaw", ["short", "dup_index", "wrong_dim", "bad_base64"])
def test_a_malformed_reply_is_never_a_200_with_wrong_rows(client: httpx.Client,
                                                          fake: FakeUpstreams, flaw: str) -> None:
    fake.script(Step.ok(flaw))
    resp = post(client, ["a", "b", "c"], provider=ORDER)
    np.testing.assert_allclose(rows(resp), want(["a", "b", "c"]), atol=1e-6)
    assert resp.json()["provider"] == "Beta"  # alpha's reply was refused, beta served


def test_missing_usage_is_estimated_and_said(client: httpx.Client, fake: FakeUpstreams) -> None:
    fake.script(Step.ok("no_usage"))
    resp = post(client, ["hello there"], provider=ORDER)
    assert resp.headers["x-embedrouter-usage-estimated"] == "true"
    assert resp.json()["usage"]["prompt_tokens"] >= 1


def test_preferences_filter(client: httpx.Client, fake: FakeUpstreams) -> None:
    resp = post(client, ["x"], provider={"data_collection": "deny"})
    assert rows(resp).shape == (1, DEFAULT_DIM) and resp.json()["provider"] == "Beta"
    err = post(client, ["x"], provider={"max_price": {"prompt": "0.5"}})
    assert err.status_code == 404
    assert err.json()["error"]["metadata"]["availability"]["code"] == "constraint_filtered"
    only = post(client, ["x"], provider={"only": ["alpha"], "allow_fallbacks": False})
    assert only.json()["provider"] == "Alpha"


def test_non_retryable_upstream_400_is_the_callers_400(client: httpx.Client,
                                                       fake: FakeUpstreams) -> None:
    fake.script(Step.error(400))
    resp = post(client, ["x"], provider=ORDER)
    assert resp.status_code == 400
    meta = resp.json()["error"]["metadata"]
    assert meta["provider_name"] == "Alpha" and meta["provider_code"] is not None
    assert API_KEY not in resp.text
    assert [s.wire for s in fake.seen] == ["openai"]


def test_timeouts_everywhere_are_504(client: httpx.Client, fake: FakeUpstreams) -> None:
    fake.script(Step.delay(3), Step.delay(3))
    resp = post(client, ["slow"], provider=ORDER)
    assert resp.status_code in (504, 524), resp.text  # 2 s per call, 4 s for the request
    assert resp.json()["error"]["code"] == resp.status_code


def test_listings_show_only_enabled_endpoints(client: httpx.Client) -> None:
    models = {m["id"] for m in client.get("/models").json()["data"]}
    assert MODEL in models
    eps = client.get(f"/models/{MODEL}/endpoints").json()["data"]["endpoints"]
    assert [(e["provider_name"], e["tag"]) for e in eps] == [("Alpha", "alpha"), ("Beta", "beta")]
    assert eps[0]["pricing"]["prompt"] == "0.000001" and eps[0]["max_inputs_per_call"] == 3


def test_all_rate_limited_is_429_with_the_smallest_hint(client: httpx.Client,
                                                        fake: FakeUpstreams) -> None:
    # Last: alpha then rests for its hint on this instance.
    # Alpha (OpenAI format) sends retry-after; Voyage documents no hint.
    fake.script(Step.error("rate_limited", retry=3), Step.error("rate_limited"))
    resp = post(client, ["x"], provider=ORDER)
    assert resp.status_code == 429, resp.text
    err = resp.json()["error"]
    assert err["metadata"]["availability"]["code"] == "capacity_exhausted"
    assert resp.headers["retry-after"] == "3"
    # Alpha now rests for its 3 s; Beta gave no hint, so it is tried (and serves) at once.
    again = post(client, ["x"], provider=ORDER)
    assert again.json()["provider"] == "Beta"
    assert [s.wire for s in fake.seen] == ["openai", "voyage", "voyage"]
