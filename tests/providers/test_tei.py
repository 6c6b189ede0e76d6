from __future__ import annotations

import pytest

from embedrouter.providers.http import HttpClient
from embedrouter.providers.tei import TeiAdapter
from embedrouter.providers.upstream import UpstreamCall
from tests.providers.common import TEXTS, CommonSuite, assert_rows, failure_of, make
from tests.support.fake_upstreams import API_KEY, FakeUpstreams, Step


class TestCommon(CommonSuite):
    wire = "tei"
    adapter_cls = TeiAdapter
    has_usage = False
    retry_hint = None  # TEI's queue-full 429 carries no hint
    cap = 32


async def test_request_shape(fake: FakeUpstreams, http: HttpClient) -> None:
    adapter = make(TeiAdapter, fake, http, "tei", prompt_names={"query": "query"},
                   normalize=True)
    reply = await adapter.embed(UpstreamCall(inputs=TEXTS, upstream_model="bge",
                                             dimensions=4, input_type="search_query"))
    seen = fake.last
    assert seen.path == "/embed"
    assert seen.headers["authorization"] == f"Bearer {API_KEY}"
    assert seen.json == {"inputs": TEXTS, "normalize": True, "dimensions": 4,
                         "prompt_name": "query"}
    assert_rows(reply, TEXTS, 4)


async def test_no_key_no_auth_header_and_unmapped_intent_not_sent(
        fake: FakeUpstreams, http: HttpClient) -> None:
    adapter = make(TeiAdapter, fake, http, "tei", key=None)
    await adapter.embed(UpstreamCall(inputs=["x"], upstream_model="bge",
                                     input_type="document"))
    assert "authorization" not in fake.last.headers
    assert fake.last.json == {"inputs": ["x"]}


async def test_token_ids_go_natively(fake: FakeUpstreams, http: HttpClient) -> None:
    ids = [[101, 2023, 102], [101, 102]]
    reply = await make(TeiAdapter, fake, http, "tei").embed(
        UpstreamCall(inputs=ids, upstream_model="bge"))
    assert fake.last.json == {"inputs": ids}
    assert_rows(reply, ids, fake.default_dim)


@pytest.mark.parametrize(("status", "error_type", "kind"), [
    (429, "Overloaded", "rate_limited"),
    (503, "Unhealthy", "unavailable"),
    (424, "Backend", "unavailable"),
    (422, "Tokenizer", "bad_request"),
    (422, "Validation", "bad_request"),
    (400, "Empty", "bad_request"),
    (413, "Validation", "too_large"),
])
async def test_error_types(fake: FakeUpstreams, http: HttpClient, status: int,
                           error_type: str, kind: str) -> None:
    fake.script(Step.reply(status, {"error": "some reason", "error_type": error_type}))
    exc = await failure_of(make(TeiAdapter, fake, http, "tei"),
                           UpstreamCall(inputs=["x"], upstream_model="bge"))
    assert (exc.kind, exc.status, exc.code, exc.retry_after) == (kind, status, error_type, None)


async def test_reply_that_is_not_a_list_is_invalid(fake: FakeUpstreams, http: HttpClient
                                                   ) -> None:
    fake.script(Step.reply(200, {"embeddings": [[0.1]]}))
    exc = await failure_of(make(TeiAdapter, fake, http, "tei"),
                           UpstreamCall(inputs=["x"], upstream_model="bge"))
    assert exc.kind == "invalid_reply"
