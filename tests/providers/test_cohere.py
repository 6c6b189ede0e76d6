from __future__ import annotations

import pytest

from embedrouter.providers.cohere import CohereAdapter
from embedrouter.providers.http import HttpClient
from embedrouter.providers.upstream import UpstreamCall
from tests.providers.common import TEXTS, TOKENS, CommonSuite, assert_rows, failure_of, make
from tests.support.fake_upstreams import API_KEY, FakeUpstreams, Step


class TestCommon(CommonSuite):
    wire = "cohere"
    adapter_cls = CohereAdapter
    model = "embed-v4.0"
    retry_hint = None  # Cohere documents no rate-limit hint
    cap = 96


async def test_request_shape(fake: FakeUpstreams, http: HttpClient) -> None:
    reply = await make(CohereAdapter, fake, http, "cohere").embed(
        UpstreamCall(inputs=TEXTS, upstream_model="embed-v4.0", dimensions=4))
    seen = fake.last
    assert seen.path == "/v2/embed"
    assert seen.headers["authorization"] == f"Bearer {API_KEY}"
    # No input_type from the caller: v2 requires one, so search_document.
    assert seen.json == {"model": "embed-v4.0", "texts": TEXTS, "input_type": "search_document",
                         "embedding_types": ["float"], "output_dimension": 4}
    assert_rows(reply, TEXTS, 4)
    assert reply.prompt_tokens == TOKENS  # meta.billed_units.input_tokens


@pytest.mark.parametrize(("given", "sent"), [("query", "search_query"),
                                             ("retrieval.passage", "search_document"),
                                             ("classification", "classification"),
                                             ("clustering", "clustering")])
async def test_input_type_mapping(fake: FakeUpstreams, http: HttpClient, given: str,
                                  sent: str) -> None:
    await make(CohereAdapter, fake, http, "cohere").embed(
        UpstreamCall(inputs=["x"], upstream_model="embed-v4.0", input_type=given))
    assert fake.last.json["input_type"] == sent


async def test_base64_option(fake: FakeUpstreams, http: HttpClient) -> None:
    adapter = make(CohereAdapter, fake, http, "cohere", base64=True)
    reply = await adapter.embed(UpstreamCall(inputs=TEXTS, upstream_model="embed-v4.0"))
    assert fake.last.json["embedding_types"] == ["base64"]
    assert_rows(reply, TEXTS, fake.default_dim)
    fake.script(Step.ok("bad_base64"))
    exc = await failure_of(adapter, UpstreamCall(inputs=TEXTS, upstream_model="embed-v4.0"))
    assert exc.kind == "invalid_reply"


async def test_unknown_intent_reaches_cohere_and_its_400(fake: FakeUpstreams,
                                                         http: HttpClient) -> None:
    exc = await failure_of(make(CohereAdapter, fake, http, "cohere"),
                           UpstreamCall(inputs=["x"], upstream_model="embed-v4.0",
                                        input_type="similarity"))
    assert fake.last.json["input_type"] == "similarity"
    assert (exc.kind, exc.status) == ("bad_request", 400)
    assert "input_type" in exc.message


@pytest.mark.parametrize(("status", "kind"), [(498, "auth"), (499, "unavailable"),
                                              (422, "bad_request"), (504, "timeout")])
async def test_cohere_statuses(fake: FakeUpstreams, http: HttpClient, status: int,
                               kind: str) -> None:
    fake.script(Step.reply(status, {"id": "r", "message": "reason"}))
    exc = await failure_of(make(CohereAdapter, fake, http, "cohere"),
                           UpstreamCall(inputs=["x"], upstream_model="embed-v4.0"))
    assert (exc.kind, exc.message) == (kind, "reason")


async def test_token_ids_refused_before_sending(fake: FakeUpstreams, http: HttpClient
                                               ) -> None:
    exc = await failure_of(make(CohereAdapter, fake, http, "cohere"),
                           UpstreamCall(inputs=[[1, 2, 3]], upstream_model="embed-v4.0"))
    assert exc.kind == "bad_request" and fake.seen == []
