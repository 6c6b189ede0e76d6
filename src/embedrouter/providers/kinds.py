"""Adapter kinds: the ``kind`` of a ``[[providers]]`` entry -> the adapter class that speaks it,
and a ``ProviderConfig`` from such an entry (the keys every provider has; the rest are options)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from embedrouter.providers.azure import AzureAdapter
from embedrouter.providers.cohere import CohereAdapter
from embedrouter.providers.gemini import GeminiAdapter
from embedrouter.providers.ollama import OllamaAdapter
from embedrouter.providers.openai_compat import OpenAICompatAdapter
from embedrouter.providers.tei import TeiAdapter
from embedrouter.providers.upstream import Adapter, ProviderConfig
from embedrouter.providers.vertex import VertexAdapter
from embedrouter.providers.voyage import VoyageAdapter

ADAPTERS: dict[str, Any] = {
    "openai": OpenAICompatAdapter, "azure": AzureAdapter, "cohere": CohereAdapter,
    "voyage": VoyageAdapter, "gemini": GeminiAdapter, "vertex": VertexAdapter,
    "ollama": OllamaAdapter, "tei": TeiAdapter,
}
PROVIDER_KEYS = frozenset({"name", "kind", "base_url", "api_key_env", "display_name",
                           "timeout_s", "max_concurrency"})


def provider_config(table: Mapping[str, Any], env: Mapping[str, str]) -> ProviderConfig:
    """A ``ProviderConfig`` from one ``[[providers]]`` table, its key read from ``env``."""
    kind = str(table["kind"])
    if kind not in ADAPTERS:
        raise ValueError(f"provider {table.get('name')!r}: unknown kind {kind!r} "
                         f"(known: {', '.join(sorted(ADAPTERS))})")
    key_env = table.get("api_key_env")
    return ProviderConfig(
        name=str(table["name"]).lower(), kind=kind, base_url=str(table["base_url"]),
        api_key=(env.get(str(key_env)) or None) if key_env else None,
        display_name=str(table.get("display_name", "")),
        timeout_s=float(table.get("timeout_s", 30.0)),
        max_concurrency=int(table.get("max_concurrency", 16)),
        options={k: v for k, v in table.items() if k not in PROVIDER_KEYS})


def adapter_for(config: ProviderConfig, http: Any) -> Adapter:
    adapter: Adapter = ADAPTERS[config.kind](config, http)
    return adapter
