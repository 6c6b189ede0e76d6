"""The cache over HTTP, on real `embedrouter serve` processes: the local model's cached vector
is bit-identical, Cache-Control is honoured, usage and /metrics show it, two servers share one
Redis, hits are billed at the configured fraction, and a dead Redis costs no request."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.cache.conftest import (
    REDIS_URL,
    REMOTE_MODEL,
    drop_prefix,
    fresh_prefix,
    remote_config,
    require_redis,
)
from tests.support.fake_formats import tokens_for
from tests.support.fake_upstreams import API_KEY, FakeUpstreams
from tests.support.live import LiveServer, start_server

LOCAL = "sentence-transformers/all-minilm-l6-v2"
REMOTE = REMOTE_MODEL


def client_for(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=60,
                        headers={"authorization": f"Bearer {server.api_key}"})


def embed(c: httpx.Client, texts: list[str], model: str = LOCAL,
          **headers: str) -> httpx.Response:
    resp = c.post("/embeddings", json={"model": model, "input": texts,
                                       "encoding_format": "base64"},
                  headers={k.replace("_", "-"): v for k, v in headers.items()})
    assert resp.status_code == 200, resp.text
    return resp


def rows(resp: httpx.Response) -> list[str]:
    data = resp.json()["data"]
    assert [d["index"] for d in data] == list(range(len(data)))
    return [d["embedding"] for d in data]


def test_local_vector_from_the_cache_is_bit_identical(live_server: LiveServer) -> None:
    texts = [f"bit identical {uuid.uuid4()}", f"another {uuid.uuid4()} text, longer than one"]
    with client_for(live_server) as c:
        computed = embed(c, texts)
        cached = embed(c, texts)
        fresh = embed(c, texts, cache_control="no-store")
    assert computed.headers["x-embedrouter-cache"] == "miss"
    assert cached.headers["x-embedrouter-cache"] == "hit"
    assert "x-embedrouter-cache" not in fresh.headers
    # base64 is the float32 bytes themselves: equal strings are equal bits.
    assert rows(cached) == rows(computed) == rows(fresh)
    used, hit, plain = (r.json()["usage"] for r in (computed, cached, fresh))
    assert used["prompt_tokens"] == hit["prompt_tokens"] == plain["prompt_tokens"] > 0
    assert used["prompt_tokens_details"] == {"cached_tokens": 0}
    assert hit["prompt_tokens_details"] == {"cached_tokens": hit["prompt_tokens"]}
    assert "prompt_tokens_details" not in plain


def test_cache_control_and_metrics(live_server: LiveServer) -> None:
    a, b = f"cc {uuid.uuid4()}", f"cc {uuid.uuid4()}"
    with client_for(live_server) as c:
        assert embed(c, [a], cache_control="no-store").headers.get("x-embedrouter-cache") is None
        # no-store wrote nothing: still a miss. no-cache reads nothing but stores.
        assert embed(c, [a], cache_control="no-cache").headers["x-embedrouter-cache"] == "miss"
        assert embed(c, [a]).headers["x-embedrouter-cache"] == "hit"
        assert embed(c, [a], cache_control="no-cache").headers["x-embedrouter-cache"] == "miss"
        mixed = embed(c, [b, a, b])
        assert mixed.headers["x-embedrouter-cache"] == "partial"
        usage = mixed.json()["usage"]
        one = embed(c, [b]).json()["usage"]["prompt_tokens"]
        assert usage["prompt_tokens_details"]["cached_tokens"] == usage["prompt_tokens"] - one
    metrics = httpx.get(live_server.root + "/metrics").text
    for line in ('embedrouter_cache_hits_total{backend="memory"}',
                 'embedrouter_cache_misses_total{backend="sqlite"}',
                 'embedrouter_cache_bytes{backend="sqlite"}',
                 'embedrouter_cache_evictions_total{backend="memory"}',
                 'embedrouter_cache_errors_total{backend="sqlite"}'):
        assert line in metrics
    hits = next(ln for ln in metrics.splitlines()
                if ln.startswith('embedrouter_cache_hits_total{backend="memory"}'))
    assert float(hits.rsplit(" ", 1)[1]) >= 3


def write_config(fake: FakeUpstreams, data: Path, extra: str = "") -> Path:
    config = data / "embedrouter.toml"
    config.write_text(remote_config(fake, price="2", max_inputs=1, extra=extra))
    return config


@pytest.fixture(scope="module")
def redis_prefix() -> Iterator[str]:
    require_redis()
    prefix = fresh_prefix()
    yield prefix
    drop_prefix(prefix)


@pytest.mark.slow
def test_two_servers_share_the_redis_cache(tmp_path_factory: pytest.TempPathFactory,
                                           onnx_cache_dir: Path, fake: FakeUpstreams,
                                           redis_prefix: str) -> None:
    servers = []
    try:
        for name, fraction in (("one", "0"), ("two", "0.5")):
            data = tmp_path_factory.mktemp(f"redis-{name}")
            # Memory and SQLite stay on: the second server's own tiers are cold, so a hit there
            # can only come from Redis.
            config = write_config(fake, data, f'[cache]\nredis_prefix = "{redis_prefix}"\n'
                                               f'hit_price_fraction = "{fraction}"')
            servers.append(start_server(data, cache_dir=onnx_cache_dir, config=config,
                                        env={"ALPHA_KEY": API_KEY,
                                             "EMBEDROUTER_REDIS_URL": REDIS_URL}))
        texts = [f"shared {uuid.uuid4()}", "two words"]
        fake.reset()
        with client_for(servers[0]) as one, client_for(servers[1]) as two:
            first = embed(one, texts, REMOTE)
            assert len(fake.seen) == 2  # one input per call (max_inputs = 1)
            second = embed(two, texts, REMOTE)
            assert len(fake.seen) == 2, "the second server called the upstream"
        assert first.headers["x-embedrouter-cache"] == "miss"
        assert second.headers["x-embedrouter-cache"] == "hit"
        assert rows(first) == rows(second)
        tokens = sum(map(tokens_for, texts))
        u1, u2 = first.json()["usage"], second.json()["usage"]
        assert u1["prompt_tokens"] == u2["prompt_tokens"] == tokens
        assert u2["prompt_tokens_details"] == {"cached_tokens": tokens}
        # Server two bills hits at half the price: 2 USD per 1M tokens, times 0.5.
        assert Decimal(str(u1["cost"])) == Decimal(2) * tokens / 1_000_000
        assert Decimal(str(u2["cost"])) == Decimal(1) * tokens / 1_000_000
        metrics = httpx.get(servers[1].root + "/metrics").text
        assert 'embedrouter_cache_hits_total{backend="redis"} 2' in metrics
    finally:
        for server in servers:
            server.stop()
        fake.reset()


@pytest.mark.slow
def test_a_dead_redis_costs_no_request(tmp_path_factory: pytest.TempPathFactory,
                                       onnx_cache_dir: Path, fake: FakeUpstreams) -> None:
    data = tmp_path_factory.mktemp("redis-dead")
    # The cache's own redis_url: EMBEDROUTER_REDIS_URL would also put the accounts' counters on
    # this dead Redis, and then every metered request is refused (503) by design.
    config = write_config(fake, data, "[cache]\nredis_timeout_s = 0.5\nbackend_retry_s = 60\n"
                                      'redis_url = "redis://:pw-hunter2@127.0.0.1:9/0"')
    server = start_server(data, cache_dir=onnx_cache_dir, config=config,
                          env={"ALPHA_KEY": API_KEY})
    try:
        with client_for(server) as c:
            for i in range(3):
                embed(c, [f"dead redis {i}", "dead redis 0"], REMOTE)
        metrics = httpx.get(server.root + "/metrics").text
        assert 'embedrouter_cache_errors_total{backend="redis"} 1' in metrics
        # "dead redis 0" was computed once, then a memory hit for the next two requests.
        assert 'embedrouter_cache_hits_total{backend="memory"} 2' in metrics
        deadline = time.monotonic() + 20
        while not any("vector cache backend redis failed" in ln for ln in server.output):
            assert time.monotonic() < deadline, "no log line for the failing backend"
            time.sleep(0.05)
    finally:
        server.stop()
        fake.reset()
    assert not any("hunter2" in line for line in server.output)
