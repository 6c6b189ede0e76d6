"""The real `openrouter` Python SDK, unchanged, against a real server."""

from __future__ import annotations

import numpy as np
import pytest
from openrouter import OpenRouter, errors

from tests.api.conftest import DEFAULT_MODEL, golden
from tests.support.live import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture
def orc(live_server: LiveServer) -> OpenRouter:
    return OpenRouter(api_key=live_server.api_key, server_url=live_server.base_url)


def test_generate_text_and_usage(orc: OpenRouter) -> None:
    rows = golden()[:8]
    res = orc.embeddings.generate(model=DEFAULT_MODEL, input=[r["input"] for r in rows])
    got = np.asarray([d.embedding for d in res.data], np.float32)
    want = np.asarray([r["embedding"] for r in rows], np.float32)
    assert ((got * want).sum(1) / np.linalg.norm(want, axis=1)).min() >= 0.9999
    assert res.object == "list"
    assert res.usage is not None
    assert res.usage.prompt_tokens == sum(r["tokens_with_special"] for r in rows)
    assert res.usage.cost == 0
    assert res.id is not None and res.id.startswith("gen-emb-")


def test_generate_token_ids_sent_as_floats(orc: OpenRouter, cl100k) -> None:  # type: ignore[no-untyped-def]
    row = golden()[3]
    ids = cl100k.encode(row["input"])
    one = orc.embeddings.generate(model=DEFAULT_MODEL, input=ids)
    batch = orc.embeddings.generate(model=DEFAULT_MODEL, input=[ids] * 2)
    text = orc.embeddings.generate(model=DEFAULT_MODEL, input=row["input"])
    for res in (one, batch):
        np.testing.assert_allclose(res.data[0].embedding, text.data[0].embedding, atol=1e-5)


def test_generate_base64_stays_a_string(orc: OpenRouter) -> None:
    res = orc.embeddings.generate(model=DEFAULT_MODEL, input="hi", encoding_format="base64",
                                  input_type="search_document", user="u-1", session_id="s-1",
                                  trace={"trace_id": "t-1"}, provider={"order": ["local"]})
    assert isinstance(res.data[0].embedding, str)


async def test_generate_async(orc: OpenRouter) -> None:
    res = await orc.embeddings.generate_async(model=DEFAULT_MODEL, input=["a", "b", "c"])
    assert [d.index for d in res.data] == [0, 1, 2]


def test_list_models(orc: OpenRouter) -> None:
    page = orc.embeddings.list_models()
    assert page is not None
    assert [m.id for m in page.result.data] == [DEFAULT_MODEL]
    assert page.result.total_count == 1
    assert page.next() is None


def test_list_models_pagination(configured_server: LiveServer) -> None:
    client = OpenRouter(api_key=configured_server.api_key, server_url=configured_server.base_url)
    first = client.embeddings.list_models(offset=0, limit=1)
    assert first is not None and len(first.result.data) == 1
    second = first.next()
    assert second is not None
    ids = [first.result.data[0].id, second.result.data[0].id]
    assert ids == [DEFAULT_MODEL, "acme/minilm-mrl"]
    assert second.result.total_count == 2
    third = second.next()
    assert third is None or third.result.data == []


def test_typed_errors(live_server: LiveServer, configured_server: LiveServer,
                      orc: OpenRouter) -> None:
    with pytest.raises(errors.BadRequestResponseError) as bad:
        orc.embeddings.generate(model=DEFAULT_MODEL, input=[])
    assert bad.value.status_code == 400
    assert bad.value.data.error.code == 400
    assert "Input must not be empty" in bad.value.data.error.message

    stranger = OpenRouter(api_key="sk-er-v1-nope", server_url=live_server.base_url)
    with pytest.raises(errors.UnauthorizedResponseError) as unauth:
        stranger.embeddings.generate(model=DEFAULT_MODEL, input="x")
    assert unauth.value.data.error.code == 401

    conf = OpenRouter(api_key=configured_server.api_key, server_url=configured_server.base_url)
    with pytest.raises(errors.NotFoundResponseError) as missing:
        conf.embeddings.generate(model="acme/chat-model", input="x")
    assert missing.value.data.error.code == 404
    with pytest.raises(errors.PayloadTooLargeResponseError) as big:
        conf.embeddings.generate(model=DEFAULT_MODEL, input=["x"] * 9)
    assert big.value.data.error.code == 413
