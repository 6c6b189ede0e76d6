"""The OpenAPI document against the code: every route the app serves is described with its
methods, and the account views send exactly the fields, and types, their schemas declare."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema_rs
import orjson
import pytest

from embedrouter.accounts.usage import Balance, KeyUsage
from embedrouter.api import account_views as views
from embedrouter.api.app import App
from embedrouter.api.openapi import openapi_document
from embedrouter.api.views import API_PREFIX
from embedrouter.store import KeyRecord
from embedrouter.store.records import GenerationRecord

DOC = openapi_document()
HASH = "ab" * 32


async def _never() -> Any:
    raise AssertionError("services are not built in these tests")


def _methods(item: dict[str, Any]) -> set[str]:
    return {m.upper() for m in item if m != "parameters"}


def test_the_document_describes_every_route_with_its_methods() -> None:
    app = App(_never)
    served = {path.removeprefix(API_PREFIX): set(methods)
              for path, methods in app._routes.items() if path.startswith(f"{API_PREFIX}/")}
    key_routes = app._key_routes(f"{API_PREFIX}/keys/{HASH}")
    assert key_routes is not None
    served["/keys/{hash}"] = set(key_routes)
    served["/models/{author}/{slug}/endpoints"] = {"GET"}
    assert {path: _methods(item) for path, item in DOC["paths"].items()} == served


def _strict(name: str) -> jsonschema_rs.Validator:
    """A validator for component ``name`` in which no object may have undeclared fields."""
    schemas = copy.deepcopy(DOC["components"]["schemas"])

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                node.setdefault("additionalProperties", False)
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schemas)
    return jsonschema_rs.validator_for(
        {"$ref": f"#/components/schemas/{name}", "components": {"schemas": schemas}},
        validate_formats=True)


def _wire(body: dict[str, Any]) -> Any:
    return orjson.loads(orjson.dumps(body))  # amounts are exact-decimal fragments until sent


def _assert_matches(name: str, body: dict[str, Any]) -> None:
    errors = [f"{list(err.instance_path)}: {err.message}"
              for err in _strict(name).iter_errors(_wire(body))]
    assert not errors, errors


def _key(**kw: Any) -> KeyRecord:
    return KeyRecord(key_hash=HASH, label="team", is_management=False, disabled=False,
                     created_at=1_760_000_000, display="sk-er-v1-abc…def", **kw)


NO_LIMIT = (_key(), KeyUsage(1500, 10, 20, 30, None, None))
LIMITED = (_key(limit_nanos=2_000_000_000, limit_reset="weekly", rpm=60, tpm=None,
                updated_at=1_760_000_100),
           KeyUsage(1500, 10, 20, 30, 1_999_999_980, 1_760_400_000_000))


@pytest.mark.parametrize(("key", "usage"), [NO_LIMIT, LIMITED])
def test_key_views_send_exactly_the_documented_fields(key: KeyRecord, usage: KeyUsage) -> None:
    _assert_matches("CurrentKeyResponse",
                    views.current_key(key, usage, views.rate_limits(key, 100, None)))
    _assert_matches("ApiKeyResponse", {"data": views.key_object(key, usage)})
    _assert_matches("CreatedApiKeyResponse",
                    {"data": views.key_object(key, usage), "key": "sk-er-v1-" + "0" * 64})


def test_credits_and_generation_views_send_exactly_the_documented_fields() -> None:
    _assert_matches("CreditsResponse", views.credits_view(Balance(10**9, 4_000_000)))
    record = GenerationRecord(id="gen-emb-1760000000-abc", key_hash=HASH, model="a/b",
                              upstream_model="b", provider="Local", tokens=4, cost_nanos=4000,
                              created_ms=1_760_000_000_123, latency_ms=12)
    _assert_matches("GenerationResponse", views.generation_view(record))


def test_the_strict_check_catches_a_field_the_schema_does_not_declare() -> None:
    body = views.credits_view(Balance(1, 0))
    body["data"]["surprise"] = 1
    with pytest.raises(AssertionError, match="surprise"):
        _assert_matches("CreditsResponse", body)
