"""Limits, prices, Matryoshka and prefixes, on a server started with a config file."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import numpy as np

from tests.api.conftest import DEFAULT_MODEL, golden
from tests.api.test_http import assert_error, vectors
from tests.support.live import LiveServer


def test_cost_is_exact_from_the_catalog_price(configured: httpx.Client) -> None:
    resp = configured.post("/embeddings", json={"model": DEFAULT_MODEL, "input": ["hello"] * 7},
                           headers={"cache-control": "no-store"})
    usage = resp.json()["usage"]
    assert usage["prompt_tokens"] == 21
    # 21 tokens at $0.02 per million, exactly; the number is written without float rounding.
    assert Decimal(resp.text.split('"cost":')[1].split(",")[0]) == Decimal("0.00000042")
    # Through the cache, the repeats (and any earlier "hello") are hits, which cost nothing.
    cached = configured.post("/embeddings", json={"model": DEFAULT_MODEL, "input": ["hello"] * 7})
    usage = cached.json()["usage"]
    assert usage["prompt_tokens"] == 21 and usage["prompt_tokens_details"]["cached_tokens"] >= 18
    paid = 21 - usage["prompt_tokens_details"]["cached_tokens"]
    assert Decimal(cached.text.split('"cost":')[1].split(",")[0]) == Decimal("0.02") * paid / 10**6


def test_too_many_inputs_and_too_big_a_body(configured: httpx.Client) -> None:
    assert_error(configured.post("/embeddings", json={"model": DEFAULT_MODEL,
                                                       "input": ["x"] * 9}), 413, "limit is 8")
    assert_error(configured.post("/embeddings", json={"model": DEFAULT_MODEL,
                                                       "input": "x" * 5000}), 413)


def test_not_an_embeddings_model(configured: httpx.Client) -> None:
    err = assert_error(configured.post("/embeddings", json={"model": "acme/chat-model",
                                                             "input": "x"}), 404)
    assert err["metadata"]["availability"]["code"] == "no_endpoints"


def test_matryoshka_truncates_and_renormalizes(configured: httpx.Client) -> None:
    full = vectors(configured.post("/embeddings", json={"model": "acme/minilm-mrl",
                                                         "input": ["a", "bb"]}))
    short = vectors(configured.post("/embeddings", json={"model": "acme/minilm-mrl",
                                                          "input": ["a", "bb"],
                                                          "dimensions": 64}))
    assert short.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-6)
    expected = full[:, :64] / np.linalg.norm(full[:, :64], axis=1, keepdims=True)
    np.testing.assert_allclose(short, expected, atol=1e-6)


def test_input_type_prefixes(configured: httpx.Client) -> None:
    def one(**kw: object) -> np.ndarray:
        return vectors(configured.post("/embeddings", json={"model": "acme/minilm-mrl", **kw}))

    np.testing.assert_allclose(one(input="cats", input_type="query"),
                               one(input="query: cats"), atol=1e-6)
    np.testing.assert_allclose(one(input="cats", input_type="passage"),
                               one(input="passage: cats"), atol=1e-6)
    assert_error(configured.post("/embeddings", json={"model": "acme/minilm-mrl", "input": "x",
                                                      "input_type": "code"}), 400, "query")


def test_models_filters(configured: httpx.Client) -> None:
    # Without the filter /models lists every model served (OpenRouter lists text models only,
    # which here would hide every embeddings model from client.models.list() and UI pickers).
    plain = configured.get("/models").json()
    assert [m["id"] for m in plain["data"]] == [DEFAULT_MODEL, "acme/minilm-mrl",
                                                "acme/chat-model"]
    text = configured.get("/models", params={"output_modalities": "text"}).json()
    assert [m["id"] for m in text["data"]] == ["acme/chat-model"]
    paged = configured.get("/models", params={"limit": 2}).json()
    assert paged["links"]["next"] == "/api/v1/models?offset=2&limit=2"
    emb = configured.get("/models", params={"output_modalities": "embeddings"}).json()
    assert {m["id"] for m in emb["data"]} == {DEFAULT_MODEL, "acme/minilm-mrl"}
    assert configured.get("/models", params={"output_modalities": "all"}).json()[
        "total_count"] == 3
    filtered = configured.get("/models", params={"output_modalities": "embeddings",
                                                 "limit": 1}).json()
    assert filtered["links"]["next"] == (
        "/api/v1/models?output_modalities=embeddings&offset=1&limit=1")
    page = configured.get("/embeddings/models", params={"offset": 0, "limit": 1}).json()
    assert page["total_count"] == 2 and len(page["data"]) == 1
    nxt = page["links"]["next"]
    assert nxt == "/api/v1/embeddings/models?offset=1&limit=1"
    second = configured.get(nxt.removeprefix("/api/v1")).json()
    assert second["links"]["next"] is None and second["data"][0]["id"] == "acme/minilm-mrl"


async def test_full_queue_answers_429_with_retry_after(configured_server: LiveServer) -> None:
    # 24 requests of 8 ~80-token inputs at once against a queue of 24 items: besides the
    # forward running and the batch waiting for the worker (which takes arrivals while it
    # waits), the queue holds three of them; the rest must be refused, however fast the
    # machine (twelve shorter ones all fit in the batches on a fast one).
    body = {"model": DEFAULT_MODEL, "input": ["a long enough sentence to take a while " * 10] * 8}
    # no-store: through the cache the identical requests would be one computation.
    headers = {"authorization": f"Bearer {configured_server.api_key}", "cache-control": "no-store"}
    async with httpx.AsyncClient(base_url=configured_server.base_url, timeout=60,
                                 headers=headers) as c:
        replies = await asyncio.gather(*(c.post("/embeddings", json=body) for _ in range(24)))
    statuses = [r.status_code for r in replies]
    assert set(statuses) <= {200, 429}
    assert 429 in statuses and 200 in statuses
    refused = next(r for r in replies if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == 429


def _post(client: httpx.Client, model: str, inputs: object) -> httpx.Response:
    return client.post("/embeddings", json={"model": model, "input": inputs})


def test_native_token_ids_are_the_models_own(configured: httpx.Client) -> None:
    # acme/minilm-mrl has token_ids = "native": ids are WordPiece ids, used as they are.
    rows = [r for r in golden() if len(r["token_ids"]) < 40][:3]
    model = "acme/minilm-mrl"
    by_text = vectors(_post(configured, model, [r["input"] for r in rows]))
    by_ids = vectors(_post(configured, model, [r["token_ids"] for r in rows]))
    as_floats = vectors(_post(configured, model, [[float(t) for t in r["token_ids"]]
                                                  for r in rows]))
    # Ids without [CLS]/[SEP] get them added, so raw tokenizer output works too.
    bare = vectors(_post(configured, model, [r["token_ids"][1:-1] for r in rows]))
    for got in (by_ids, as_floats, bare):
        np.testing.assert_allclose(got, by_text, atol=1e-5)
    assert_error(_post(configured, model, [101, 999999, 102]), 400, "outside the vocabulary")


def test_o200k_token_ids(configured: httpx.Client) -> None:
    import tiktoken

    o200k = tiktoken.get_encoding("o200k_base")
    texts = ["hello world", "the cat sat on the mat"]
    by_text = _post(configured, DEFAULT_MODEL, texts).json()
    by_ids = _post(configured, DEFAULT_MODEL, [o200k.encode(t) for t in texts]).json()
    np.testing.assert_allclose([d["embedding"] for d in by_ids["data"]],
                               [d["embedding"] for d in by_text["data"]], atol=1e-6)
    assert by_ids["usage"]["prompt_tokens"] == by_text["usage"]["prompt_tokens"]
    err = assert_error(_post(configured, DEFAULT_MODEL, [[199998]]), 400, "not a valid o200k id")
    assert err["metadata"]["token_ids"] == "o200k"
