"""The SDK against a real `embedrouter serve`: generate, numpy, pagination, embed_many."""

from __future__ import annotations

import uuid

import httpx
import numpy as np
import pytest

from embedrouter.sdk import EmbedRouter, EmbedRouterCore, embeddings_generate, errors, to_numpy
from tests.api.conftest import DEFAULT_MODEL, golden
from tests.support.live import LiveServer


@pytest.fixture
def client(live_server: LiveServer) -> EmbedRouter:
    return EmbedRouter(api_key=live_server.api_key, server_url=live_server.base_url)


def test_generate_matches_golden(client: EmbedRouter) -> None:
    rows = golden()[:6]
    res = client.embeddings.generate(input=[r["input"] for r in rows], model=DEFAULT_MODEL)
    got = res.to_numpy()
    want = np.asarray([r["embedding"] for r in rows], np.float32)
    assert got.dtype == np.float32 and got.shape == (6, 384)
    assert ((got * want).sum(1) / np.linalg.norm(want, axis=1)).min() >= 0.9999
    assert res.usage is not None and res.usage.prompt_tokens == sum(
        r["tokens_with_special"] for r in rows)
    assert res.provider == "Local" and res.id is not None


def test_to_numpy_is_identical_for_float_and_base64(client: EmbedRouter) -> None:
    texts = ["first", "second sentence", "the third, longest one of all"]
    flt = client.embeddings.generate(input=texts, model=DEFAULT_MODEL, encoding_format="float")
    b64 = client.embeddings.generate(input=texts, model=DEFAULT_MODEL,
                                     encoding_format="base64")
    assert isinstance(b64.data[0].embedding, str)
    assert isinstance(flt.data[0].embedding, list)
    np.testing.assert_array_equal(flt.to_numpy(), b64.to_numpy())
    both = to_numpy([flt, b64])
    assert both.shape == (6, 384)
    np.testing.assert_array_equal(both[:3], both[3:])


def test_usage_shows_the_cached_tokens(client: EmbedRouter) -> None:
    texts = [f"cached tokens {uuid.uuid4()}", f"and a second sentence {uuid.uuid4()}"]
    first = client.embeddings.generate(input=texts, model=DEFAULT_MODEL)
    again = client.embeddings.generate(input=texts, model=DEFAULT_MODEL)
    bypass = client.embeddings.generate(input=texts, model=DEFAULT_MODEL,
                                        http_headers={"Cache-Control": "no-store"})
    assert first.usage is not None and again.usage is not None and bypass.usage is not None
    details = again.usage.prompt_tokens_details
    assert details is not None and details.cached_tokens == again.usage.prompt_tokens > 0
    assert first.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert bypass.usage.prompt_tokens_details is None  # the cache was not used at all
    assert again.model_dump()["usage"]["prompt_tokens_details"] == {
        "cached_tokens": again.usage.prompt_tokens}


def test_typed_errors_from_the_real_server(client: EmbedRouter,
                                           live_server: LiveServer) -> None:
    with pytest.raises(errors.BadRequestResponseError) as bad:
        client.embeddings.generate(input=[], model=DEFAULT_MODEL)
    assert bad.value.data.error.message == "Input must not be empty"
    stranger = EmbedRouter(api_key="sk-er-v1-0", server_url=live_server.base_url)
    with pytest.raises(errors.UnauthorizedResponseError):
        stranger.embeddings.generate(input="x", model=DEFAULT_MODEL)
    res = embeddings_generate(EmbedRouterCore(api_key="sk-er-v1-0",
                                              server_url=live_server.base_url),
                              {"input": "x", "model": DEFAULT_MODEL})
    assert not res.ok and res.error.status_code == 401  # type: ignore[union-attr]


def test_pagination(configured_server: LiveServer) -> None:
    client = EmbedRouter(api_key=configured_server.api_key,
                         server_url=configured_server.base_url)
    first = client.embeddings.list_models(limit=1)
    pages = list(first)
    assert [p.result.data[0].id for p in pages if p.result.data] == [
        DEFAULT_MODEL, "acme/minilm-mrl"]
    assert first.result.total_count == 2


async def test_async_paths(configured_server: LiveServer) -> None:
    async with EmbedRouter(api_key=configured_server.api_key,
                           server_url=configured_server.base_url) as client:
        res = await client.embeddings.generate_async(input=["a", "b"], model=DEFAULT_MODEL,
                                                     dimensions=384)
        assert res.to_numpy().shape == (2, 384)
        first = await client.embeddings.list_models_async(limit=1)
        ids = [p.result.data[0].id async for p in first if p.result.data]
        assert ids == [DEFAULT_MODEL, "acme/minilm-mrl"]


def test_embed_many_keeps_order_and_reports_progress(client: EmbedRouter,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    texts = [f"sentence number {i} about {'x' * (i % 7)}" for i in range(203)]
    arr = client.embed_many(texts, DEFAULT_MODEL, batch_size=16, concurrency=3, progress=True)
    assert arr.shape == (203, 384) and arr.dtype == np.float32
    direct = client.embeddings.generate(input=texts[:20] + texts[-5:], model=DEFAULT_MODEL)
    np.testing.assert_allclose(arr[np.r_[0:20, 198:203]], direct.to_numpy(), atol=1e-5)
    err = capsys.readouterr().err
    assert "203/203" in err  # tqdm's bar (or the fallback line) reached the end


async def test_embed_many_async_matches_sync(client: EmbedRouter) -> None:
    texts = [f"t{i} " * (1 + i % 9) for i in range(90)]
    sync = client.embed_many(texts, DEFAULT_MODEL, batch_size=7, concurrency=2)
    asyn = await client.embed_many_async(texts, DEFAULT_MODEL, batch_size=11, concurrency=4)
    np.testing.assert_allclose(sync, asyn, atol=1e-5)


def test_embed_many_fails_loudly(client: EmbedRouter) -> None:
    with pytest.raises(errors.BadRequestResponseError):
        client.embed_many(["ok", "also ok", "word " * 400], DEFAULT_MODEL, batch_size=1)


async def test_embed_many_async_under_a_full_queue(configured_server: LiveServer) -> None:
    """The configured server queues only 24 inputs: 429s are waited out, nothing is lost."""
    client = EmbedRouter(api_key=configured_server.api_key,
                         server_url=configured_server.base_url)
    texts = [f"queue pressure sentence {i} " * 4 for i in range(96)]
    before = _refused(configured_server)
    arr = await client.embed_many_async(texts, DEFAULT_MODEL, batch_size=8, concurrency=12)
    assert arr.shape == (96, 384)
    assert np.isfinite(arr).all() and np.allclose(np.linalg.norm(arr, axis=1), 1, atol=1e-5)
    assert _refused(configured_server) > before  # the server did push back, and we recovered
    expected = client.embeddings.generate(input=texts[40:48], model=DEFAULT_MODEL).to_numpy()
    np.testing.assert_allclose(arr[40:48], expected, atol=1e-5)


def _refused(server: LiveServer) -> int:
    text = httpx.get(f"{server.root}/metrics").text
    key = 'embedrouter_requests_total{route="/api/v1/embeddings",status="429"} '
    line = next((x for x in text.splitlines() if x.startswith(key)), None)
    return int(float(line.rsplit(" ", 1)[1])) if line else 0  # exposition floats: 9.0


def _app_code(client_cls, errors_mod, base_url: str, key: str) -> dict:  # type: ignore[no-untyped-def]
    """Application code written once; only the imports differ between the two SDKs."""
    out: dict = {}
    with client_cls(api_key=key, server_url=base_url) as client:
        res = client.embeddings.generate(input=["hello", "world"], model=DEFAULT_MODEL,
                                         encoding_format="float", input_type="search_query")
        out["vectors"] = [d.embedding for d in res.data]
        out["tokens"] = res.usage.prompt_tokens
        page = client.embeddings.list_models(offset=0, limit=500)
        out["models"] = [m.id for m in page.result.data]
        try:
            client.embeddings.generate(input=[], model=DEFAULT_MODEL)
        except errors_mod.BadRequestResponseError as exc:
            out["error"] = (exc.status_code, exc.data.error.code, exc.data.error.message)
    return out


def test_code_for_the_official_sdk_ports_by_changing_the_import(live_server: LiveServer) -> None:
    import openrouter
    from openrouter import errors as official_errors

    from embedrouter import EmbedRouter as Ours
    from embedrouter.sdk import errors as our_errors

    theirs = _app_code(openrouter.OpenRouter, official_errors, live_server.base_url,
                       live_server.api_key)
    ours = _app_code(Ours, our_errors, live_server.base_url, live_server.api_key)
    np.testing.assert_allclose(ours["vectors"], theirs["vectors"], atol=1e-7)
    assert ours["tokens"] == theirs["tokens"] == 6
    assert ours["models"] == theirs["models"] == [DEFAULT_MODEL]
    assert ours["error"] == theirs["error"] == (400, 400, "Input must not be empty")
