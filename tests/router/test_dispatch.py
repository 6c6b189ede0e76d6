"""Fan-out, fallback and reassembly, with scripted in-process adapters (the wire formats are
tested against real HTTP servers in tests/providers): property tests over random batches, caps,
failure masks and reply orders."""

from __future__ import annotations

import asyncio
import hashlib
import random
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedrouter.catalog.endpoints import EndpointSpec
from embedrouter.errors import UpstreamError
from embedrouter.providers.upstream import (
    AttemptFailure,
    ProviderConfig,
    UpstreamCall,
    UpstreamReply,
)
from embedrouter.router.dispatch import Dispatcher, estimate_tokens
from embedrouter.router.health import HealthBook
from embedrouter.router.selection import Plan

DIM = 8


def vector(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


class Scripted:
    """Embeds deterministically; fails calls as its script says; answers in a shuffled order."""

    def __init__(self, name: str, *, fail: object = None, usage: bool = True, seed: int = 0,
                 max_inputs: int | None = None, delay: float = 0.0) -> None:
        self.config = ProviderConfig(name=name, kind="test", base_url="http://x")
        self.fail = fail  # None, a kind, or a callable(call, n) -> kind | None
        self.usage = usage
        self.rng = random.Random(seed)
        self.calls: list[list[str]] = []
        self.max_inputs = max_inputs
        self.delay = delay

    async def embed(self, call: UpstreamCall) -> UpstreamReply:
        texts = [str(x) for x in call.inputs]
        self.calls.append(texts)
        if self.delay:
            await asyncio.sleep(self.delay)
        kind = self.fail(call, len(self.calls)) if callable(self.fail) else self.fail
        if self.max_inputs is not None and len(texts) > self.max_inputs:
            kind = "too_large"
        if kind:
            raise AttemptFailure(kind=kind, provider=self.config.name, message=kind,
                                 retry_after=2.0 if kind == "rate_limited" else None)
        order = list(range(len(texts)))
        self.rng.shuffle(order)
        rows = np.stack([vector(texts[i]) for i in order])
        tokens = sum(estimate_tokens(t) for t in texts) if self.usage else None
        return UpstreamReply(rows, order, tokens)

    async def close(self) -> None:
        return None


def ep(name: str, price: str = "1", **kw: object) -> EndpointSpec:
    return EndpointSpec(provider=name, display_name=name.title(), upstream_model="m",
                        price_per_million=Decimal(price), **kw)  # type: ignore[arg-type]


async def run(adapters: list[Scripted], endpoints: list[EndpointSpec], texts: list[str],
              **kw: object):  # type: ignore[no-untyped-def]
    d = Dispatcher({a.config.name: a for a in adapters})
    return await d.run(Plan(tuple(endpoints)), texts, slug="a/m", upstream_dimensions=None,
                       input_type=None, deadline_s=kw.pop("deadline_s", 10.0))  # type: ignore[arg-type]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=40),
       caps=st.lists(st.tuples(st.one_of(st.none(), st.integers(1, 9)),
                               st.one_of(st.none(), st.integers(5, 60))), min_size=1, max_size=3),
       masks=st.lists(st.integers(0, 2**16 - 1), min_size=3, max_size=3),
       usage=st.booleans(), seed=st.integers(0, 1000))
def test_result_equals_each_input_alone_in_order(texts: list[str], caps: list, masks: list[int],
                                                 usage: bool, seed: int) -> None:
    # Every endpoint but the last fails the calls its bit mask picks; the last always answers.
    n = len(caps)

    def failing(mask: int):  # type: ignore[no-untyped-def]
        return lambda call, i: ("unavailable" if mask >> (i % 16) & 1 else None)

    adapters = [Scripted(f"p{i}", fail=None if i == n - 1 else failing(masks[i]), usage=usage,
                         seed=seed + i) for i in range(n)]
    endpoints = [ep(f"p{i}", str(i + 1), max_inputs=c[0], max_tokens=c[1])
                 for i, c in enumerate(caps)]
    got = asyncio.run(run(adapters, endpoints, texts))
    np.testing.assert_array_equal(got.vectors, np.stack([vector(t) for t in texts]))
    assert got.prompt_tokens == sum(estimate_tokens(t) for t in texts)
    assert got.estimated == (not usage)
    served = [t for a in adapters for call in a.calls for t in call]
    assert set(served) >= set(texts)
    for a, e in zip(adapters, endpoints, strict=True):
        for call in a.calls:
            assert e.max_inputs is None or len(call) <= e.max_inputs


async def test_too_large_is_halved_on_the_same_endpoint() -> None:
    a = Scripted("a", max_inputs=3)
    got = await run([a], [ep("a")], [f"t{i}" for i in range(10)])
    assert got.vectors.shape == (10, DIM)
    assert max(len(c) for c in a.calls if len(c) <= 3) <= 3


@pytest.mark.parametrize(("kinds", "status"), [
    (["rate_limited", "rate_limited"], 429), (["overloaded", "overloaded"], 529),
    (["timeout", "timeout"], 504), (["unavailable", "timeout"], 502),
])
async def test_every_endpoint_failing(kinds: list[str], status: int) -> None:
    adapters = [Scripted(f"p{i}", fail=k) for i, k in enumerate(kinds)]
    with pytest.raises(UpstreamError) as info:
        await run(adapters, [ep(f"p{i}") for i in range(len(kinds))], ["x", "y"])
    assert info.value.status == status
    if status == 429:
        assert info.value.headers["retry-after"] == "2"


async def test_non_retryable_400_does_not_fall_back() -> None:
    a, b = Scripted("a", fail="bad_request"), Scripted("b")
    with pytest.raises(UpstreamError) as info:
        await run([a, b], [ep("a"), ep("b")], ["x"])
    assert info.value.status == 400 and b.calls == []


async def test_deadline_is_524() -> None:
    slow = Scripted("slow", delay=2.0)
    with pytest.raises(UpstreamError) as info:
        await run([slow], [ep("slow")], ["x"], deadline_s=0.1)
    assert info.value.status == 524


async def test_rate_limit_puts_the_endpoint_to_rest() -> None:
    book = HealthBook(clock=lambda: 100.0)
    d = Dispatcher({"a": Scripted("a", fail="rate_limited"), "b": Scripted("b")}, book)
    got = await d.run(Plan((ep("a"), ep("b"))), ["x"], slug="a/m", upstream_dimensions=None,
                      input_type=None, deadline_s=5)
    assert got.served_by.provider == "b"
    snap = book.snapshot()
    assert snap["a"].rate_limited_until == 102.0 and snap["b"].latency is not None


async def test_nothing_to_try() -> None:
    with pytest.raises(UpstreamError) as info:
        await run([], [ep("a")], ["x"])
    assert info.value.status == 503
    d = Dispatcher({"a": Scripted("a")})
    with pytest.raises(UpstreamError) as rest:
        await d.run(Plan((), ((ep("a"), d.health.now() + 5),)), ["x"], slug="a/m",
                    upstream_dimensions=None, input_type=None, deadline_s=5)
    assert rest.value.status == 429


async def test_cost_is_exact_per_endpoint() -> None:
    got = await run([Scripted("a")], [ep("a", "0.02")], ["abc"] * 3)
    assert got.cost == Decimal("0.02") * 3 / 1_000_000
