from __future__ import annotations

import pytest

from embedrouter.providers.http import HttpClient
from embedrouter.providers.upstream import UpstreamCall
from embedrouter.providers.voyage import VoyageAdapter
from tests.providers.common import TEXTS, TOKENS, CommonSuite, assert_rows, failure_of, make
from tests.support.fake_upstreams import API_KEY, FakeUpstreams, Step


class TestCommon(CommonSuite):
    wire = "voyage"
    adapter_cls = VoyageAdapter
    model = "voyage-3.5"
    retry_hint = None  # Voyage's 429 carries no documented hint
    cap = 1000


async def test_request_shape_base64(fake: FakeUpstreams, http: HttpClient) -> None:
    reply = await make(VoyageAdapter, fake, http, "voyage").embed(
        UpstreamCall(inputs=TEXTS, upstream_model="voyage-3.5", dimensions=4,
                     input_type="search_query"))
    seen = fake.last
    assert seen.path == "/v1/embeddings"
    assert seen.headers["authorization"] == f"Bearer {API_KEY}"
    assert seen.json == {"model": "voyage-3.5", "input": TEXTS, "input_type": "query",
                         "output_dtype": "float", "output_dimension": 4,
                         "encoding_format": "base64"}
    assert_rows(reply, TEXTS, 4)
    assert reply.prompt_tokens == TOKENS  # from usage.total_tokens, Voyage's only figure


@pytest.mark.parametrize(("given", "sent"), [(None, None), ("passage", "document"),
                                             ("classification", None)])
async def test_input_type_is_query_document_or_null(fake: FakeUpstreams, http: HttpClient,
                                                    given: str | None, sent: str | None
                                                    ) -> None:
    await make(VoyageAdapter, fake, http, "voyage").embed(
        UpstreamCall(inputs=["x"], upstream_model="voyage-3.5", input_type=given,
                     want_base64=False))
    assert fake.last.json["input_type"] == sent
    assert "encoding_format" not in fake.last.json  # Voyage has no "float" value


async def test_detail_error_body(fake: FakeUpstreams, http: HttpClient) -> None:
    fake.script(Step.reply(400, {"detail": "Input cannot contain empty strings."}))
    exc = await failure_of(make(VoyageAdapter, fake, http, "voyage"),
                           UpstreamCall(inputs=["x"], upstream_model="voyage-3.5"))
    assert (exc.kind, exc.message) == ("bad_request", "Input cannot contain empty strings.")
