"""Precisions as endpoints, end to end: listed with their `quantization`, picked only through
`provider.quantizations` (or the operator's `default_quantization`), never as a fallback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.api.conftest import DEFAULT_MODEL, golden
from tests.api.test_http import assert_error, vectors
from tests.support.live import LiveServer, start_server

INT8 = {"provider": {"quantizations": ["int8"]}}


def embed(client: httpx.Client, model: str = DEFAULT_MODEL, *, store: bool = True,
          **body: object) -> httpx.Response:
    headers = {} if store else {"cache-control": "no-store"}
    return client.post("/embeddings", json={"model": model, **body}, headers=headers)


def cosines(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    return (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)


def test_endpoints_list_one_per_precision(client: httpx.Client) -> None:
    eps = client.get(f"/models/{DEFAULT_MODEL}/endpoints").json()["data"]["endpoints"]
    assert [(e["tag"], e["provider_name"], e["quantization"]) for e in eps] == [
        ("local", "Local", "fp32"), ("local/int8", "Local (int8)", "int8")]
    assert eps[1]["name"] == f"Local (int8) | {DEFAULT_MODEL}"
    assert eps[0]["pricing"] == eps[1]["pricing"]


def test_int8_only_when_asked(client: httpx.Client) -> None:
    rows = golden()
    texts = [r["input"] for r in rows]
    want = np.asarray([r["embedding"] for r in rows], np.float32)
    # no-store: both computed here (the golden texts may already be cached by other tests, and
    # a hit's usage carries cached_tokens).
    plain = embed(client, input=texts, store=False)
    int8 = embed(client, input=texts, store=False, **INT8)
    assert plain.json()["provider"] == "Local" and int8.json()["provider"] == "Local (int8)"
    assert plain.json()["model"] == int8.json()["model"]
    assert cosines(vectors(plain), want).min() >= 0.9999
    cos = cosines(vectors(int8), want)
    assert cos.min() >= 0.98 and cos.mean() >= 0.99
    assert np.abs(vectors(int8) - vectors(plain)).max() > 1e-3  # really another computation
    assert int8.json()["usage"] == plain.json()["usage"]
    both = embed(client, input=texts[:3], provider={"quantizations": ["int8", "fp32"]})
    assert both.json()["provider"] == "Local"  # the default wins when both are allowed


def test_the_vector_cache_keeps_precisions_apart(client: httpx.Client) -> None:
    texts = [f"precision and the cache {uuid.uuid4()}"]
    fp32 = embed(client, input=texts)  # computed, then cached
    first = embed(client, input=texts, **INT8)
    assert first.headers["x-embedrouter-cache"] == "miss"  # not fp32's entry
    assert np.abs(vectors(first) - vectors(fp32)).max() > 1e-3
    again = embed(client, input=texts, **INT8)
    assert again.headers["x-embedrouter-cache"] == "hit"
    assert again.json()["provider"] == "Local (int8)"
    assert np.array_equal(vectors(again), vectors(first))


def test_unserved_precision_is_a_404_not_a_fallback(client: httpx.Client) -> None:
    err = assert_error(embed(client, input="hi", provider={"quantizations": ["bf16"]}), 404)
    assert err["metadata"]["availability"]["code"] == "constraint_filtered"
    assert err["metadata"]["availability"]["excluded_by"] == ["quantization"]


def test_metrics_count_each_precision(client: httpx.Client, live_server: LiveServer) -> None:
    assert embed(client, input=["one", "two"], **INT8).status_code == 200
    text = httpx.get(f"{live_server.root}/metrics", timeout=30).text
    assert f'embedrouter_batcher_items_run{{model="{DEFAULT_MODEL}:int8"}}' in text
    assert f'embedrouter_batcher_items_run{{model="{DEFAULT_MODEL}"}}' in text


@pytest.fixture(scope="module")
def int8_default(tmp_path_factory: pytest.TempPathFactory, onnx_cache_dir: Path
                 ) -> Iterator[httpx.Client]:
    from embedrouter.engine import default_model_dir

    data = tmp_path_factory.mktemp("int8-default")
    config = data / "embedrouter.toml"
    config.write_text(f"""
[default_model]
default_quantization = "int8"

[[models]]
slug = "acme/fp32-only"
path = "{default_model_dir()}"
""")
    server = start_server(data, cache_dir=onnx_cache_dir, config=config)
    with httpx.Client(base_url=server.base_url, timeout=60,
                      headers={"authorization": f"Bearer {server.api_key}"}) as c:
        yield c
    server.stop()


def test_operator_default_int8(int8_default: httpx.Client) -> None:
    assert embed(int8_default, input="hello").json()["provider"] == "Local (int8)"
    fp32 = embed(int8_default, input="hello", provider={"quantizations": ["fp32"]})
    assert fp32.json()["provider"] == "Local"
    eps = int8_default.get(f"/models/{DEFAULT_MODEL}/endpoints").json()["data"]["endpoints"]
    assert [e["quantization"] for e in eps] == ["int8", "fp32"]


def test_declared_model_has_no_int8_unless_listed(int8_default: httpx.Client) -> None:
    eps = int8_default.get("/models/acme/fp32-only/endpoints").json()["data"]["endpoints"]
    assert [e["quantization"] for e in eps] == ["fp32"]
    err = assert_error(embed(int8_default, "acme/fp32-only", input="x", **INT8), 404)
    assert err["metadata"]["availability"]["code"] == "constraint_filtered"
