"""What every adapter must do against its fake upstream: the shared suite each
``test_<format>.py`` runs through ``class TestCommon(CommonSuite)``, plus small helpers."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from embedrouter.providers.http import HttpClient
from embedrouter.providers.upstream import (
    AttemptFailure,
    ProviderConfig,
    UpstreamCall,
    UpstreamReply,
)
from tests.support.fake_formats import vector_for
from tests.support.fake_upstreams import API_KEY, WIRES, FakeUpstreams, Step

TEXTS = ["the first input", "second", "a third, longer input text"]
TOKENS = sum(len(t.split()) for t in TEXTS)  # the fake's count: words per input


def make(adapter_cls: Any, fake: FakeUpstreams, http: HttpClient, wire: str, *,
         key: str | None = API_KEY, timeout: float = 5.0, **options: Any) -> Any:
    config = ProviderConfig(name=wire, kind=wire, base_url=fake.base_url(wire), api_key=key,
                            display_name=f"Fake {wire}", timeout_s=timeout, options=options)
    return adapter_cls(config, http)


async def failure_of(adapter: Any, call: UpstreamCall) -> AttemptFailure:
    with pytest.raises(AttemptFailure) as info:
        await adapter.embed(call)
    return info.value


def assert_rows(reply: UpstreamReply, inputs: list[Any], dim: int) -> None:
    """Each row is the fake's vector for the input its index names."""
    assert reply.vectors.dtype == np.float32
    assert reply.vectors.shape == (len(inputs), dim)
    assert sorted(reply.indices) == list(range(len(inputs)))
    for row, index in zip(reply.vectors, reply.indices, strict=True):
        np.testing.assert_array_equal(row, vector_for(inputs[index], dim))


class CommonSuite:
    """Set by each format's subclass."""

    wire: ClassVar[str]
    adapter_cls: ClassVar[Any]
    model: ClassVar[str] = "fake-model"
    options: ClassVar[dict[str, Any]] = {}
    has_usage: ClassVar[bool] = True  # the format reports token usage
    retry_hint: ClassVar[float | None] = 12.0  # what a scripted 429 with retry=12 should give
    cap: ClassVar[int | None] = None  # the fake's per-request input cap, if it has one

    def adapter(self, fake: FakeUpstreams, http: HttpClient, **kw: Any) -> Any:
        return make(self.adapter_cls, fake, http, self.wire, **{**self.options, **kw})

    def call(self, inputs: list[Any] | None = None, **kw: Any) -> UpstreamCall:
        return UpstreamCall(inputs=list(TEXTS if inputs is None else inputs),
                            upstream_model=self.model, **kw)

    async def test_success_rows_usage(self, fake: FakeUpstreams, http: HttpClient) -> None:
        reply = await self.adapter(fake, http).embed(self.call())
        assert_rows(reply, TEXTS, fake.default_dim)
        assert reply.prompt_tokens == (TOKENS if self.has_usage else None)

    async def test_dimensions_asked_and_honoured(self, fake: FakeUpstreams,
                                                 http: HttpClient) -> None:
        reply = await self.adapter(fake, http).embed(self.call(dimensions=4))
        assert_rows(reply, TEXTS, 4)

    async def test_missing_usage_is_none(self, fake: FakeUpstreams, http: HttpClient
                                         ) -> None:
        fake.script(Step.ok("no_usage"))
        reply = await self.adapter(fake, http).embed(self.call())
        assert reply.prompt_tokens is None
        assert_rows(reply, TEXTS, fake.default_dim)

    @pytest.mark.parametrize("flaw", ["short", "wrong_dim"])
    async def test_short_or_wrong_width_is_invalid(self, fake: FakeUpstreams,
                                                   http: HttpClient, flaw: str) -> None:
        fake.script(Step.ok(flaw))
        exc = await failure_of(self.adapter(fake, http), self.call(dimensions=4))
        assert exc.kind == "invalid_reply" and exc.retryable

    async def test_malformed_json_is_invalid(self, fake: FakeUpstreams, http: HttpClient
                                             ) -> None:
        fake.script(Step.malformed())
        exc = await failure_of(self.adapter(fake, http), self.call())
        assert exc.kind == "invalid_reply" and exc.status == 200

    async def test_rate_limited_with_its_hint(self, fake: FakeUpstreams, http: HttpClient
                                              ) -> None:
        fake.script(Step.error("rate_limited", retry=12))
        exc = await failure_of(self.adapter(fake, http), self.call())
        assert (exc.kind, exc.status, exc.retry_after) == ("rate_limited", 429, self.retry_hint)

    async def test_overloaded(self, fake: FakeUpstreams, http: HttpClient) -> None:
        fake.script(Step.error("overloaded"))
        exc = await failure_of(self.adapter(fake, http), self.call())
        assert exc.kind == "overloaded"

    @pytest.mark.parametrize("status", [500, 502, 503])
    async def test_server_errors_are_unavailable(self, fake: FakeUpstreams,
                                                 http: HttpClient, status: int) -> None:
        fake.script(Step.error(status))
        exc = await failure_of(self.adapter(fake, http), self.call())
        assert (exc.kind, exc.status) == ("unavailable", status)

    async def test_plain_529_is_overloaded(self, fake: FakeUpstreams, http: HttpClient
                                           ) -> None:
        fake.script(Step.reply(529, b"<html>overloaded</html>"))
        exc = await failure_of(self.adapter(fake, http), self.call())
        assert exc.kind == "overloaded"

    async def test_scripted_400_is_bad_request(self, fake: FakeUpstreams, http: HttpClient
                                               ) -> None:
        fake.script(Step.reply(400, WIRES[self.wire].envelope(400, "input is not valid")))
        exc = await failure_of(self.adapter(fake, http), self.call())
        assert (exc.kind, exc.retryable) == ("bad_request", False)
        assert "input is not valid" in exc.message

    async def test_too_large(self, fake: FakeUpstreams, http: HttpClient) -> None:
        fake.script(Step.error("too_large"))
        exc = await failure_of(self.adapter(fake, http), self.call())
        assert exc.kind == "too_large"

    async def test_over_the_fakes_cap_is_too_large(self, fake: FakeUpstreams,
                                                   http: HttpClient) -> None:
        if self.cap is None:
            pytest.skip("this upstream documents no per-request input cap")
        exc = await failure_of(self.adapter(fake, http),
                               self.call([f"t{i}" for i in range(self.cap + 1)]))
        assert exc.kind == "too_large"

    async def test_timeout(self, fake: FakeUpstreams, http: HttpClient) -> None:
        fake.script(Step.delay(3))
        exc = await failure_of(self.adapter(fake, http, timeout=0.3), self.call())
        assert exc.kind == "timeout" and exc.retryable

    async def test_dropped_connection(self, fake: FakeUpstreams, http: HttpClient) -> None:
        fake.script(Step.drop())
        exc = await failure_of(self.adapter(fake, http), self.call())
        assert exc.kind == "connection" and exc.retryable

    async def test_wrong_key_is_auth_and_redacted(self, fake: FakeUpstreams,
                                                  http: HttpClient) -> None:
        wrong = "wrong-key-4e1d0b9a77c3"
        exc = await failure_of(self.adapter(fake, http, key=wrong), self.call())
        assert exc.kind == "auth" and exc.retryable  # another endpoint may still serve it
        assert wrong not in exc.message and wrong not in (exc.raw or "")

    async def test_key_echoed_in_error_is_redacted(self, fake: FakeUpstreams,
                                                   http: HttpClient) -> None:
        echo = WIRES[self.wire].envelope(401, f"Incorrect API key provided: {API_KEY}")
        fake.script(Step.reply(401, echo))
        exc = await failure_of(self.adapter(fake, http), self.call())
        assert exc.kind == "auth"
        assert API_KEY in fake.last.headers.get(WIRES[self.wire].auth_header, "")
        assert API_KEY not in exc.message and API_KEY not in (exc.raw or "")
        assert "[redacted]" in (exc.raw or "")

    async def test_fake_validates_like_the_upstream(self, fake: FakeUpstreams,
                                                    http: HttpClient) -> None:
        """A body missing the required fields gets the upstream's own validation reply, which
        the adapter reads as a bad request (not as retryable)."""
        adapter = self.adapter(fake, http)
        reply = await http.post(adapter.url(self.call()), headers=adapter._headers, body=b"{}",
                                timeout=5, provider="fake")
        assert reply.status in (400, 422)
        with pytest.raises(AttemptFailure) as info:
            adapter.parse(reply, len(TEXTS))
        assert info.value.kind == "bad_request" and info.value.status == reply.status
