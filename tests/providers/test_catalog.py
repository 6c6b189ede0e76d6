"""The built-in catalog: well-formed, every provider buildable into its adapter, and the options
it gives the OpenAI-format providers produce the bodies those providers expect."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from importlib.resources import files
from typing import Any

import pytest

from embedrouter.catalog.config import ConfigError, ProviderState, resolve
from embedrouter.providers.registry import ADAPTERS, adapter_for
from embedrouter.providers.upstream import ProviderConfig, UpstreamCall

CATALOG: dict[str, Any] = tomllib.loads(
    files("embedrouter.catalog").joinpath("builtin.toml").read_text("utf-8"))
PROVIDERS = {p["name"]: p for p in CATALOG["providers"]}
ENDPOINT_KEYS = {"provider", "upstream_model", "price_per_million", "max_inputs", "max_tokens",
                 "supports_dimensions"}


def test_providers_are_unique_and_of_known_kinds() -> None:
    assert len(PROVIDERS) == len(CATALOG["providers"])
    for p in CATALOG["providers"]:
        assert p["kind"] in ADAPTERS
        assert p["base_url"].startswith(("https://", "http://127.0.0.1"))
        assert p["api_key_env"].isupper() and p["timeout_s"] > 0 and p["max_concurrency"] > 0


@pytest.mark.parametrize("model", CATALOG["models"], ids=lambda m: m["slug"])
def test_models(model: dict[str, Any]) -> None:
    assert model["slug"] == model["slug"].lower() and "/" in model["slug"]
    assert model["dimensions"] > 0 and model["context_length"] > 0
    assert isinstance(model["matryoshka"], bool)
    assert model["endpoints"]
    for ep in model["endpoints"]:
        assert set(ep) <= ENDPOINT_KEYS and ep["provider"] in PROVIDERS
        assert isinstance(ep["price_per_million"], str)  # exact decimals, never floats
        assert Decimal(ep["price_per_million"]) >= 0
        for cap in ("max_inputs", "max_tokens"):
            assert ep.get(cap, 1) >= 1
        # Shortening a vector is only safe for a model trained for it.
        assert not ep["supports_dimensions"] or model["matryoshka"]


def test_slugs_are_unique() -> None:
    slugs = [m["slug"] for m in CATALOG["models"]]
    assert len(slugs) == len(set(slugs))


def _states(env: dict[str, str]) -> dict[str, ProviderState]:
    states, _ = resolve([], [], env, source="test", builtin=CATALOG)
    return {s.config.name: s for s in states}


def provider_config(table: dict[str, Any], env: dict[str, str]) -> ProviderConfig:
    return _states(env)[table["name"]].config


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_every_provider_builds_its_adapter(name: str) -> None:
    config = provider_config(PROVIDERS[name], {PROVIDERS[name]["api_key_env"]: "k"})
    adapter = adapter_for(config, http=None)
    assert adapter.config.api_key == "k"
    assert type(adapter).__name__ == ADAPTERS[config.kind].partition(":")[2]
    assert "api_key_env" not in config.options and "kind" not in config.options


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ConfigError, match="kind"):
        resolve([{"name": "x", "kind": "bedrock", "base_url": "http://127.0.0.1"}], [], {},
                source="test", builtin=CATALOG)


def test_missing_key_env_gives_no_key_and_disables() -> None:
    state = _states({})["openai"]
    assert state.config.api_key is None and not state.enabled


def test_the_builtin_catalog_resolves_with_every_key_set() -> None:
    env = {p["api_key_env"]: "k" for p in CATALOG["providers"]}
    states, models = resolve([], [], env, source="test", builtin=CATALOG)
    assert all(s.enabled for s in states)
    assert {m.slug for m in models} == {m["slug"] for m in CATALOG["models"]}


@pytest.mark.parametrize(("provider", "call", "expected"), [
    ("nvidia", UpstreamCall(["a"], "m", input_type="search_document"),
     {"input_type": "passage", "encoding_format": "base64"}),
    ("jina", UpstreamCall(["a"], "m", input_type="query", dimensions=64),
     {"task": "retrieval.query", "dimensions": 64}),
    ("mistral", UpstreamCall(["a"], "m", dimensions=256),
     {"output_dimension": 256, "encoding_format": "base64"}),
])
def test_openai_format_options(provider: str, call: UpstreamCall, expected: dict[str, Any]
                               ) -> None:
    adapter = adapter_for(provider_config(PROVIDERS[provider], {}), http=None)
    assert adapter.body(call) == {"model": "m", "input": ["a"], **expected}


class _Recording(dict):  # type: ignore[type-arg]
    """Options that remember every key an adapter looks up."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)


@pytest.mark.parametrize("kind", sorted(ADAPTERS))
def test_the_config_schema_allows_every_option_an_adapter_reads(kind: str) -> None:
    from embedrouter.catalog.config import KIND_OPTIONS

    options = _Recording()
    config = ProviderConfig(name="x", kind=kind, base_url="http://127.0.0.1:9", api_key="k",
                            options=options)
    adapter = adapter_for(config, http=None)
    adapter.body(UpstreamCall(["a"], "m", dimensions=8, input_type="query"))
    # Both ways: nothing an adapter reads is refused at start, nothing allowed is ignored.
    # (`path` is read by the shared request cycle; adapters that build their URL per call, the
    # Google ones, do not offer it.)
    assert options.asked - {"path"} == KIND_OPTIONS[kind] - {"path"}
