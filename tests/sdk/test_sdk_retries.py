"""Retry policy as pure functions (tables of cases) and the loop's timing over real sockets."""

from __future__ import annotations

import itertools
import random
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from embedrouter.sdk import (
    BackoffStrategy,
    EmbedRouter,
    EmbedRouterCore,
    RetryConfig,
    embeddings_generate,
    errors,
)
from embedrouter.sdk._backoff import (
    DEFAULT_RETRY,
    backoff_delay,
    next_delay,
    retry_after,
    status_matches,
    transport_retryable,
)
from tests.sdk.conftest import FAST_RETRY
from tests.sdk.scripted_server import Reply, ScriptedServer, envelope, ok_body


@pytest.mark.parametrize(("status", "codes", "want"), [
    (500, ("5XX",), True), (503, ("5XX",), True), (524, ("5XX",), True), (529, ("5XX",), True),
    (429, ("5XX",), False), (400, ("5XX",), False), (429, ("429", "5XX"), True),
    (404, ("4XX",), True), (599, ("5xx",), True), (600, ("5XX",), False), (502, ("502",), True),
    (503, ("502",), False),
])
def test_status_matches(status: int, codes: tuple[str, ...], want: bool) -> None:
    assert status_matches(status, codes) is want


def test_official_defaults() -> None:
    assert DEFAULT_RETRY.strategy == "backoff"
    assert DEFAULT_RETRY.backoff == BackoffStrategy(500, 60_000, 1.5, 3_600_000)
    assert DEFAULT_RETRY.retry_connection_errors is True
    assert DEFAULT_RETRY.status_codes == ("5XX",)


@pytest.mark.parametrize(("attempt", "low", "high"), [(0, 0.5, 1.5), (1, 0.75, 1.75),
                                                      (4, 2.53, 3.54), (30, 60, 60)])
def test_backoff_delay_grows_with_jitter_and_cap(attempt: int, low: float, high: float) -> None:
    rng = random.Random(7)
    for _ in range(50):
        assert low <= backoff_delay(DEFAULT_RETRY.backoff, attempt, rng) <= high


@pytest.mark.parametrize(("headers", "want"), [
    ({"retry-after": "3"}, 3.0), ({"retry-after": "0.5"}, 0.5), ({"retry-after-ms": "250"}, 0.25),
    ({"retry-after-ms": "250", "retry-after": "9"}, 0.25), ({"retry-after": "0"}, None),
    ({"retry-after": "soon"}, None), ({}, None), ({"retry-after-ms": "x", "retry-after": "2"}, 2),
    ({"retry-after-ms": "0", "retry-after": "9"}, None),
    ({"retry-after-ms": "-5", "retry-after": "2"}, 2),
    ({"retry-after-ms": "", "retry-after": "2"}, 2), ({"retry-after": " 7 "}, 7),
])
def test_retry_after_headers(headers: dict[str, str], want: float | None) -> None:
    assert retry_after(headers) == want


@pytest.mark.parametrize("headers", [
    {"retry-after": "3"}, {"retry-after": "0.25"}, {"retry-after-ms": "250"},
    {"retry-after-ms": "250", "retry-after": "9"}, {"retry-after": "0"}, {"retry-after": "soon"},
    {}, {"retry-after-ms": "x", "retry-after": "2"}, {"retry-after-ms": "0", "retry-after": "9"},
    {"retry-after-ms": "-5", "retry-after": "2"}, {"retry-after": "-3"},
])
def test_retry_after_agrees_with_the_official_sdk(headers: dict[str, str]) -> None:
    retries = pytest.importorskip("openrouter.utils.retries")
    resp = httpx.Response(503, headers=headers)
    ms = retries._parse_retry_after_ms_header(resp)
    theirs = ms if ms is not None else retries._parse_retry_after_header(resp)
    assert retry_after(headers) == (theirs / 1000 if theirs and theirs > 0 else None)


@pytest.mark.parametrize(("exc", "want"), [
    (httpx.ConnectError("refused"), True), (httpx.ReadError("reset"), True),
    (httpx.WriteError("broken pipe"), True), (httpx.ConnectTimeout("slow"), True),
    (httpx.ReadTimeout("slow"), True), (httpx.PoolTimeout("busy"), True),
    (httpx.RemoteProtocolError("Server disconnected without sending a response."), True),
    (httpx.UnsupportedProtocol("Request URL is missing an 'http://' or 'https://' protocol."),
     False),
    (httpx.LocalProtocolError("bad header"), False), (httpx.ProxyError("denied"), False),
])
def test_which_transport_errors_are_retried(exc: httpx.TransportError, want: bool) -> None:
    assert transport_retryable(exc) is want


def test_negative_jitter_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter_ms"):
        BackoffStrategy(100, 1000, 2.0, 10_000, jitter_ms=-1)


def test_retry_after_http_date() -> None:
    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after({"retry-after": later}, now=now.timestamp()) == pytest.approx(30)
    past = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert retry_after({"retry-after": past}, now=now.timestamp()) is None


def test_next_delay_respects_strategy_and_budget() -> None:
    assert next_delay(RetryConfig(strategy="none"), 0, 0.0) is None
    assert next_delay(FAST_RETRY, 0, 0.0) == pytest.approx(0.05)
    assert next_delay(FAST_RETRY, 0, 4.99) is None  # over the 5 s budget
    assert next_delay(FAST_RETRY, 0, 0.0, headers={"retry-after": "2"}) == 2
    assert next_delay(FAST_RETRY, 0, 3.5, headers={"retry-after": "2"}) is None


def _gaps(server: ScriptedServer) -> list[float]:
    return [b.at - a.at for a, b in zip(server.seen, server.seen[1:], strict=False)]


def test_5xx_is_retried_with_backoff(scripted: ScriptedServer) -> None:
    client = EmbedRouter(api_key="k", server_url=scripted.base_url, retry_config=FAST_RETRY)
    scripted.script(Reply(503, envelope(503)), Reply(500, envelope(500)), Reply(200, ok_body()))
    res = client.embeddings.generate(input="x", model="m")
    assert res.data[0].embedding == [1.0, 1.0, 1.0]
    gaps = _gaps(scripted)
    assert len(gaps) == 2
    assert 0.04 <= gaps[0] <= 0.3 and 0.09 <= gaps[1] <= 0.4  # 50 ms then 100 ms


def test_retry_after_header_sets_the_wait(scripted: ScriptedServer) -> None:
    client = EmbedRouter(api_key="k", server_url=scripted.base_url, retry_config=FAST_RETRY)
    scripted.script(Reply(503, envelope(503), headers={"retry-after": "0.4"}),
                    Reply(502, envelope(502), headers={"retry-after-ms": "150"}),
                    Reply(200, ok_body()))
    client.embeddings.generate(input="x", model="m")
    gaps = _gaps(scripted)
    assert 0.38 <= gaps[0] <= 0.8
    assert 0.14 <= gaps[1] <= 0.5


def test_429_is_retried_only_when_asked(scripted: ScriptedServer) -> None:
    client = EmbedRouter(api_key="k", server_url=scripted.base_url, retry_config=FAST_RETRY)
    scripted.script(Reply(429, envelope(429), headers={"retry-after": "0.1"}),
                    Reply(200, ok_body()))
    with pytest.raises(errors.TooManyRequestsResponseError):
        client.embeddings.generate(input="x", model="m")
    assert len(scripted.seen) == 1
    asked = RetryConfig("backoff", FAST_RETRY.backoff, True, status_codes_override=["429"])
    scripted.script(Reply(429, envelope(429), headers={"retry-after": "0.1"}),
                    Reply(200, ok_body()))
    client.embeddings.generate(input="x", model="m", retries=asked)
    assert len(scripted.seen) == 2


def test_budget_runs_out_and_the_last_error_is_raised(scripted: ScriptedServer) -> None:
    tight = RetryConfig("backoff", BackoffStrategy(100, 100, 1.0, 350, jitter_ms=0), True)
    client = EmbedRouter(api_key="k", server_url=scripted.base_url, retry_config=tight)
    scripted.script(*[Reply(500, envelope(500, f"try {i}")) for i in range(10)])
    started = time.monotonic()
    with pytest.raises(errors.InternalServerResponseError) as info:
        client.embeddings.generate(input="x", model="m")
    assert time.monotonic() - started < 1.0
    # 100 ms apart, none starting past the 350 ms budget: at most 0, 0.1, 0.2, 0.3 s. How many
    # fit depends on how long each reply takes on this machine, not on the policy.
    n = len(scripted.seen)
    offsets = [s.at - scripted.seen[0].at for s in scripted.seen]
    assert 2 <= n <= 4, offsets
    assert all(b - a >= 0.1 for a, b in itertools.pairwise(offsets)), offsets
    assert offsets[-1] <= 0.35, offsets
    assert info.value.message == f"try {n - 1}"


def test_connection_errors_are_retried_unless_disabled(scripted: ScriptedServer) -> None:
    client = EmbedRouter(api_key="k", server_url=scripted.base_url, retry_config=FAST_RETRY)
    scripted.script(Reply(drop=True), Reply(drop=True), Reply(200, ok_body()))
    assert client.embeddings.generate(input="x", model="m").object == "list"
    assert len(scripted.seen) == 3
    no = RetryConfig("backoff", FAST_RETRY.backoff, retry_connection_errors=False)
    scripted.script(Reply(drop=True), Reply(200, ok_body()))
    with pytest.raises(errors.APIConnectionError):
        client.embeddings.generate(input="x", model="m", retries=no)


async def test_async_retries(scripted: ScriptedServer) -> None:
    async with EmbedRouter(api_key="k", server_url=scripted.base_url,
                           retry_config=FAST_RETRY) as client:
        scripted.script(Reply(503, envelope(503)), Reply(drop=True), Reply(200, ok_body(2)))
        res = await client.embeddings.generate_async(input=["a", "b"], model="m")
    assert len(res.data) == 2 and len(scripted.seen) == 3


def test_a_malformed_url_is_not_retried_for_an_hour() -> None:
    """The default policy retries connection errors for an hour; a URL that can never work
    (no scheme) fails at once instead."""
    client = EmbedRouter(api_key="k", server_url="127.0.0.1:1/api/v1")
    started = time.monotonic()
    with pytest.raises(errors.APIConnectionError, match="protocol"):
        client.embeddings.generate(input="x", model="m")
    res = embeddings_generate(EmbedRouterCore(api_key="k", server_url="ftp://127.0.0.1/x"),
                              {"input": "x", "model": "m"})
    assert not res.ok and isinstance(res.error, errors.APIConnectionError)
    bad = embeddings_generate(EmbedRouterCore(api_key="k", server_url="http://\x00/x"),
                              {"input": "x", "model": "m"})
    assert isinstance(bad.error, errors.RequestValidationError)
    assert time.monotonic() - started < 1


def test_none_switches_retries_off_as_officially(scripted: ScriptedServer) -> None:
    """Official semantics: leaving `retries` out uses the client's policy; passing None, or
    building the client with retry_config=None, sends exactly once."""
    client = EmbedRouter(api_key="k", server_url=scripted.base_url, retry_config=FAST_RETRY)
    scripted.script(Reply(503, envelope(503)), Reply(200, ok_body()))
    with pytest.raises(errors.ServiceUnavailableResponseError):
        client.embeddings.generate(input="x", model="m", retries=None)
    assert len(scripted.seen) == 1
    off = EmbedRouter(api_key="k", server_url=scripted.base_url, retry_config=None)
    scripted.script(Reply(503, envelope(503)), Reply(200, ok_body()))
    with pytest.raises(errors.ServiceUnavailableResponseError):
        off.embeddings.generate(input="x", model="m")
    assert len(scripted.seen) == 1
    scripted.script(Reply(503, envelope(503)), Reply(200, ok_body()))
    assert off.embeddings.generate(input="x", model="m", retries=FAST_RETRY).object == "list"
    assert len(scripted.seen) == 2
    core = EmbedRouterCore(api_key="k", server_url=scripted.base_url, retry_config=FAST_RETRY)
    scripted.script(Reply(503, envelope(503)), Reply(200, ok_body()))
    res = embeddings_generate(core, {"input": "x", "model": "m"}, {"retries": None})
    assert isinstance(res.error, errors.ServiceUnavailableResponseError)
    scripted.script(Reply(503, envelope(503)), Reply(200, ok_body()))
    assert embeddings_generate(core, {"input": "x", "model": "m"}).ok


def test_list_models_is_retried_too(scripted: ScriptedServer) -> None:
    client = EmbedRouter(api_key="k", server_url=scripted.base_url, retry_config=FAST_RETRY)
    page = {"data": [], "links": {"next": None}, "total_count": 0}
    scripted.script(Reply(502, envelope(502)), Reply(drop=True), Reply(200, page))
    assert client.embeddings.list_models().result.total_count == 0
    assert len(scripted.seen) == 3


async def test_async_retry_after_and_budget(scripted: ScriptedServer) -> None:
    tight = RetryConfig("backoff", BackoffStrategy(50, 50, 1.0, 300, jitter_ms=0), True)
    async with EmbedRouter(api_key="k", server_url=scripted.base_url,
                           retry_config=tight) as client:
        scripted.script(Reply(503, envelope(503), headers={"retry-after-ms": "150"}),
                        Reply(200, ok_body()))
        await client.embeddings.generate_async(input="x", model="m")
        assert 0.14 <= _gaps(scripted)[0] <= 0.5
        # A Retry-After beyond the 300 ms budget is not waited for: the error comes at once.
        scripted.script(Reply(503, envelope(503, "later"), headers={"retry-after": "5"}))
        started = time.monotonic()
        with pytest.raises(errors.ServiceUnavailableResponseError, match="later"):
            await client.embeddings.generate_async(input="x", model="m")
        assert time.monotonic() - started < 0.5 and len(scripted.seen) == 1
