"""[[providers]] and remote [[models]]: schema errors name the entry and field; keys enable."""

from __future__ import annotations

from decimal import Decimal

import pytest

from embedrouter.catalog.config import ConfigError, resolve

BUILTIN = {
    "providers": [
        {"name": "openai", "kind": "openai", "base_url": "https://api.openai.com/v1",
         "api_key_env": "OPENAI_API_KEY", "display_name": "OpenAI"},
        {"name": "voyage", "kind": "voyage", "base_url": "https://api.voyageai.com/v1",
         "api_key_env": "VOYAGE_API_KEY"},
    ],
    "models": [
        {"slug": "openai/text-embedding-3-small", "dimensions": 1536, "context_length": 8191,
         "matryoshka": True, "endpoints": [
             {"provider": "openai", "upstream_model": "text-embedding-3-small",
              "price_per_million": "0.02", "max_inputs": 2048, "max_tokens": 300000,
              "supports_dimensions": True}]},
        {"slug": "voyageai/voyage-3", "dimensions": 1024, "context_length": 32000,
         "endpoints": [{"provider": "voyage", "upstream_model": "voyage-3",
                        "price_per_million": 0.06}]},
    ],
}


def test_a_provider_is_enabled_by_its_key() -> None:
    states, models = resolve([], [], {"OPENAI_API_KEY": "sk-test"}, source="c.toml",
                             builtin=BUILTIN)
    by = {s.config.name: s for s in states}
    assert by["openai"].enabled and by["openai"].reason == "OPENAI_API_KEY is set"
    assert not by["voyage"].enabled and by["voyage"].reason == "VOYAGE_API_KEY is not set"
    assert by["openai"].config.api_key == "sk-test"
    assert [m.slug for m in models] == ["openai/text-embedding-3-small"]
    ep = models[0].endpoints[0]
    assert ep.price_per_million == Decimal("0.02") and ep.max_tokens == 300000
    assert ep.display_name == "OpenAI" and ep.supported_params == frozenset({"dimensions"})


def test_user_entries_override_and_keyless_local_servers_are_enabled() -> None:
    user_providers = [{"name": "ollama", "kind": "ollama", "base_url": "http://127.0.0.1:11434"},
                      {"name": "openai", "kind": "openai", "base_url": "http://127.0.0.1:9/v1",
                       "api_key_env": "MY_KEY", "timeout_s": 5}]
    user_models = [{"slug": "nomic/nomic-embed-text", "dimensions": 768, "context_length": 2048,
                    "endpoints": [{"provider": "ollama", "upstream_model": "nomic-embed-text"}]}]
    states, models = resolve(user_providers, user_models, {"MY_KEY": "k"}, source="c.toml",
                             builtin=BUILTIN)
    by = {s.config.name: s for s in states}
    assert by["ollama"].enabled and by["openai"].config.base_url == "http://127.0.0.1:9/v1"
    assert by["openai"].config.timeout_s == 5 and not by["openai"].builtin
    assert {m.slug for m in models} == {"openai/text-embedding-3-small", "nomic/nomic-embed-text"}


@pytest.mark.parametrize(("providers", "models", "message"), [
    ([{"name": "x", "kind": "openai", "base_url": "http://h", "timeout_s": "soon"}], [],
     'c.toml: providers[0].timeout_s (name "x"): Expected `float`, got `str`'),
    ([{"name": "x", "kind": "nope", "base_url": "http://h"}], [], "providers[0].kind"),
    ([{"name": "x", "kind": "openai", "base_url": "http://h", "api_version": "1"}], [],
     "unknown keys ['api_version'] for kind 'openai'"),
    ([{"name": "X", "kind": "openai", "base_url": "http://h"}], [], "providers[0].name"),
    ([{"name": "x", "kind": "openai", "base_url": "ftp://h"}], [], "providers[0].base_url"),
    ([], [{"slug": "a/b", "dimensions": 4, "context_length": 8, "endpoints": [
        {"provider": "openai", "upstream_model": "m", "price_per_million": "free"}]}],
     "models[0].endpoints[0].price_per_million"),
    ([], [{"slug": "a/b", "dimensions": 4, "context_length": 8, "endpoints": [
        {"provider": "nobody", "upstream_model": "m"}]}],
     'c.toml: models[0].endpoints[0].provider (slug "a/b"): no provider named \'nobody\''),
    ([], [{"slug": "a/b", "dimensions": 4, "context_length": 8, "endpoints": []}],
     'c.toml: models[0].endpoints (slug "a/b"): Expected `array` of length >= 1'),
    ([], [{"slug": "a/b", "dimensions": 4, "context_length": 8, "endpoints": [
        {"provider": "openai", "upstream_model": "m", "max_inputs": 0}]}],
     'c.toml: models[0].endpoints[0].max_inputs (slug "a/b"): Expected `int` >= 1'),
])
def test_errors_name_the_file_the_entry_and_the_field(providers: list, models: list,
                                                      message: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(providers, models, {}, source="c.toml", builtin=BUILTIN)
    assert message in str(info.value)
