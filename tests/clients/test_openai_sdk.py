"""The real `openai` SDK, unchanged, against a real server."""

from __future__ import annotations

import numpy as np
import openai
import pytest

from tests.api.conftest import DEFAULT_MODEL, golden
from tests.support.live import LiveServer

pytestmark = pytest.mark.slow


@pytest.fixture
def oai(live_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live_server.base_url, api_key=live_server.api_key,
                         max_retries=0)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_default_base64_path_decodes_to_golden(oai: openai.OpenAI) -> None:
    rows = golden()
    res = oai.embeddings.create(model=DEFAULT_MODEL, input=[r["input"] for r in rows])
    got = np.asarray([d.embedding for d in res.data], np.float32)
    assert [d.index for d in res.data] == list(range(len(rows)))
    assert cosine(got, np.asarray([r["embedding"] for r in rows], np.float32)).min() >= 0.9999
    assert res.usage.prompt_tokens == sum(r["tokens_with_special"] for r in rows)
    assert res.model == "sentence-transformers/all-MiniLM-L6-v2"


def test_explicit_float_equals_base64(oai: openai.OpenAI) -> None:
    texts = ["alpha", "beta gamma", "a third and longer sentence"]
    b64 = oai.embeddings.create(model=DEFAULT_MODEL, input=texts)
    flt = oai.embeddings.create(model=DEFAULT_MODEL, input=texts, encoding_format="float")
    assert isinstance(flt.data[0].embedding, list)
    np.testing.assert_allclose([d.embedding for d in b64.data],
                               [d.embedding for d in flt.data], atol=1e-7)
    raw = oai.embeddings.create(model=DEFAULT_MODEL, input=texts, encoding_format="base64")
    assert isinstance(raw.data[0].embedding, str)  # explicit base64: the SDK leaves it alone


def test_token_ids_and_extra_body(oai: openai.OpenAI, cl100k) -> None:  # type: ignore[no-untyped-def]
    row = golden()[0]
    by_ids = oai.embeddings.create(model=DEFAULT_MODEL, input=[cl100k.encode(row["input"])])
    by_text = oai.embeddings.create(model=DEFAULT_MODEL, input=row["input"],
                                    extra_body={"input_type": "search_query",
                                                "provider": {"allow_fallbacks": True}})
    np.testing.assert_allclose(by_ids.data[0].embedding, by_text.data[0].embedding, atol=1e-5)


def test_errors_map_to_the_sdk_classes(live_server: LiveServer, oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        oai.embeddings.create(model=DEFAULT_MODEL, input=[])
    assert bad.value.status_code == 400
    assert str(bad.value.code) == "400"  # openai 3.x keeps error.code, as a string
    assert "Input must not be empty" in bad.value.message
    with pytest.raises(openai.BadRequestError):
        oai.embeddings.create(model="nobody/nothing", input="x")
    wrong = openai.OpenAI(base_url=live_server.base_url, api_key="sk-er-v1-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as auth:
        wrong.embeddings.create(model=DEFAULT_MODEL, input="x")
    assert auth.value.status_code == 401


async def test_async_client(live_server: LiveServer) -> None:
    async with openai.AsyncOpenAI(base_url=live_server.base_url,
                                  api_key=live_server.api_key) as client:
        res = await client.embeddings.create(model=DEFAULT_MODEL, input=["x", "y"])
    assert len(res.data) == 2 and len(res.data[1].embedding) == 384
