"""What a request may cost at most, before any provider is called (pure functions).

Local model: its tokenizer has counted, so the quote is exact. Remote model: the upstream's
tokenizer is not ours, so the bound is the UTF-8 byte count of each text (a byte-level BPE
never makes more tokens than bytes; WordPiece and SentencePiece pieces cover at least one
character each) plus ``SPECIAL_TOKENS_PER_INPUT`` for the markers a tokenizer may add, priced
at the most expensive endpoint the plan may fall back to.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from embedrouter.catalog import ModelSpec
from embedrouter.catalog.endpoints import MILLION, EndpointSpec
from embedrouter.types import Quote

SPECIAL_TOKENS_PER_INPUT = 4


def token_bound(items: Sequence[str | Sequence[int]]) -> int:
    """At least as many tokens as any upstream tokenizer will count for ``items``."""
    total = 0
    for item in items:
        total += len(item.encode("utf-8")) if isinstance(item, str) else len(item)
    return total + SPECIAL_TOKENS_PER_INPUT * len(items)


def remote_quote(slug: str, endpoints: Iterable[EndpointSpec],
                 items: Sequence[str | Sequence[int]]) -> Quote:
    tokens = token_bound(items)
    price = max((ep.price_per_million for ep in endpoints), default=Decimal(0))
    return Quote(model=slug, tokens=tokens, cost=price * tokens / MILLION)


def local_quote(spec: ModelSpec, tokens: int) -> Quote:
    return Quote(model=spec.slug, tokens=tokens, cost=spec.cost(tokens))


def bounded_quote(spec: ModelSpec, endpoints: Iterable[EndpointSpec],
                  items: Sequence[str | Sequence[int]]) -> Quote:
    """A bound for any model before its inputs are tokenized (the vector cache's path): for a
    local model the byte bound of ``token_bound`` also holds (WordPiece pieces cover at least
    one character), plus its longest ``input_type`` prefix per input, at its own price."""
    if not spec.is_local:
        return remote_quote(spec.slug, endpoints, items)
    prefix = max((len(p.encode("utf-8")) for p in spec.input_prefixes.values()), default=0)
    return local_quote(spec, token_bound(items) + prefix * len(items))
