from __future__ import annotations

import pytest

from embedrouter.providers.gemini import GeminiAdapter
from embedrouter.providers.http import HttpClient
from embedrouter.providers.upstream import UpstreamCall
from tests.providers.common import TEXTS, CommonSuite, assert_rows, failure_of, make
from tests.support.fake_upstreams import API_KEY, FakeUpstreams, Step


class TestCommon(CommonSuite):
    wire = "gemini"
    adapter_cls = GeminiAdapter
    model = "gemini-embedding-001"
    has_usage = False  # batchEmbedContents reports none
    cap = 100


def gemini(fake: FakeUpstreams, http: HttpClient, **options: object) -> GeminiAdapter:
    return make(GeminiAdapter, fake, http, "gemini", **options)


async def test_request_shape(fake: FakeUpstreams, http: HttpClient) -> None:
    reply = await gemini(fake, http).embed(UpstreamCall(
        inputs=TEXTS[:2], upstream_model="models/gemini-embedding-001", dimensions=4,
        input_type="search_query"))
    seen = fake.last
    assert seen.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert seen.headers["x-goog-api-key"] == API_KEY and "authorization" not in seen.headers
    assert seen.json == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": t}]},
         "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 4} for t in TEXTS[:2]]}
    assert_rows(reply, TEXTS[:2], 4)
    assert reply.prompt_tokens is None


@pytest.mark.parametrize(("given", "sent"), [
    (None, None), ("passage", "RETRIEVAL_DOCUMENT"), ("similarity", "SEMANTIC_SIMILARITY"),
    ("classification", "CLASSIFICATION"), ("code_retrieval_query", "CODE_RETRIEVAL_QUERY")])
async def test_task_types(fake: FakeUpstreams, http: HttpClient, given: str | None,
                          sent: str | None) -> None:
    await gemini(fake, http).embed(UpstreamCall(inputs=["x"], upstream_model="m",
                                                input_type=given))
    assert fake.last.json["requests"][0].get("taskType") == sent


@pytest.mark.parametrize(("delay", "hint"), [("12s", 12.0), ("0.5s", 0.5), ("soon", None)])
async def test_retry_delay_from_the_body(fake: FakeUpstreams, http: HttpClient, delay: str,
                                         hint: float | None) -> None:
    fake.script(Step.reply(429, {"error": {
        "code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                     "retryDelay": delay}]}}))
    exc = await failure_of(gemini(fake, http), UpstreamCall(inputs=["x"], upstream_model="m"))
    assert (exc.kind, exc.code, exc.retry_after) == ("rate_limited", "RESOURCE_EXHAUSTED", hint)


@pytest.mark.parametrize(("status", "rpc", "message", "kind"), [
    (503, "UNAVAILABLE", "The service is currently unavailable.", "unavailable"),
    (503, "UNAVAILABLE", "The model is overloaded. Please try again later.", "overloaded"),
    (500, "INTERNAL", "Internal error encountered.", "unavailable"),
    (504, "DEADLINE_EXCEEDED", "Deadline exceeded.", "timeout"),
    (403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.", "auth"),
    (400, "INVALID_ARGUMENT", "Request contains an invalid argument.", "bad_request"),
    (400, "FAILED_PRECONDITION", "User location is not supported.", "bad_request"),
])
async def test_rpc_statuses(fake: FakeUpstreams, http: HttpClient, status: int, rpc: str,
                            message: str, kind: str) -> None:
    fake.script(Step.reply(status, {"error": {"code": status, "message": message,
                                              "status": rpc}}))
    exc = await failure_of(gemini(fake, http), UpstreamCall(inputs=["x"], upstream_model="m"))
    assert (exc.kind, exc.code, exc.message) == (kind, rpc, message)


async def test_bad_key_is_400_api_key_invalid_mapped_to_auth(fake: FakeUpstreams,
                                                             http: HttpClient) -> None:
    # Google answers a bad key with 400 INVALID_ARGUMENT; only ErrorInfo.reason tells it apart
    # from a bad request, and it must not reach the client as "your request was invalid".
    adapter = make(GeminiAdapter, fake, http, "gemini", key="AIzaWrongKey0123456789abcdefgh")
    exc = await failure_of(adapter, UpstreamCall(inputs=["x"], upstream_model="m"))
    assert (exc.kind, exc.status, exc.code) == ("auth", 400, "INVALID_ARGUMENT")
    assert "AIzaWrongKey" not in (exc.raw or "") + exc.message
