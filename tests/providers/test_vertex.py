from __future__ import annotations

from embedrouter.providers.http import HttpClient
from embedrouter.providers.upstream import UpstreamCall
from embedrouter.providers.vertex import VertexAdapter
from tests.providers.common import TEXTS, TOKENS, CommonSuite, assert_rows, failure_of, make
from tests.support.fake_upstreams import API_KEY, FakeUpstreams, Step


class TestCommon(CommonSuite):
    wire = "vertex"
    adapter_cls = VertexAdapter
    model = "text-embedding-005"
    cap = 250


async def test_request_shape(fake: FakeUpstreams, http: HttpClient) -> None:
    adapter = make(VertexAdapter, fake, http, "vertex", auto_truncate=False)
    reply = await adapter.embed(UpstreamCall(inputs=TEXTS, upstream_model="text-embedding-005",
                                             dimensions=4, input_type="document"))
    seen = fake.last
    assert seen.path == ("/v1/projects/fake-project/locations/us-central1/publishers/google/"
                         "models/text-embedding-005:predict")
    assert seen.headers["authorization"] == f"Bearer {API_KEY}"
    assert seen.json == {"instances": [{"content": t, "task_type": "RETRIEVAL_DOCUMENT"}
                                       for t in TEXTS],
                         "parameters": {"outputDimensionality": 4, "autoTruncate": False}}
    assert_rows(reply, TEXTS, 4)
    assert reply.prompt_tokens == TOKENS  # statistics.token_count, summed


async def test_minimal_body(fake: FakeUpstreams, http: HttpClient) -> None:
    await make(VertexAdapter, fake, http, "vertex").embed(
        UpstreamCall(inputs=["x"], upstream_model="text-embedding-005"))
    assert fake.last.json == {"instances": [{"content": "x"}]}


async def test_one_item_without_token_count_means_no_usage(fake: FakeUpstreams,
                                                           http: HttpClient) -> None:
    values = {"values": [0.5, 0.5], "statistics": {"truncated": False, "token_count": 3}}
    fake.script(Step.reply(200, {"predictions": [
        {"embeddings": values}, {"embeddings": {"values": [0.5, 0.5]}}]}))
    reply = await make(VertexAdapter, fake, http, "vertex").embed(
        UpstreamCall(inputs=["a", "b"], upstream_model="m"))
    assert reply.prompt_tokens is None and reply.vectors.shape == (2, 2)


async def test_quota_429_with_retry_info(fake: FakeUpstreams, http: HttpClient) -> None:
    fake.script(Step.error("rate_limited", retry=3))
    exc = await failure_of(make(VertexAdapter, fake, http, "vertex"),
                           UpstreamCall(inputs=["x"], upstream_model="m"))
    assert (exc.kind, exc.code, exc.retry_after) == ("rate_limited", "RESOURCE_EXHAUSTED", 3.0)


async def test_unauthenticated(fake: FakeUpstreams, http: HttpClient) -> None:
    exc = await failure_of(make(VertexAdapter, fake, http, "vertex", key="ya29.expired-token"),
                           UpstreamCall(inputs=["x"], upstream_model="m"))
    assert (exc.kind, exc.status, exc.code) == ("auth", 401, "UNAUTHENTICATED")
    assert "ya29.expired-token" not in (exc.raw or "") + exc.message
