"""An endpoint: one provider serving one model, with its price, caps and data policy.

A model may have several endpoints; they must all serve the same embedding space (same weights,
same output), which is what makes falling back between them safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    provider: str  # slug used in provider.order / only / ignore, lowercase; may be "base/variant"
    display_name: str  # the response's `provider`
    upstream_model: str  # the id the upstream knows the model by (the response's `model`)
    price_per_million: Decimal = Decimal(0)  # USD per 1M input tokens
    max_inputs: int | None = None  # per upstream call
    max_tokens: int | None = None  # per upstream call, summed over its inputs
    supports_dimensions: bool = False
    quantization: str = "unknown"
    data_collection: str = "allow"  # "deny": the upstream neither stores nor trains on inputs
    zdr: bool = False
    # None for the standard tier; "priority" endpoints are eligible only through `:nitro` or an
    # explicit slug, "flex" ones only through `:floor` or an explicit slug.
    tier: str | None = None
    supported_params: frozenset[str] = field(default_factory=frozenset)

    @property
    def base_slug(self) -> str:
        return self.provider.split("/", 1)[0]

    def cost(self, tokens: int) -> Decimal:
        return self.price_per_million * tokens / MILLION


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One ``[[providers]]`` entry, with its key read from the environment at start."""

    name: str  # slug, lowercase
    kind: str  # adapter
    base_url: str
    api_key: str | None = None
    display_name: str = ""
    timeout_s: float = 30.0
    max_concurrency: int = 16
    options: Mapping[str, Any] = field(default_factory=dict)  # adapter-specific keys

    @property
    def shown_name(self) -> str:
        return self.display_name or self.name
