"""Serve one request's inputs from the cache where possible, and compute only the rest.

The order of work for a request whose inputs have keys ``k[0..n)``:

1. Equal keys in the batch are looked up and computed once (the first position stands for all).
2. Lookup through the tiers (unless the request may not read).
3. A miss that another request of this instance is already computing is awaited, not sent
   again (single flight). Every other miss goes to ``compute`` in one call, which the router
   splits to the endpoints' caps.
4. Rows are merged by key, so each position gets the vector of its own input, whatever order the
   upstream answered in and however hits and misses interleave.

A leader that fails or is cancelled (its client went away) releases its followers, which then
compute those inputs themselves: an error never crosses from one request to another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from embedrouter.cache.entry import Entry
from embedrouter.cache.keys import input_keys, space_key
from embedrouter.cache.policy import CacheMode
from embedrouter.cache.tiers import Tiers
from embedrouter.catalog import ModelSpec
from embedrouter.types import EmbeddingResult, TextInput, TokenInput

# Computes the inputs at the given request positions; rows and per-input token counts come back
# in that order.
Compute = Callable[[list[int]], Awaitable[EmbeddingResult]]


@dataclass(slots=True)
class Served:
    vectors: np.ndarray  # one row per request position
    cached_tokens: int  # tokens of the positions not computed by this request
    cached_inputs: int
    computed: list[EmbeddingResult] = field(default_factory=list)  # this request's own calls
    computed_keys: set[bytes] = field(default_factory=set)
    estimated: bool = False  # some hit's count is a share of its batch's total, not its own

    @property
    def status(self) -> str:
        if not self.computed:
            return "hit"
        return "partial" if self.cached_inputs else "miss"


@dataclass(slots=True)
class FlightCounters:
    led: int = 0  # inputs this instance computed
    joined: int = 0  # inputs that waited on another request's computation instead
    released: int = 0  # joined inputs whose leader failed, so they were computed again


class VectorCache:
    """The cache as the router sees it: keys for a request, and ``serve``."""

    def __init__(self, tiers: Tiers, *, hit_price_fraction: Decimal = Decimal(0)) -> None:
        self.tiers = tiers
        self.hit_price_fraction = hit_price_fraction
        self.flight = FlightCounters()
        # Owned by the event loop: a key is here while one request computes it.
        self._flights: dict[bytes, asyncio.Future[Entry]] = {}

    def keys(self, spec: ModelSpec, inputs: Sequence[TextInput | TokenInput], *, width: int,
             input_type: str | None) -> list[bytes] | None:
        """One key per input, or None where the model has no fingerprint (never cached)."""
        if not spec.fingerprint:
            return None
        prefix = spec.input_prefixes.get(input_type, "") if input_type is not None else ""
        space = space_key(spec.fingerprint, context_length=spec.context_length, width=width,
                          input_type=input_type, prefix=prefix)
        return input_keys(space, inputs)

    async def serve(self, keys: Sequence[bytes], *, width: int, mode: CacheMode,
                    compute: Compute) -> Served:
        first: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        found = await self.tiers.get_many(list(first), width) if mode.read else {}
        todo = [k for k in first if k not in found]
        mine, waits = todo, {}
        if mode.read and self._flights:
            # Only a request that may read shares another's computation (no-cache asks for its
            # own); it is fresh either way, but that is what the client asked for.
            waits = {k: f for k in todo if (f := self._flights.get(k)) is not None}
            mine = [k for k in todo if k not in waits]
        served = Served(vectors=np.empty((0, width), np.float32), cached_tokens=0,
                        cached_inputs=0)
        if mine:
            await self._lead(mine, first, found, served, width, mode, compute)
        if waits:
            await asyncio.wait(waits.values())  # never cancels them: they are not ours
            released = [k for k, f in waits.items() if f.cancelled()]
            for k, f in waits.items():
                if not f.cancelled():
                    found[k] = f.result()
            self.flight.joined += len(waits) - len(released)
            self.flight.released += len(released)
            if released:
                await self._lead(released, first, found, served, width, mode, compute)
        return self._merge(keys, first, found, served)

    async def _lead(self, keys: list[bytes], first: dict[bytes, int],
                    found: dict[bytes, Entry], served: Served, width: int, mode: CacheMode,
                    compute: Compute) -> None:
        loop = asyncio.get_running_loop()
        own: dict[bytes, asyncio.Future[Entry]] = {}
        for k in keys:
            if k not in self._flights:
                own[k] = self._flights[k] = loop.create_future()
        try:
            result = await compute([first[k] for k in keys])
            entries = _entries(keys, result, width)
            for k, fut in own.items():
                if k in entries:
                    fut.set_result(entries[k])
            self.flight.led += len(keys)
            found.update(entries)
            served.computed.append(result)
            served.computed_keys.update(keys)
            if mode.write:
                await self.tiers.put_many(entries)
        finally:
            for k, fut in own.items():
                if not fut.done():
                    fut.cancel()  # its followers compute for themselves
                if self._flights.get(k) is fut:
                    del self._flights[k]

    def stats(self) -> dict[str, dict[str, float]]:
        """Per backend, plus the single-flight counters under ``single_flight``."""
        out = self.tiers.stats()
        out["single_flight"] = {"led_total": self.flight.led, "joined_total": self.flight.joined,
                                "released_total": self.flight.released,
                                "in_flight": len(self._flights)}
        return out

    async def close(self) -> None:
        await self.tiers.close()

    @staticmethod
    def _merge(keys: Sequence[bytes], first: dict[bytes, int], found: dict[bytes, Entry],
               served: Served) -> Served:
        uniq = list(first)
        if not uniq:
            return served
        rows = np.stack([found[k].vector for k in uniq])
        if len(uniq) == len(keys):
            served.vectors = rows  # no duplicates: ``first`` is in position order
        else:
            at = {k: j for j, k in enumerate(uniq)}
            served.vectors = rows[[at[k] for k in keys]]
        for i, k in enumerate(keys):
            # The first position of a key this request computed is paid for by its own call;
            # every other position (a hit, a shared flight, a repeat in the batch) is cached.
            if k in served.computed_keys and first[k] == i:
                continue
            entry = found[k]
            served.cached_tokens += entry.tokens
            served.cached_inputs += 1
            served.estimated = served.estimated or not entry.exact
        return served


def _entries(keys: list[bytes], result: EmbeddingResult, width: int) -> dict[bytes, Entry]:
    rows = result.vectors
    if rows.shape != (len(keys), width):
        raise RuntimeError(f"computed {rows.shape} for {len(keys)} inputs of width {width}")
    counts = result.input_tokens
    exact = result.input_tokens_exact
    if counts is None:  # a provider that counts per batch only: an even share each
        total = result.usage.prompt_tokens
        counts = [total // len(keys) + (1 if j < total % len(keys) else 0)
                  for j in range(len(keys))]
        exact = False
    # Copies: a row must not pin the whole batch's array in the memory tier.
    return {k: Entry(np.array(rows[j], dtype=np.float32), int(counts[j]), exact)
            for j, k in enumerate(keys)}
