"""POST /embeddings and friends over real HTTP against a real `embedrouter serve`."""

from __future__ import annotations

import base64
import re

import httpx
import numpy as np
import pytest

from tests.api.conftest import DEFAULT_MODEL, golden
from tests.support.live import LiveServer


def embed(client: httpx.Client, **body) -> httpx.Response:  # type: ignore[no-untyped-def]
    return client.post("/embeddings", json={"model": DEFAULT_MODEL, **body})


def vectors(resp: httpx.Response) -> np.ndarray:
    assert resp.status_code == 200, resp.text
    rows = []
    for i, item in enumerate(resp.json()["data"]):
        assert item["index"] == i and item["object"] == "embedding"
        e = item["embedding"]
        rows.append(np.frombuffer(base64.b64decode(e), "<f4") if isinstance(e, str)
                    else np.asarray(e, np.float32))
    return np.vstack(rows)


def assert_error(resp: httpx.Response, status: int, fragment: str = "") -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["error"]["code"] == status
    assert isinstance(body["error"]["message"], str)
    assert fragment in body["error"]["message"]
    assert "Traceback" not in resp.text
    return body["error"]


def test_golden_vectors_over_http(client: httpx.Client) -> None:
    rows = golden()
    resp = embed(client, input=[r["input"] for r in rows])
    got = vectors(resp)
    want = np.asarray([r["embedding"] for r in rows], np.float32)
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= 0.9999
    usage = resp.json()["usage"]
    assert usage["prompt_tokens"] == sum(r["tokens_with_special"] for r in rows)
    assert usage["total_tokens"] == usage["prompt_tokens"]


def test_response_shape(client: httpx.Client) -> None:
    resp = embed(client, input="hello")
    body = resp.json()
    assert body["object"] == "list"
    assert body["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert body["provider"] == "Local"
    assert re.fullmatch(r"gen-emb-\d{10}-[A-Za-z0-9]{20}", body["id"])
    usage = body["usage"]
    # The vector cache is on by default; "hello" may already be cached by another test.
    assert usage.pop("prompt_tokens_details") in ({"cached_tokens": 0}, {"cached_tokens": 3})
    assert usage == {"prompt_tokens": 3, "total_tokens": 3, "cost": 0, "is_byok": False}
    assert len(body["data"][0]["embedding"]) == 384
    assert resp.headers["x-generation-id"] == body["id"]


def test_base64_is_little_endian_float32_of_the_float_answer(client: httpx.Client) -> None:
    texts = ["one", "two words", "a somewhat longer third input"]
    as_float = vectors(embed(client, input=texts, encoding_format="float"))
    resp = embed(client, input=texts, encoding_format="base64")
    raw = resp.json()["data"][1]["embedding"]
    assert isinstance(raw, str) and len(base64.b64decode(raw)) == 384 * 4
    np.testing.assert_array_equal(vectors(resp), as_float)


def test_cl100k_token_ids_match_text(client: httpx.Client, cl100k) -> None:  # type: ignore[no-untyped-def]
    # The default model reads token ids as cl100k (what LangChain and other tiktoken clients
    # send): decoded to text, then tokenized with the model's own WordPiece.
    rows = golden()[:5]
    texts = [r["input"] for r in rows]
    by_text = embed(client, input=texts).json()
    ids = [cl100k.encode(t) for t in texts]
    by_ids = embed(client, input=ids).json()
    as_floats = embed(client, input=[[float(t) for t in x] for x in ids]).json()
    single = embed(client, input=ids[0]).json()
    want = np.array([d["embedding"] for d in by_text["data"]])
    by_text["usage"].pop("prompt_tokens_details")
    for got in (by_ids, as_floats):
        np.testing.assert_allclose([d["embedding"] for d in got["data"]], want, atol=1e-6)
        # Usage counts the model's own tokens after re-tokenizing, not the cl100k ids.
        details = got["usage"].pop("prompt_tokens_details")
        assert got["usage"] == by_text["usage"]
        # The ids decode to the texts just embedded: the vector cache serves them all.
        assert details == {"cached_tokens": got["usage"]["prompt_tokens"]}
    np.testing.assert_allclose(single["data"][0]["embedding"], want[0], atol=1e-6)


def test_cl100k_ids_that_wordpiece_would_misread(client: httpx.Client, cl100k) -> None:  # type: ignore[no-untyped-def]
    # Every cl100k id of these is below the WordPiece vocabulary size (30522): read natively they
    # gave a 200 with a vector at cosine 0.17 and 0.06 to the right one.
    for text in ("hello world", "the cat sat on the mat"):
        ids = cl100k.encode(text)
        assert max(ids) < 30522
        got = vectors(embed(client, input=ids))[0]
        want = vectors(embed(client, input=text))[0]
        assert float(got @ want) >= 0.9999


def test_multimodal_text_parts_embed_as_text(client: httpx.Client) -> None:
    plain = vectors(embed(client, input=["a cat on a mat"]))
    parts = vectors(embed(client, input=[{"content": [{"type": "text",
                                                        "text": "a cat on a mat"}]}]))
    np.testing.assert_allclose(parts, plain, atol=1e-5)


@pytest.mark.parametrize("part", [
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    {"type": "input_audio", "input_audio": {"data": "data:audio/wav;base64,UklG", "format": "wav"}},
    {"type": "input_video", "input_video": {"data": "data:video/mp4;base64,AAAA"}},
    {"type": "input_file", "input_file": {"data": "data:application/pdf;base64,JVBE"}},
])
def test_media_parts_to_a_text_model_are_refused(client: httpx.Client, part: dict) -> None:
    resp = embed(client, input=[{"content": [{"type": "text", "text": "x"}, part]}])
    assert_error(resp, 400, "Unsupported input component type")


def test_order_is_kept_for_mixed_lengths(client: httpx.Client) -> None:
    texts = [("word " * n).strip() for n in (50, 1, 20, 3, 120, 7)]
    together = vectors(embed(client, input=texts))
    for i, t in enumerate(texts):
        alone = vectors(embed(client, input=t))[0]
        assert float(alone @ together[i]) >= 0.9999


# --- errors --------------------------------------------------------------------------------


def test_unknown_route_and_wrong_method(client: httpx.Client) -> None:
    assert_error(client.get("/nope"), 404)
    assert_error(client.get("/embeddings/models/extra"), 404)
    err = client.get("/embeddings")
    assert_error(err, 405)
    assert err.headers["allow"] == "POST"
    assert_error(client.delete("/embeddings/models"), 405)


def test_auth(live_server: LiveServer, client: httpx.Client) -> None:
    url = f"{live_server.base_url}/embeddings"
    body = {"model": DEFAULT_MODEL, "input": "x"}
    assert_error(httpx.post(url, json=body), 401)
    assert_error(httpx.post(url, json=body, headers={"authorization": "Bearer sk-er-v1-00"}), 401)
    assert_error(httpx.post(url, json=body, headers={"authorization": "Basic abc"}), 401)
    mgmt = httpx.post(url, json=body,
                      headers={"authorization": f"Bearer {live_server.management_key}"})
    assert_error(mgmt, 403, "Management keys")
    # Health and model listings need no key, as on OpenRouter.
    assert httpx.get(f"{live_server.root}/health").json() == {"status": "ok"}
    assert httpx.get(f"{live_server.base_url}/embeddings/models").status_code == 200


def test_disabled_key_is_refused_by_the_running_server(live_server: LiveServer) -> None:
    from tests.api.conftest import cli

    made = cli(live_server.data_dir, "keys", "create", "--label", "temp")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert re.fullmatch(r"sk-er-v1-[0-9a-f]{64}", key)
    url = f"{live_server.base_url}/embeddings"
    body = {"model": DEFAULT_MODEL, "input": "x"}
    auth = {"authorization": f"Bearer {key}"}
    assert httpx.post(url, json=body, headers=auth).status_code == 200
    off = cli(live_server.data_dir, "keys", "disable", key)
    assert off.returncode == 0, off.stderr
    assert key not in off.stdout
    assert_error(httpx.post(url, json=body, headers=auth), 401)
    listed = cli(live_server.data_dir, "keys", "list")
    assert "temp" in listed.stdout and "disabled" in listed.stdout and key not in listed.stdout


@pytest.mark.parametrize(("content", "fragment"), [
    (b"{not json", "Malformed JSON"),
    (b"", "Malformed JSON"),
    (b"[1, 2]", "body: expected a JSON object"),
    (b'{"model": "sentence-transformers/all-minilm-l6-v2"}', "input: required"),
    (b'{"input": "x"}', "model: required"),
    (b'{"model": 5, "input": "x"}', "model: expected a non-empty string"),
    (b'{"model": "sentence-transformers/all-minilm-l6-v2", "input": ["a", 3]}', "input[1]:"),
    (b'{"model": "sentence-transformers/all-minilm-l6-v2", "input": "x", "provider": {"x": 1}}',
     "provider.x: unknown field"),
])
def test_bad_bodies(client: httpx.Client, content: bytes, fragment: str) -> None:
    resp = client.post("/embeddings", content=content,
                       headers={"content-type": "application/json"})
    assert_error(resp, 400, fragment)


@pytest.mark.parametrize("value", ["", [], [[]], [{"content": []}]])
def test_empty_input(client: httpx.Client, value: object) -> None:
    assert_error(embed(client, input=value), 400, "Input must not be empty")


def test_unknown_model(client: httpx.Client) -> None:
    err = assert_error(embed(client, model="nobody/nothing", input="x"), 400, "nobody/nothing")
    assert err["metadata"]["availability"]["code"] == "model_not_found"


def test_input_longer_than_context(client: httpx.Client) -> None:
    long = "word " * 300
    err = assert_error(embed(client, input=["short", long]), 400, "input[1] has 302 tokens")
    assert err["metadata"]["tokens"] == 302
    assert err["metadata"]["limit"] == 256
    assert "302" in err["message"] and "256" in err["message"]


@pytest.mark.parametrize(("ids", "bad", "index"), [
    ([101, 999999, 102], 999999, 0), ([[15339], [15339, 100256]], 100256, 1),
    ([[15339], [100262]], 100262, 1), ([[100277]], 100277, 0),
])
def test_invalid_cl100k_id(client: httpx.Client, ids: list, bad: int, index: int) -> None:
    err = assert_error(embed(client, input=ids), 400, f"token id {bad} is not a valid cl100k id")
    assert f"input[{index}]" in err["message"] and "token_ids" in err["message"]
    assert err["metadata"]["token_id"] == bad and err["metadata"]["token_ids"] == "cl100k"


def test_dimensions_on_a_model_without_matryoshka(client: httpx.Client) -> None:
    assert_error(embed(client, input="x", dimensions=128), 400, DEFAULT_MODEL)
    assert_error(embed(client, input="x", dimensions=385), 400, "384")
    assert vectors(embed(client, input="x", dimensions=384)).shape == (1, 384)


def test_input_type_is_ignored_by_a_model_without_prefixes(client: httpx.Client) -> None:
    a = vectors(embed(client, input="hello", input_type="search_query"))
    b = vectors(embed(client, input="hello"))
    np.testing.assert_array_equal(a, b)


# --- listings ------------------------------------------------------------------------------


def test_embedding_models_listing(client: httpx.Client) -> None:
    body = client.get("/embeddings/models", params={"offset": 0, "limit": 500}).json()
    assert body["total_count"] == 1 and body["links"]["next"] is None
    model = body["data"][0]
    assert model["id"] == DEFAULT_MODEL
    assert model["architecture"]["output_modalities"] == ["embeddings"]
    assert model["context_length"] == 256
    assert model["pricing"]["prompt"] == "0"


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"offset": -1},
                                    {"limit": "ten"}, {"limit": "null"}, {"limit": ""}])
def test_listing_bounds(client: httpx.Client, params: dict) -> None:
    assert_error(client.get("/embeddings/models", params=params), 400)


@pytest.mark.parametrize("path", ["/embeddings/models", "/models", "/keys"])
def test_a_repeated_query_parameter_is_refused_by_name(client: httpx.Client, path: str) -> None:
    # Which of two values counts would be this parser's choice (a proxy in front may read the
    # other), so neither is used.
    r = client.get(f"{path}?limit=5&offset=0&offset=")
    assert_error(r, 400, "offset")
    assert r.json()["error"]["metadata"] == {"field": "offset"}


def test_models_filter_values(client: httpx.Client) -> None:
    assert_error(client.get("/models", params={"output_modalities": ""}), 400)
    assert_error(client.get("/models", params={"output_modalities": "text,video"}), 400, "video")
    both = client.get("/models", params={"output_modalities": "text, embeddings"}).json()
    assert [m["id"] for m in both["data"]] == [DEFAULT_MODEL]
    assert client.get("/embeddings/models", params={"offset": "null"}).status_code == 200


def test_endpoints_route(client: httpx.Client) -> None:
    body = client.get(f"/models/{DEFAULT_MODEL}/endpoints").json()["data"]
    assert body["id"] == DEFAULT_MODEL
    assert body["endpoints"][0]["context_length"] == 256
    assert_error(client.get("/models/nobody/nothing/endpoints"), 404)


def test_openapi_describes_every_route(live_server: LiveServer) -> None:
    doc = httpx.get(f"{live_server.root}/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert {"/embeddings", "/embeddings/models", "/models", "/models/{author}/{slug}/endpoints",
            "/health"} <= set(doc["paths"])


def _gauge(text: str, name: str) -> float:
    line = next(x for x in text.splitlines()
                if x.startswith(f"embedrouter_batcher_{name}{{") and DEFAULT_MODEL in x)
    return float(line.rsplit(" ", 1)[1])


async def test_disconnected_client_costs_no_inference(live_server: LiveServer) -> None:
    """A request whose caller hung up while it waited in the queue is dropped before compute."""
    import asyncio

    # no-store: repeated inputs would otherwise be computed once (the vector cache dedupes).
    headers = {"authorization": f"Bearer {live_server.api_key}", "cache-control": "no-store"}
    busy = {"model": DEFAULT_MODEL, "input": ["a fairly long sentence about batching " * 6] * 96}
    doomed = {"model": DEFAULT_MODEL, "input": ["another sentence that will never run " * 6] * 8}
    before = _gauge(httpx.get(f"{live_server.root}/metrics").text, "dropped_cancelled")
    async with httpx.AsyncClient(base_url=live_server.base_url, headers=headers,
                                 timeout=60) as c:
        first = asyncio.ensure_future(c.post("/embeddings", json=busy))
        # The doomed request must queue behind the busy one: wait until the busy one is in the
        # batcher (a fixed head start was not enough on a loaded machine, where the smaller
        # doomed request could overtake it in tokenization and run first).
        async with httpx.AsyncClient() as probe:
            for _ in range(200):
                text = (await probe.get(f"{live_server.root}/metrics")).text
                if _gauge(text, "inflight_batches") + _gauge(text, "queue_items") > 0:
                    break
                await asyncio.sleep(0.02)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(c.post("/embeddings", json=doomed), timeout=0.15)
        assert (await first).status_code == 200
    await asyncio.sleep(0.3)
    metrics = httpx.get(f"{live_server.root}/metrics").text
    assert _gauge(metrics, "dropped_cancelled") >= before + 8
    assert 'embedrouter_requests_total{route="/api/v1/embeddings",status="200"}' in metrics
