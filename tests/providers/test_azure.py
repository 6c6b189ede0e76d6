from __future__ import annotations

from embedrouter.providers.azure import AzureAdapter
from embedrouter.providers.http import HttpClient
from embedrouter.providers.upstream import UpstreamCall
from tests.providers.common import TEXTS, TOKENS, CommonSuite, assert_rows, failure_of, make
from tests.support.fake_upstreams import API_KEY, FakeUpstreams, Step


class TestCommon(CommonSuite):
    wire = "azure"
    adapter_cls = AzureAdapter
    model = "text-embedding-3-small"
    cap = 2048


async def test_request_shape(fake: FakeUpstreams, http: HttpClient) -> None:
    adapter = make(AzureAdapter, fake, http, "azure", api_version="2024-06-01")
    reply = await adapter.embed(UpstreamCall(inputs=TEXTS, upstream_model="text-embedding-3-large",
                                             dimensions=4))
    seen = fake.last
    assert seen.path == "/openai/deployments/text-embedding-3-large/embeddings"
    assert seen.query == {"api-version": "2024-06-01"}
    assert seen.headers["api-key"] == API_KEY and "authorization" not in seen.headers
    assert seen.json == {"model": "text-embedding-3-large", "input": TEXTS, "dimensions": 4,
                         "encoding_format": "base64"}
    assert_rows(reply, TEXTS, 4)
    assert reply.prompt_tokens == TOKENS


async def test_default_api_version_and_deployment_map(fake: FakeUpstreams,
                                                      http: HttpClient) -> None:
    adapter = make(AzureAdapter, fake, http, "azure",
                   deployments={"text-embedding-3-small": "prod-small"})
    await adapter.embed(UpstreamCall(inputs=["x"], upstream_model="text-embedding-3-small"))
    assert fake.last.path == "/openai/deployments/prod-small/embeddings"
    assert fake.last.query == {"api-version": "2024-10-21"}


async def test_entra_bearer(fake: FakeUpstreams, http: HttpClient) -> None:
    adapter = make(AzureAdapter, fake, http, "azure", auth="bearer")
    exc = await failure_of(adapter, UpstreamCall(inputs=["x"], upstream_model="m"))
    # The fake (like a key-only resource) wants `api-key`; what matters is what was sent.
    assert fake.last.headers["authorization"] == f"Bearer {API_KEY}"
    assert "api-key" not in fake.last.headers
    assert exc.kind == "auth" and API_KEY not in (exc.raw or "") + exc.message


async def test_429_prefers_retry_after_ms(fake: FakeUpstreams, http: HttpClient) -> None:
    fake.script(Step.reply(429, {"error": {"code": "429", "message": "exceeded call rate"}},
                           **{"retry-after": "2", "retry-after-ms": "1500"}))
    exc = await failure_of(make(AzureAdapter, fake, http, "azure"),
                           UpstreamCall(inputs=["x"], upstream_model="m"))
    assert (exc.kind, exc.retry_after, exc.code) == ("rate_limited", 1.5, "429")
