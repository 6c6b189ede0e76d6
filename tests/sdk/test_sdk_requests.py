"""What the SDK puts on the wire, configuration fallbacks and client ownership."""

from __future__ import annotations

import json

import httpx
import pytest

from embedrouter import EmbedRouter as ReExported
from embedrouter import sdk
from embedrouter import sdk as sdk_mod
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


def test_client_attribution_env_fallbacks(scripted: ScriptedServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_HTTP_REFERER", "https://env-app")
    monkeypatch.setenv("OPENROUTER_X_OPEN_ROUTER_TITLE", "Env App")
    monkeypatch.setenv("OPENROUTER_X_OPEN_ROUTER_CATEGORIES", "cli-agent")
    client = EmbedRouter(api_key="k", server_url=scripted.base_url, x_open_router_title="Mine")
    scripted.script(Reply(200, ok_body()))
    client.embeddings.generate(input="x", model="m")
    h = scripted.seen[0].headers
    assert (h["http-referer"], h["x-openrouter-title"], h["x-openrouter-categories"]) == (
        "https://env-app", "Mine", "cli-agent")


def test_timeouts_default_and_user_clients(scripted: ScriptedServer) -> None:
    owned = EmbedRouter(api_key="k", server_url=scripted.base_url)
    assert owned.client.timeout == httpx.Timeout(120, connect=10)
    # A client passed in keeps its own timeout unless timeout_ms is given, as officially.
    mine = httpx.Client(timeout=0.2)
    client = EmbedRouter(api_key="k", server_url=scripted.base_url, client=mine,
                         retry_config=None)
    scripted.script(Reply(200, ok_body(), delay=0.5))
    with pytest.raises(sdk.APITimeoutError):
        client.embeddings.generate(input="x", model="m")
    scripted.script(Reply(200, ok_body(), delay=0.5))
    assert client.embeddings.generate(input="x", model="m", timeout_ms=3000).object == "list"
    mine.close()


@pytest.mark.parametrize(("fields", "match"), [
    ({"dimensions": "64"}, "dimensions"), ({"dimensions": True}, "dimensions"),
    ({"encoding_format": 1}, "encoding_format"), ({"provider": ["x"]}, "provider"),
    ({"trace": "t"}, "trace"), ({"user": 5}, "user"), ({"input": ["a", {1}]}, "JSON"),
    ({"input": [[1.0, float("nan")]]}, "JSON"), ({"input": None}, "input"),
])
def test_invalid_fields_are_refused_before_sending(scripted: ScriptedServer, sdk: EmbedRouter,
                                                   fields: dict, match: str) -> None:
    scripted.script()
    kw = {"input": "x", "model": "m", **fields}
    with pytest.raises(sdk_mod.RequestValidationError, match=match):
        sdk.embeddings.generate(**kw)
    res = sdk_mod.embeddings_generate(sdk, kw)
    assert isinstance(res.error, sdk_mod.RequestValidationError)
    assert scripted.seen == []


def test_typed_request_objects(scripted: ScriptedServer, sdk: EmbedRouter) -> None:
    scripted.script(Reply(200, ok_body()), Reply(200, ok_body()))
    typed = sdk_mod.CreateEmbeddingsRequest(input="x", model="m", user="u",
                                            http_referer="https://typed")
    assert sdk_mod.embeddings_generate(sdk, typed).ok
    assert json.loads(scripted.seen[0].body) == {"input": "x", "model": "m", "user": "u"}
    assert scripted.seen[0].headers["http-referer"] == "https://typed"
    operations = pytest.importorskip("openrouter.operations")
    components = pytest.importorskip("openrouter.components")
    official = operations.CreateEmbeddingsRequestBody(
        input=["a"], model="m", provider=components.ProviderPreferences(order=["Local"]))
    assert sdk_mod.embeddings_generate(sdk, official).ok
    assert json.loads(scripted.seen[1].body) == {"input": ["a"], "model": "m",
                                                 "provider": {"order": ["Local"]}}


FULL_MODEL = {
    "id": "a/b", "canonical_slug": "a/b-2026", "name": "A B", "created": 1_700_000_000,
    "description": "d", "context_length": 512, "hugging_face_id": "a/b",
    "architecture": {"input_modalities": ["text"], "output_modalities": ["embeddings"],
                     "modality": "text->embeddings", "tokenizer": "Other",
                     "instruct_type": None},
    "pricing": {"prompt": "0.00000002", "completion": "0", "request": "0", "discount": 0},
    "top_provider": {"is_moderated": False, "context_length": 512,
                     "max_completion_tokens": None},
    "per_request_limits": None, "supported_parameters": ["dimensions"],
    "default_parameters": None, "supported_voices": None,
    "links": {"details": "/api/v1/models/a/b/endpoints"}, "future_field": {"x": 1},
}


def test_models_are_typed_like_the_official_ones(scripted: ScriptedServer,
                                                 sdk: EmbedRouter) -> None:
    lean = {k: FULL_MODEL[k] for k in ("id", "canonical_slug", "name", "created",
                                       "context_length", "architecture", "pricing")}
    scripted.script(Reply(200, {"data": [FULL_MODEL, lean], "total_count": 2,
                                "links": {"next": "/api/v1/embeddings/models?offset=2"}}))
    page = sdk.embeddings.list_models(limit=2)
    full, short = page.result.data
    assert full.pricing.prompt == "0.00000002" and full.pricing.request == "0"
    assert full.architecture.output_modalities == ["embeddings"]
    assert full.top_provider is not None and full.top_provider.is_moderated is False
    assert full.links is not None and full.links.details.endswith("/endpoints")
    assert full.supported_parameters == ["dimensions"] and full.raw["future_field"] == {"x": 1}
    assert short.top_provider is None and short.supported_parameters == []
    assert page.result.links.next == page.result.next_link == "/api/v1/embeddings/models?offset=2"
    assert "future_field" not in full.model_dump() and full.model_dump()["pricing"]["prompt"]
    # The page was full (2 of limit 2): next() asks for offset 2; an empty page ends it.
    scripted.script(Reply(200, {"data": [], "total_count": 2, "links": {"next": None}}))
    assert page.next() is not None
    assert scripted.seen[0].path == "/api/v1/embeddings/models?offset=2&limit=2"


@pytest.mark.parametrize(("path", "value"), [
    ("pricing", {"prompt": 0.1, "completion": "0"}), ("architecture", {"input_modalities": []}),
    ("top_provider", {"context_length": 3}), ("created", "yesterday"), ("id", None),
])
def test_invalid_models_are_validation_errors(scripted: ScriptedServer, sdk: EmbedRouter,
                                              path: str, value: object) -> None:
    scripted.script(Reply(200, {"data": [{**FULL_MODEL, path: value}], "total_count": 1,
                                "links": {"next": None}}))
    with pytest.raises(sdk_mod.ResponseValidationError, match=path):
        sdk.embeddings.list_models()


async def test_async_pages_iterate(scripted: ScriptedServer, sdk: EmbedRouter) -> None:
    def page(n: int) -> Reply:
        return Reply(200, {"data": [{**FULL_MODEL, "id": f"m{i}"} for i in range(n)],
                           "total_count": 5, "links": {"next": None}})

    scripted.script(page(2), page(2), page(1))
    first = await sdk.embeddings.list_models_async(limit=2, http_referer="https://a")
    ids = [m.id async for p in first for m in p.result.data]
    assert ids == ["m0", "m1"] * 2 + ["m0"]
    assert [s.path.split("?")[1] for s in scripted.seen] == [
        "offset=0&limit=2", "offset=2&limit=2", "offset=4&limit=2"]
    assert {s.headers["http-referer"] for s in scripted.seen} == {"https://a"}
    await sdk.aclose()


def test_debug_logger_sees_responses(scripted: ScriptedServer) -> None:
    lines: list[str] = []

    class Log:
        def debug(self, msg: str, *args: object, **kw: object) -> None:
            lines.append(msg % args)

    client = EmbedRouter(api_key="sk-secret", server_url=scripted.base_url, debug_logger=Log(),
                         retry_config=None)
    scripted.script(Reply(404, {"error": {"code": 404, "message": "no"}}))
    with pytest.raises(sdk_mod.NotFoundResponseError):
        client.embeddings.generate(input="x", model="m")
    assert any(line.endswith("-> 404") for line in lines)
