"""Adapter classes by ``kind``, imported only when a provider of that kind is enabled."""

from __future__ import annotations

import importlib
from typing import Any

from embedrouter.catalog.endpoints import ProviderConfig
from embedrouter.providers.upstream import Adapter

# kind -> "module:Class" under embedrouter.providers
ADAPTERS = {
    "openai": "openai_compat:OpenAICompatAdapter",
    "azure": "azure:AzureAdapter",
    "cohere": "cohere:CohereAdapter",
    "voyage": "voyage:VoyageAdapter",
    "gemini": "gemini:GeminiAdapter",
    "vertex": "vertex:VertexAdapter",
    "ollama": "ollama:OllamaAdapter",
    "tei": "tei:TEIAdapter",
}


def adapter_for(config: ProviderConfig, http: Any) -> Adapter:
    """The adapter that speaks ``config.kind``; a kind without one stops the start."""
    target = ADAPTERS.get(config.kind)
    if target is None:
        raise ValueError(f"provider {config.name!r}: no adapter for kind {config.kind!r}")
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(f"embedrouter.providers.{module_name}")
    except ModuleNotFoundError as exc:
        raise ValueError(f"provider {config.name!r}: the {config.kind!r} adapter is not "
                         f"available in this build ({exc.name})") from None
    return getattr(module, cls_name)(config, http)
