"""Shared vocabulary: the request, input and result types every layer speaks.

Raw wire JSON never travels past ``api/``; upstream JSON never leaves its adapter. What moves
between the layers are these small frozen structures.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import numpy as np

EncodingFormat = Literal["float", "base64"]


@dataclass(frozen=True, slots=True)
class TextInput:
    """One text to embed."""

    text: str


@dataclass(frozen=True, slots=True)
class TokenInput:
    """One pre-tokenized input: the model's own token ids."""

    ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class MediaPart:
    """A non-text part of a multimodal input (image, audio, video, file)."""

    kind: Literal["image_url", "input_audio", "input_video", "input_file"]
    data: str
    format: str | None = None


@dataclass(frozen=True, slots=True)
class MultimodalInput:
    """One ``{"content": [...]}`` item: all its parts give one joint embedding."""

    parts: tuple[TextInput | MediaPart, ...]


Input = TextInput | TokenInput | MultimodalInput


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """A validated embeddings request, whatever entry point it came from."""

    model: str
    inputs: tuple[Input, ...]
    encoding_format: EncodingFormat = "float"
    dimensions: int | None = None
    input_type: str | None = None
    user: str | None = None
    provider: dict[str, Any] | None = None
    session_id: str | None = None
    trace: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    total_tokens: int
    cost: Decimal = Decimal(0)
    estimated: bool = False  # an upstream left usage out; the router counted the tokens
    # Of prompt_tokens, those of inputs served from the cache; None: the cache took no part
    # (off, or Cache-Control: no-store), and the response leaves prompt_tokens_details out.
    cached_tokens: int | None = None


@dataclass(slots=True)
class EmbeddingResult:
    """Vectors in input order, one row per input, float32, plus what it cost."""

    vectors: np.ndarray
    model: str
    provider: str
    usage: Usage
    truncated: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # Per input, the tokens counted for it (what the cache stores with its vector); exact when
    # each is the provider's own count, not a share of a batch's total.
    input_tokens: Sequence[int] | None = None
    input_tokens_exact: bool = False
    cache: str | None = None  # hit | miss | partial, when the cache took part


@dataclass(frozen=True, slots=True)
class Quote:
    """The most a request can cost, known before any provider is called.

    ``tokens`` and ``cost`` are upper bounds: exact for a local model (its own tokenizer has
    counted), and for a remote one the UTF-8 byte count (plus a few special tokens per input)
    at the highest price among the endpoints the plan may try.
    """

    model: str  # the catalog slug
    tokens: int
    cost: Decimal


# Called by the router exactly once per request, after the quote is known and before any
# provider is called; raising refuses the request (402, 429) with nothing spent.
Reserve = Callable[[Quote], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Computed:
    """What a request costs, known the moment a local model has computed its vectors: the
    exact count its quote reserved, priced by the endpoint that computed it."""

    tokens: int
    cost: Decimal
    model: str  # as the result names it (the upstream id)
    provider: str  # as the result names it (the endpoint's display name)


# Called by the router at most once per request, on the event loop, as soon as a local model has
# the request's vectors and before the result is assembled: admission queues the charge there,
# so the ledger's commit is under way while the waiting requests wake and build their results
# (the commit was the largest part of what accounting added to a local request's latency).
# A request that reached it is charged exactly that; it must not raise.
OnComputed = Callable[[Computed], None]
