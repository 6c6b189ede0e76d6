"""The one seam every provider adapter implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from embedrouter.catalog import ModelSpec
from embedrouter.types import TextInput, TokenInput


@dataclass(slots=True)
class ProviderResult:
    """Rows in the order of the inputs given, and the tokens the provider counted."""

    vectors: np.ndarray
    prompt_tokens: int
    truncated: int = 0
    input_tokens: list[int] | None = None  # per input, where the provider counts each


class Provider(Protocol):
    """Embed one batch of already-validated inputs for one catalog model."""

    name: str

    async def embed(
        self,
        model: ModelSpec,
        inputs: Sequence[TextInput | TokenInput],
        *,
        input_type: str | None,
        quantization: str | None = None,
    ) -> ProviderResult:
        """``quantization``: which of the model's precisions computes it (None: its default)."""
        ...

    def stats(self) -> dict[str, dict[str, float]]:
        """Per-model gauges for /metrics (queue depth, batches, tokens)."""
        ...

    async def close(self) -> None: ...
