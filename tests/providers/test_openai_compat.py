from __future__ import annotations

import pytest

from embedrouter.providers.http import HttpClient
from embedrouter.providers.openai_compat import OpenAICompatAdapter
from embedrouter.providers.upstream import UpstreamCall
from tests.providers.common import TEXTS, TOKENS, CommonSuite, assert_rows, failure_of, make
from tests.support.fake_upstreams import API_KEY, FakeUpstreams, Step


class TestCommon(CommonSuite):
    wire = "openai"
    adapter_cls = OpenAICompatAdapter
    cap = 2048


def openai(fake: FakeUpstreams, http: HttpClient, **options: object) -> OpenAICompatAdapter:
    return make(OpenAICompatAdapter, fake, http, "openai", **options)


async def test_request_shape_and_base64_rows(fake: FakeUpstreams, http: HttpClient) -> None:
    reply = await openai(fake, http).embed(
        UpstreamCall(inputs=TEXTS, upstream_model="text-embedding-3-small", dimensions=4))
    seen = fake.last
    assert seen.path == "/v1/embeddings" and seen.query == {}
    assert seen.headers["authorization"] == f"Bearer {API_KEY}"
    assert seen.headers["content-type"] == "application/json"
    assert seen.json == {"model": "text-embedding-3-small", "input": TEXTS, "dimensions": 4,
                         "encoding_format": "base64"}
    assert_rows(reply, TEXTS, 4)
    assert reply.prompt_tokens == TOKENS


async def test_float_rows_when_base64_not_wanted(fake: FakeUpstreams, http: HttpClient
                                                 ) -> None:
    reply = await openai(fake, http, base64=False).embed(
        UpstreamCall(inputs=TEXTS, upstream_model="m"))
    assert fake.last.json == {"model": "m", "input": TEXTS}
    assert_rows(reply, TEXTS, fake.default_dim)


async def test_out_of_order_index_is_kept(fake: FakeUpstreams, http: HttpClient) -> None:
    fake.script(Step.ok("shuffle"))
    reply = await openai(fake, http).embed(UpstreamCall(inputs=TEXTS, upstream_model="m"))
    assert reply.indices == [2, 1, 0]
    assert_rows(reply, TEXTS, fake.default_dim)


@pytest.mark.parametrize("flaw", ["dup_index", "bad_base64"])
async def test_duplicate_index_or_bad_base64_is_invalid(fake: FakeUpstreams,
                                                        http: HttpClient, flaw: str) -> None:
    fake.script(Step.ok(flaw))
    exc = await failure_of(openai(fake, http), UpstreamCall(inputs=TEXTS, upstream_model="m"))
    assert exc.kind == "invalid_reply"


async def test_retry_after_seconds_header(fake: FakeUpstreams, http: HttpClient) -> None:
    fake.script(Step.reply(429, {"error": {"message": "slow down"}}, **{"retry-after": "7"}))
    exc = await failure_of(openai(fake, http), UpstreamCall(inputs=["x"], upstream_model="m"))
    assert (exc.kind, exc.retry_after, exc.message) == ("rate_limited", 7.0, "slow down")


# -- the providers that stay on this adapter, with the options catalog/builtin.toml gives them --

async def test_mistral_output_dimension(fake: FakeUpstreams, http: HttpClient) -> None:
    adapter = openai(fake, http, dimensions_field="output_dimension")
    reply = await adapter.embed(UpstreamCall(inputs=TEXTS, upstream_model="codestral-embed",
                                             dimensions=4, want_base64=False))
    assert fake.last.json == {"model": "codestral-embed", "input": TEXTS,
                              "output_dimension": 4}
    assert_rows(reply, TEXTS, 4)


async def test_mistral_422_detail_is_bad_request(fake: FakeUpstreams, http: HttpClient
                                                 ) -> None:
    fake.script(Step.reply(422, {"detail": [{"loc": ["body", "input"], "msg": "field required",
                                             "type": "missing"}]}))
    exc = await failure_of(openai(fake, http), UpstreamCall(inputs=["x"], upstream_model="m"))
    assert (exc.kind, exc.status) == ("bad_request", 422)
    assert "field required" in exc.message


@pytest.mark.parametrize(("given", "sent"), [("search_document", "passage"),
                                             ("query", "query"), ("passage", "passage")])
async def test_nim_input_type(fake: FakeUpstreams, http: HttpClient, given: str,
                              sent: str) -> None:
    adapter = openai(fake, http, input_type_field="input_type",
                     input_type_values={"query": "query", "document": "passage"})
    await adapter.embed(UpstreamCall(inputs=["x"], upstream_model="nvidia/nv-embedqa-e5-v5",
                                     input_type=given))
    assert fake.last.json["input_type"] == sent


@pytest.mark.parametrize(("given", "sent"), [
    ("search_query", "retrieval.query"), ("document", "retrieval.passage"),
    ("similarity", "text-matching"), ("clustering", "separation")])
async def test_jina_task(fake: FakeUpstreams, http: HttpClient, given: str, sent: str
                         ) -> None:
    adapter = openai(fake, http, input_type_field="task", base64=False, input_type_values={
        "query": "retrieval.query", "document": "retrieval.passage",
        "similarity": "text-matching", "classification": "classification",
        "clustering": "separation"})
    reply = await adapter.embed(UpstreamCall(inputs=TEXTS, upstream_model="jina-embeddings-v3",
                                             input_type=given))
    assert fake.last.json == {"model": "jina-embeddings-v3", "input": TEXTS, "task": sent}
    assert_rows(reply, TEXTS, fake.default_dim)
