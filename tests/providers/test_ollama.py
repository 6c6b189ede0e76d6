from __future__ import annotations

from embedrouter.providers.http import HttpClient
from embedrouter.providers.ollama import OllamaAdapter
from embedrouter.providers.upstream import UpstreamCall
from tests.providers.common import TEXTS, TOKENS, CommonSuite, assert_rows, failure_of, make
from tests.support.fake_upstreams import FakeUpstreams, Step


class TestCommon(CommonSuite):
    wire = "ollama"
    adapter_cls = OllamaAdapter
    model = "all-minilm"
    retry_hint = None  # Ollama sends no rate-limit headers


async def test_request_shape_without_key(fake: FakeUpstreams, http: HttpClient) -> None:
    adapter = make(OllamaAdapter, fake, http, "ollama", key=None, truncate=False,
                   keep_alive="10m")
    reply = await adapter.embed(UpstreamCall(inputs=TEXTS, upstream_model="all-minilm",
                                             dimensions=4, input_type="query"))
    seen = fake.last
    assert seen.path == "/api/embed" and "authorization" not in seen.headers
    # No task field: Ollama has none (prefixes belong in the text).
    assert seen.json == {"model": "all-minilm", "input": TEXTS, "dimensions": 4,
                         "truncate": False, "keep_alive": "10m"}
    assert_rows(reply, TEXTS, 4)
    assert reply.prompt_tokens == TOKENS  # prompt_eval_count


async def test_error_string_body(fake: FakeUpstreams, http: HttpClient) -> None:
    fake.script(Step.reply(400, {"error": "the input length exceeds the context length"}))
    exc = await failure_of(make(OllamaAdapter, fake, http, "ollama"),
                           UpstreamCall(inputs=["x"], upstream_model="all-minilm"))
    # Per-input over-length: splitting the batch cannot help, so not too_large.
    assert (exc.kind, exc.message) == ("bad_request",
                                       "the input length exceeds the context length")


async def test_model_not_pulled(fake: FakeUpstreams, http: HttpClient) -> None:
    exc = await failure_of(make(OllamaAdapter, fake, http, "ollama"),
                           UpstreamCall(inputs=["x"], upstream_model="missing-model"))
    # The endpoint cannot serve the model; another one may: unavailable, not the caller's fault.
    assert (exc.kind, exc.status) == ("unavailable", 404) and "not found" in exc.message
