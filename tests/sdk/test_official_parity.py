"""The same calls through the official ``openrouter`` SDK and ours, against the same scripted
127.0.0.1 server: identical requests on the wire, identical error classes, messages and data."""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from embedrouter.sdk import EmbedRouter, errors
from tests.sdk.scripted_server import Reply, ScriptedServer, Seen, envelope, ok_body

openrouter = pytest.importorskip("openrouter")

# Headers that legitimately differ (our user-agent) or that httpx sets on its own.
_TRANSPORT_HEADERS = {"user-agent", "host", "content-length", "accept-encoding", "connection"}


@pytest.fixture
def both(scripted: ScriptedServer) -> Iterator[dict[str, Any]]:
    kw = {"api_key": "sk-test", "server_url": scripted.base_url}
    with openrouter.OpenRouter(**kw) as theirs, EmbedRouter(**kw) as ours:
        yield {"theirs": theirs, "ours": ours}


def _run(scripted: ScriptedServer, client: Any, call: Callable[[Any], Any],
         *replies: Reply) -> tuple[Any, list[Seen]]:
    scripted.script(*replies)
    try:
        outcome = call(client)
    except Exception as exc:
        outcome = exc
    return outcome, list(scripted.seen)


def _wire(seen: Seen) -> dict[str, Any]:
    return {"method": seen.method, "path": seen.path,
            "body": json.loads(seen.body) if seen.body else None,
            "headers": {k: v for k, v in seen.headers.items() if k not in _TRANSPORT_HEADERS}}


def _v(value: Any) -> Any:
    """The official models say UNSET where ours say None."""
    return None if type(value).__name__ == "Unset" else value


def _no_nulls(value: Any) -> Any:
    """Ours leave every None out of model_dump(); theirs keep an explicit JSON null."""
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    return [_no_nulls(v) for v in value] if isinstance(value, list) else value


def generate(**kw: Any) -> Callable[[Any], Any]:
    return lambda c: c.embeddings.generate(retries=None, **kw)


REQUESTS = {
    "minimal": generate(input="hello", model="a/b"),
    "every field": generate(
        input=["a", "b"], model="a/b", dimensions=64, encoding_format="base64",
        input_type="search_query", user="u-1", session_id="s-1",
        provider={"order": ["Local"], "allow_fallbacks": False},
        trace={"trace_id": "t-1", "custom": 1}, http_referer="https://app",
        x_open_router_title="App", x_open_router_categories="cli-agent",
        http_headers={"X-Extra": "1"}),
    "explicit provider None": generate(input="x", model="m", provider=None),
    "token ids": generate(input=[[1, 2, 3], [4, 5]], model="m"),
    "list_models": lambda c: c.embeddings.list_models(retries=None),
    "list_models page": lambda c: c.embeddings.list_models(offset=10, limit=5, retries=None,
                                                           http_referer="https://app"),
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_same_request_on_the_wire(scripted: ScriptedServer, both: dict[str, Any],
                                  name: str) -> None:
    reply = Reply(200, {"data": [], "links": {"next": None}, "total_count": 0}
                  if name.startswith("list") else ok_body())
    _, theirs = _run(scripted, both["theirs"], REQUESTS[name], reply)
    _, ours = _run(scripted, both["ours"], REQUESTS[name], reply)
    assert [_wire(s) for s in ours] == [_wire(s) for s in theirs]


def test_client_level_attribution_is_sent_like_theirs(scripted: ScriptedServer) -> None:
    kw = {"api_key": "k", "server_url": scripted.base_url, "http_referer": "https://app",
          "x_open_router_title": "App", "x_open_router_categories": "cli-agent"}
    call = generate(input="x", model="m", x_open_router_title="Per call")
    _, theirs = _run(scripted, openrouter.OpenRouter(**kw), call, Reply(200, ok_body()))
    _, ours = _run(scripted, EmbedRouter(**kw), call, Reply(200, ok_body()))
    assert _wire(ours[0]) == _wire(theirs[0])
    assert ours[0].headers["http-referer"] == "https://app"
    assert ours[0].headers["x-openrouter-title"] == "Per call"


LONG = "x" * 12_345
REPLIES = {
    **{f"envelope {s}": Reply(s, envelope(s, f"nope {s}", metadata={"raw": "r"}),
                              headers={"x-thing": "1"})
       for s in (400, 401, 402, 403, 404, 408, 413, 429, 499, 500, 502, 503, 504, 524, 529)},
    "empty message": Reply(400, envelope(400, "")),
    "unmapped JSON status": Reply(418, envelope(418)),
    "text/plain": Reply(405, "method not allowed"),
    "content type with spaces": Reply(502, "<html>bad gateway</html>",
                                      headers={"content-type": "text/html; charset=utf-8"}),
    "no content type, empty body": Reply(500, b"", headers={"content-type": None}),
    "long body": Reply(503, LONG),
    "json with charset": Reply(401, json.dumps(envelope(401, "who")),
                               headers={"content-type": "application/json; charset=utf-8"}),
    "openrouter_metadata": Reply(429, {**envelope(429, "slow"),
                                       "openrouter_metadata": {"pipeline": []}}),
}
INVALID = {
    "invalid JSON": Reply(400, b"{not json"),
    "string code": Reply(401, b'{"error": {"code": "invalid_api_key", "message": "x"}}'),
    "no code": Reply(500, b'{"error": {"message": "x"}}'),
    "missing object": Reply(200, {"data": [], "model": "m"}),
    "embedding of strings": Reply(200, {"object": "list", "model": "m", "data": [
        {"object": "embedding", "embedding": ["a"]}]}),
}


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_same_error(scripted: ScriptedServer, both: dict[str, Any], name: str) -> None:
    call = generate(input="x", model="m")
    theirs, _ = _run(scripted, both["theirs"], call, REPLIES[name])
    ours, _ = _run(scripted, both["ours"], call, REPLIES[name])
    assert type(ours).__name__ == type(theirs).__name__
    assert isinstance(ours, errors.OpenRouterError)
    assert (ours.message, ours.status_code, ours.body) == (theirs.message, theirs.status_code,
                                                          theirs.body)
    assert str(ours) == str(theirs)
    assert dict(ours.headers) == {**dict(theirs.headers), "date": ours.headers["date"]}
    if hasattr(theirs, "data"):
        t, o = theirs.data, ours.data
        assert (o.error.code, o.error.message, o.error.metadata, o.user_id) == (
            t.error.code, t.error.message, _v(t.error.metadata), _v(t.user_id))
        assert o.openrouter_metadata == _v(t.openrouter_metadata)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_same_validation_errors(scripted: ScriptedServer, both: dict[str, Any],
                                name: str) -> None:
    call = generate(input="x", model="m")
    theirs, _ = _run(scripted, both["theirs"], call, INVALID[name])
    ours, _ = _run(scripted, both["ours"], call, INVALID[name])
    assert type(theirs).__name__ == type(ours).__name__ == "ResponseValidationError"
    assert ours.status_code == theirs.status_code and ours.body == theirs.body
    assert ours.message.startswith("Response validation failed: ")


def test_same_success(scripted: ScriptedServer, both: dict[str, Any]) -> None:
    body = {**ok_body(2), "usage": {
        "prompt_tokens": 2, "total_tokens": 2, "cost": 0.5, "is_byok": False,
        "cost_details": {"upstream_inference_prompt_cost": 0.1,
                         "upstream_inference_completions_cost": 0, "upstream_inference_cost": None},
        "prompt_tokens_details": {"text_tokens": 2}}}
    call = generate(input=["a", "b"], model="m")
    theirs, _ = _run(scripted, both["theirs"], call, Reply(200, body))
    ours, _ = _run(scripted, both["ours"], call, Reply(200, body))
    assert ours.model_dump() == _no_nulls(theirs.model_dump())
    assert ours.usage.cost_details.upstream_inference_prompt_cost == 0.1


def test_same_success_with_base64(scripted: ScriptedServer, both: dict[str, Any]) -> None:
    body = {"object": "list", "model": "m",
            "data": [{"object": "embedding", "index": 0, "embedding": "AACAPwAAAEA="}]}
    theirs, _ = _run(scripted, both["theirs"], generate(input="a", model="m"), Reply(200, body))
    ours, _ = _run(scripted, both["ours"], generate(input="a", model="m"), Reply(200, body))
    assert ours.data[0].embedding == theirs.data[0].embedding == "AACAPwAAAEA="
    assert ours.to_numpy().tolist() == [[1.0, 2.0]]


def _params(fn: Any) -> list[tuple[str, Any]]:
    return [(p.name, p.kind) for p in inspect.signature(fn).parameters.values()
            if p.name != "self"]


@pytest.mark.parametrize("method", ["generate", "generate_async", "list_models",
                                    "list_models_async"])
def test_same_signatures(method: str) -> None:
    from openrouter.embeddings import Embeddings as Theirs

    from embedrouter.sdk import Embeddings as Ours

    assert _params(getattr(Ours, method)) == _params(getattr(Theirs, method))
    assert _params(EmbedRouter.__init__) == _params(openrouter.OpenRouter.__init__)


def test_defaults_match_theirs() -> None:
    from openrouter.utils import BackoffStrategy as TheirBackoff

    from embedrouter.sdk import BackoffStrategy, Embeddings, RetryConfig
    from embedrouter.sdk._backoff import DEFAULT_RETRY

    theirs = inspect.signature(openrouter.embeddings.Embeddings.list_models).parameters
    ours = inspect.signature(Embeddings.list_models).parameters
    assert (ours["offset"].default, ours["limit"].default) == (
        theirs["offset"].default, theirs["limit"].default) == (0, 500)
    assert RetryConfig("backoff", BackoffStrategy(500, 60_000, 1.5, 3_600_000),
                                        True) == DEFAULT_RETRY
    assert [p.name for p in inspect.signature(TheirBackoff).parameters.values()] == [
        f.name for f in dataclasses.fields(BackoffStrategy)]
