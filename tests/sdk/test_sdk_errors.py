"""Every error class, from a real server's replies; Result-returning functions never raise."""

from __future__ import annotations

import httpx
import pytest

from embedrouter import sdk
from embedrouter.sdk import EmbedRouter, EmbedRouterCore, RetryConfig, embeddings_generate
from tests.sdk.scripted_server import Reply, ScriptedServer, envelope, ok_body

STATUS_CLASSES = {
    400: sdk.BadRequestResponseError, 401: sdk.UnauthorizedResponseError,
    402: sdk.PaymentRequiredResponseError, 403: sdk.ForbiddenResponseError,
    404: sdk.NotFoundResponseError, 408: sdk.RequestTimeoutResponseError,
    413: sdk.PayloadTooLargeResponseError, 429: sdk.TooManyRequestsResponseError,
    499: sdk.ClientClosedRequestResponseError, 500: sdk.InternalServerResponseError,
    502: sdk.BadGatewayResponseError, 503: sdk.ServiceUnavailableResponseError,
    504: sdk.GatewayTimeoutResponseError, 524: sdk.EdgeNetworkTimeoutResponseError,
    529: sdk.ProviderOverloadedResponseError,
}


def call(client: EmbedRouter) -> sdk.CreateEmbeddingsResponse:
    return client.embeddings.generate(input="x", model="m")


@pytest.mark.parametrize(("status", "cls"), sorted(STATUS_CLASSES.items()))
def test_each_status_raises_its_class(scripted: ScriptedServer, sdk: EmbedRouter, status: int,
                                      cls: type) -> None:
    body = envelope(status, f"nope {status}", metadata={"provider_name": "P", "raw": "r"})
    scripted.script(Reply(status, body, headers={"x-thing": "1"}))
    with pytest.raises(cls) as info:
        call(sdk)
    err = info.value
    assert isinstance(err, sdk_errors().APIResponseError)
    assert err.status_code == status
    assert err.message == str(err) == f"nope {status}"
    assert err.data.error.code == status
    assert err.data.error.message == f"nope {status}"
    assert err.data.error.metadata == {"provider_name": "P", "raw": "r"}
    assert err.data.user_id == "user-1"
    assert err.headers["x-thing"] == "1"
    assert isinstance(err.raw_response, httpx.Response)
    assert f"nope {status}" in err.body


def sdk_errors():  # type: ignore[no-untyped-def]
    from embedrouter.sdk import errors

    return errors


@pytest.mark.parametrize("status", [405, 418, 422, 501, 599])
def test_other_statuses_are_the_default_error(scripted: ScriptedServer, sdk: EmbedRouter,
                                              status: int) -> None:
    scripted.script(Reply(status, envelope(status)))
    with pytest.raises(sdk_errors().OpenRouterDefaultError) as info:
        call(sdk)
    assert info.value.status_code == status
    assert info.value.message.startswith(f"API error occurred: Status {status}. Body: ")


def test_non_json_error_body_is_the_default_error(scripted: ScriptedServer,
                                                  sdk: EmbedRouter) -> None:
    scripted.script(Reply(502, "<html>bad gateway</html>", headers={"content-type": "text/html"}))
    with pytest.raises(sdk_errors().OpenRouterDefaultError) as info:
        call(sdk)
    assert info.value.message == ("API error occurred: Status 502 Content-Type text/html. "
                                  "Body: <html>bad gateway</html>")
    assert info.value.data is None


@pytest.mark.parametrize("body", [
    b"{not json",
    b'{"error": {"code": "invalid_api_key", "message": "x"}}',
    b'{"error": {"message": "no code"}}',
    b'{"detail": "fastapi style"}',
])
def test_malformed_error_envelopes(scripted: ScriptedServer, sdk: EmbedRouter,
                                   body: bytes) -> None:
    scripted.script(Reply(400, body))
    with pytest.raises(sdk_errors().ResponseValidationError) as info:
        call(sdk)
    assert info.value.status_code == 400
    assert info.value.cause is not None


@pytest.mark.parametrize("body", [
    {"data": [], "model": "m"},
    {"object": "list", "model": "m", "data": [{"embedding": [1.0]}]},
    {"object": "list", "model": "m", "data": [{"object": "embedding", "embedding": ["a"]}]},
    {"object": "list", "data": []},
    {"object": "list", "model": "m", "data": [], "usage": {"prompt_tokens": 1}},
])
def test_invalid_success_bodies(scripted: ScriptedServer, sdk: EmbedRouter, body: dict) -> None:
    scripted.script(Reply(200, body))
    with pytest.raises(sdk_errors().ResponseValidationError):
        call(sdk)


def test_success_body_not_json(scripted: ScriptedServer, sdk: EmbedRouter) -> None:
    scripted.script(Reply(200, b"{truncated", headers={"content-type": "application/json"}))
    with pytest.raises(sdk_errors().ResponseValidationError):
        call(sdk)
    scripted.script(Reply(200, "plain text"))
    with pytest.raises(sdk_errors().ResponseValidationError):
        call(sdk)


def test_dropped_connection_and_timeout(scripted: ScriptedServer, sdk: EmbedRouter) -> None:
    scripted.script(Reply(drop=True))
    with pytest.raises(sdk_errors().APIConnectionError) as dropped:
        call(sdk)
    assert isinstance(dropped.value.__cause__, httpx.TransportError)
    assert isinstance(dropped.value, httpx.TransportError)  # what official-SDK code catches
    scripted.script(Reply(200, ok_body(), delay=0.6))
    with pytest.raises(httpx.TimeoutException) as slow:
        sdk.embeddings.generate(input="x", model="m", timeout_ms=200)
    assert isinstance(slow.value, sdk_errors().APITimeoutError)
    assert slow.value.request.url.path == "/api/v1/embeddings"


def test_connection_refused(unused_tcp_port: int) -> None:
    client = EmbedRouter(api_key="k", server_url=f"http://127.0.0.1:{unused_tcp_port}/api/v1",
                         retry_config=RetryConfig(strategy="none"))
    with pytest.raises(sdk_errors().APIConnectionError):
        call(client)


FAILURES = [
    Reply(400, envelope(400)),
    Reply(503, envelope(503)),
    Reply(418, "teapot"),
    Reply(400, b"{bad"),
    Reply(200, {"object": "list"}),
    Reply(drop=True),
    Reply(200, ok_body(), delay=0.6),
]


@pytest.mark.parametrize("reply", FAILURES)
def test_result_functions_never_raise(scripted: ScriptedServer, reply: Reply) -> None:
    core = EmbedRouterCore(api_key="k", server_url=scripted.base_url,
                           retry_config=RetryConfig(strategy="none"), timeout_ms=200)
    scripted.script(reply)
    res = embeddings_generate(core, {"input": "x", "model": "m"})
    assert res.ok is False and res.value is None
    assert isinstance(res.error, sdk_errors().EmbedRouterError)


async def test_async_result_functions_never_raise(scripted: ScriptedServer) -> None:
    core = EmbedRouterCore(api_key="k", server_url=scripted.base_url,
                           retry_config=RetryConfig(strategy="none"), timeout_ms=200)
    for reply in FAILURES:
        scripted.script(reply)
        res = await sdk.embeddings_generate_async(core, {"input": "x", "model": "m"})
        assert res.ok is False and isinstance(res.error, sdk_errors().EmbedRouterError)
    await core.aclose()


@pytest.mark.parametrize("request_", [
    {"model": "m"}, {"input": "x"}, {"input": "x", "model": ""}, {"input": 5, "model": "m"},
    {"input": "x", "model": "m", "nonsense": 1}, "not a request",
])
def test_invalid_requests_are_results_too(scripted: ScriptedServer, request_: object) -> None:
    core = EmbedRouterCore(api_key="k", server_url=scripted.base_url)
    scripted.script()
    res = embeddings_generate(core, request_)  # type: ignore[arg-type]
    assert res.ok is False
    assert isinstance(res.error, sdk_errors().RequestValidationError)
    assert scripted.seen == []  # refused before sending


def test_result_ok(scripted: ScriptedServer) -> None:
    core = EmbedRouterCore(api_key="k", server_url=scripted.base_url)
    scripted.script(Reply(200, ok_body(2)))
    typed = sdk.CreateEmbeddingsRequest(input=["a", "b"], model="m", dimensions=3)
    res = embeddings_generate(core, typed, {"timeout_ms": 1000})
    assert res.ok and res.error is None
    assert [d.index for d in res.value.data] == [0, 1]  # type: ignore[union-attr]
    assert res.value.usage.cost == 0.5  # type: ignore[union-attr]
