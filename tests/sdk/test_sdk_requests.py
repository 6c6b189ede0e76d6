"""What the SDK puts on the wire, configuration fallbacks and client ownership."""

from __future__ import annotations

import json

import httpx
import pytest

from embedrouter import EmbedRouter as ReExported
from embedrouter import sdk
from embedrouter.sdk import EmbedRouter, RetryConfig
from tests.sdk.scripted_server import Reply, ScriptedServer, ok_body


def test_generate_request_shape(scripted: ScriptedServer, sdk: EmbedRouter) -> None:
    scripted.script(Reply(200, ok_body()))
    sdk.embeddings.generate(input=[[1.0, 2.0]], model="a/b", dimensions=64,
                            http_referer="https://app", x_open_router_title="App",
                            http_headers={"X-Extra": "1", "User-Agent": "mine"})
    seen = scripted.seen[0]
    assert seen.method == "POST" and seen.path == "/api/v1/embeddings"
    assert json.loads(seen.body) == {"input": [[1.0, 2.0]], "model": "a/b", "dimensions": 64}
    h = seen.headers
    assert h["authorization"] == "Bearer sk-test"
    assert h["accept"] == "application/json;q=1, text/event-stream;q=0"
    assert h["http-referer"] == "https://app" and h["x-openrouter-title"] == "App"
    assert h["x-extra"] == "1" and h["user-agent"] == "mine"
    assert "x-openrouter-categories" not in h


def test_explicit_provider_none_is_sent_as_null(scripted: ScriptedServer,
                                                sdk: EmbedRouter) -> None:
    scripted.script(Reply(200, ok_body()))
    sdk.embeddings.generate(input="x", model="m", provider=None)
    assert json.loads(scripted.seen[0].body)["provider"] is None
    scripted.script(Reply(200, ok_body()))
    sdk.embeddings.generate(input="x", model="m")
    assert "provider" not in json.loads(scripted.seen[0].body)


def test_list_models_always_sends_offset_and_limit(scripted: ScriptedServer,
                                                   sdk: EmbedRouter) -> None:
    scripted.script(Reply(200, {"data": [], "links": {"next": None}, "total_count": 0}))
    page = sdk.embeddings.list_models()
    assert scripted.seen[0].path == "/api/v1/embeddings/models?offset=0&limit=500"
    assert page.result.total_count == 0 and page.next() is None


def test_api_key_and_url_fallbacks(scripted: ScriptedServer,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDROUTER_BASE_URL", scripted.base_url)
    monkeypatch.setenv("OPENROUTER_API_KEY", "from-openrouter-env")
    monkeypatch.delenv("EMBEDROUTER_API_KEY", raising=False)
    client = EmbedRouter(retry_config=RetryConfig(strategy="none"))
    scripted.script(Reply(200, ok_body()))
    client.embeddings.generate(input="x", model="m")
    assert scripted.seen[0].headers["authorization"] == "Bearer from-openrouter-env"
    monkeypatch.setenv("EMBEDROUTER_API_KEY", "from-embedrouter-env")
    scripted.script(Reply(200, ok_body()))
    client.embeddings.generate(input="x", model="m")
    assert scripted.seen[0].headers["authorization"] == "Bearer from-embedrouter-env"
    keys = iter(["rotated-1", "rotated-2"])
    rotating = EmbedRouter(api_key=lambda: next(keys), server_url=scripted.base_url)
    scripted.script(Reply(200, ok_body()), Reply(200, ok_body()))
    rotating.embeddings.generate(input="x", model="m")
    rotating.embeddings.generate(input="x", model="m")
    assert [s.headers["authorization"] for s in scripted.seen] == ["Bearer rotated-1",
                                                                   "Bearer rotated-2"]
    monkeypatch.delenv("EMBEDROUTER_BASE_URL")
    assert EmbedRouter().server_url == "http://127.0.0.1:8000/api/v1"


async def test_user_clients_are_never_closed(scripted: ScriptedServer) -> None:
    mine = httpx.Client()
    mine_async = httpx.AsyncClient()
    with EmbedRouter(api_key="k", server_url=scripted.base_url, client=mine) as c:
        scripted.script(Reply(200, ok_body()))
        c.embeddings.generate(input="x", model="m")
    assert not mine.is_closed
    async with EmbedRouter(api_key="k", server_url=scripted.base_url,
                           async_client=mine_async) as c:
        scripted.script(Reply(200, ok_body()))
        await c.embeddings.generate_async(input="x", model="m")
    assert not mine_async.is_closed
    owned = EmbedRouter(api_key="k", server_url=scripted.base_url)
    scripted.script(Reply(200, ok_body()))
    owned.embeddings.generate(input="x", model="m")
    inner = owned.client
    owned.close()
    assert inner.is_closed
    mine.close()
    await mine_async.aclose()


def test_debug_logger_gets_requests_without_the_key(scripted: ScriptedServer) -> None:
    lines: list[str] = []

    class Log:
        def debug(self, msg: str, *args: object, **kw: object) -> None:
            lines.append(msg % args)

    client = EmbedRouter(api_key="sk-secret", server_url=scripted.base_url, debug_logger=Log())
    scripted.script(Reply(200, ok_body()))
    client.embeddings.generate(input="x", model="m")
    assert lines and "POST" in lines[0] and "sk-secret" not in " ".join(lines)


def test_public_names_do_not_drift() -> None:
    assert ReExported is EmbedRouter
    assert sorted(sdk.__all__) == sorted(set(sdk.__all__))
    for name in sdk.__all__:
        assert hasattr(sdk, name), name
    seed = ["BadRequestResponseError", "UnauthorizedResponseError",
            "PaymentRequiredResponseError", "NotFoundResponseError",
            "TooManyRequestsResponseError", "InternalServerResponseError",
            "BadGatewayResponseError", "ServiceUnavailableResponseError",
            "EdgeNetworkTimeoutResponseError", "ProviderOverloadedResponseError",
            "OpenRouterDefaultError", "ResponseValidationError"]
    assert set(seed) <= set(sdk.__all__)
    assert {n for n in sdk.__all__ if not n[0].isupper()} == {
        "embeddings_generate", "embeddings_generate_async", "errors", "to_numpy"}


def test_official_constructor_extras(scripted: ScriptedServer) -> None:
    templated = EmbedRouter(api_key="k", server_url="http://127.0.0.1:{port}/api/v1",
                            url_params={"port": str(scripted.port)})
    assert templated.server_url == scripted.base_url
    assert EmbedRouter(server="production").server_url == "https://openrouter.ai/api/v1"
    with pytest.raises(ValueError, match="server must be one of"):
        EmbedRouter(server="staging")
    scripted.script(Reply(200, ok_body()))
    templated.embeddings.generate(input="x", model="m", accept_header_override="application/json")
    assert scripted.seen[0].headers["accept"] == "application/json"
