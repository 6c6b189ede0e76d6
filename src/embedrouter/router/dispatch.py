"""Send one request's inputs to a model's remote endpoints: split, fan out, fall back, reassemble.

For each endpoint in the plan's order, the inputs still unserved are cut to that endpoint's caps
and sent concurrently (at most ``max_concurrency`` calls in flight per provider). A part that
fails with a retryable kind moves on to the next endpoint on its own; one refused as too large is
halved and sent again to the same endpoint. The result is complete or the request fails: never a
200 with a missing, short or reordered row.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from embedrouter.catalog.endpoints import EndpointSpec
from embedrouter.providers.upstream import Adapter, AttemptFailure, UpstreamCall
from embedrouter.router.failures import final_error
from embedrouter.router.health import HealthBook
from embedrouter.router.selection import Plan
from embedrouter.router.split import InvalidReply, apportion, halve, place, split
from embedrouter.router.vectors import shorten


def estimate_tokens(item: str | Sequence[int]) -> int:
    """Tokens an upstream will likely count: ids as they are; text at 3 UTF-8 bytes a token,
    a deliberate overestimate so token caps are rarely hit (a refusal is split further)."""
    if isinstance(item, str):
        size = len(item) if item.isascii() else len(item.encode("utf-8"))
        return (size + 2) // 3 or 1
    return len(item) or 1


def estimate_all(items: Sequence[str] | Sequence[Sequence[int]]) -> list[int]:
    """``estimate_tokens`` of each item, in one loop: this runs for every input of every
    remote request, and the per-item function call was most of its cost."""
    try:
        if "".join(items).isascii():  # all text (else TypeError), all ASCII: sizes are lengths
            return [(n + 2) // 3 or 1 for n in map(len, items)]
    except TypeError:
        pass
    return list(map(estimate_tokens, items))


@dataclass(slots=True)
class Dispatched:
    vectors: np.ndarray
    prompt_tokens: int
    cost: Decimal
    estimated: bool  # some part's usage was missing and counted here
    served_by: EndpointSpec  # the endpoint that served input 0
    input_tokens: list[int]  # per input: its call's count, shared by estimate within a call
    input_tokens_exact: bool  # every call held one input and reported usage


@dataclass(slots=True)
class _State:
    out: np.ndarray
    per_input: list[int]
    exact: bool = True
    tokens: int = 0
    cost: Decimal = Decimal(0)
    estimated: bool = False
    first: EndpointSpec | None = None
    failures: list[AttemptFailure] = field(default_factory=list)


class Dispatcher:
    """Owns the adapters, their concurrency bounds and the health book."""

    def __init__(self, adapters: Mapping[str, Adapter], health: HealthBook | None = None,
                 *, limits: Mapping[str, int] | None = None) -> None:
        self._adapters = dict(adapters)
        self.health = health or HealthBook()
        self._gates = {name: asyncio.Semaphore((limits or {}).get(name, 16))
                       for name in self._adapters}
        self._closers: list[Callable[[], Awaitable[None]]] = []

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Run ``closer`` after the adapters close (the shared HTTP pool)."""
        self._closers.append(closer)

    def serves(self, provider: str) -> bool:
        return provider in self._adapters

    async def run(self, plan: Plan, inputs: Sequence[str] | Sequence[Sequence[int]], *,
                  slug: str, width: int, upstream_dimensions: int | None,
                  input_type: str | None, deadline_s: float) -> Dispatched:
        """``width``: the vector length the model gives (after ``upstream_dimensions``); a reply
        of any other width is invalid, whichever endpoint answers first."""
        endpoints = [ep for ep in plan.attempts if ep.provider in self._adapters]
        resting = min((until for _, until in plan.resting), default=None)
        resting_after = None if resting is None else max(0.0, resting - self.health.now())
        if not endpoints:
            raise final_error([], slug=slug, resting_retry_after=resting_after)
        counts = estimate_all(inputs)
        state = _State(np.full((len(inputs), width), np.nan, dtype=np.float32),
                       [0] * len(inputs))
        try:
            async with asyncio.timeout(deadline_s):
                await self._serve(list(range(len(inputs))), endpoints, inputs, counts, state,
                                  slug=slug, dims=upstream_dimensions, input_type=input_type,
                                  resting_after=resting_after)
        except TimeoutError:
            raise final_error(state.failures, slug=slug, deadline_passed=True) from None
        assert state.first is not None
        return Dispatched(state.out, state.tokens, state.cost, state.estimated, state.first,
                          state.per_input, state.exact and not state.estimated)

    async def _serve(self, positions: list[int], endpoints: list[EndpointSpec],
                     inputs: Sequence[str] | Sequence[Sequence[int]], counts: list[int],
                     state: _State, *, slug: str, dims: int | None, input_type: str | None,
                     resting_after: float | None) -> None:
        ep, rest = endpoints[0], endpoints[1:]
        parts = [[positions[i] for i in part] for part in
                 split([counts[p] for p in positions], max_inputs=ep.max_inputs,
                       max_tokens=ep.max_tokens)]
        calls = [self._call(ep, part, inputs, counts, state, dims=dims, input_type=input_type)
                 for part in parts]
        # One part (the common case) needs no task of its own.
        outcomes = ([await calls[0]] if len(calls) == 1
                    else await asyncio.gather(*calls, return_exceptions=True))
        retry: list[asyncio.Future[None] | asyncio.Task[None]] = []
        for part, outcome in zip(parts, outcomes, strict=True):
            if outcome is None:
                continue
            if not isinstance(outcome, AttemptFailure):
                raise outcome  # a bug or a cancellation: never swallowed
            state.failures.append(outcome)
            kwargs = {"slug": slug, "dims": dims, "input_type": input_type,
                      "resting_after": resting_after}
            if outcome.kind == "too_large" and len(part) > 1:
                for half in halve(part):
                    retry.append(asyncio.ensure_future(
                        self._serve(half, [ep, *rest], inputs, counts, state, **kwargs)))
            elif outcome.retryable and rest:
                retry.append(asyncio.ensure_future(
                    self._serve(part, rest, inputs, counts, state, **kwargs)))
            else:
                for task in retry:
                    task.cancel()
                raise final_error(state.failures, slug=slug,
                                  resting_retry_after=resting_after)
        if retry:
            try:
                await asyncio.gather(*retry)
            finally:
                for task in retry:
                    task.cancel()

    async def _call(self, ep: EndpointSpec, part: list[int],
                    inputs: Sequence[str] | Sequence[Sequence[int]], counts: list[int],
                    state: _State, *, dims: int | None,
                    input_type: str | None) -> AttemptFailure | None:
        """One upstream call; its failure is returned (not raised) so that gather keeps the
        other parts' results and the caller decides per part."""
        adapter = self._adapters[ep.provider]
        whole = len(part) == len(inputs)  # parts are ascending positions: this one is 0..n-1
        call = UpstreamCall(inputs=inputs if whole else [inputs[i] for i in part],
                            upstream_model=ep.upstream_model,
                            dimensions=dims if ep.supports_dimensions else None,
                            input_type=input_type)
        async with self._gates[ep.provider]:
            started = time.perf_counter()
            try:
                reply = await adapter.embed(call)
            except AttemptFailure as exc:
                self.health.failed(ep.provider, retry_after=exc.retry_after
                                   if exc.kind == "rate_limited" else None)
                return exc
            elapsed = time.perf_counter() - started
        rows = reply.vectors
        if dims is not None and not ep.supports_dimensions and rows.ndim == 2 \
                and rows.shape[1] > dims:
            rows = shorten(rows, dims)  # a Matryoshka model's endpoint that can't cut itself
        assert state.out is not None
        try:
            place(state.out, part, reply.indices, rows)
        except InvalidReply as bad:
            self.health.failed(ep.provider)
            return AttemptFailure(kind="invalid_reply", provider=ep.display_name,
                                  message=f"invalid reply: {bad}")
        tokens = reply.prompt_tokens
        if tokens is None:
            tokens = sum(counts[i] for i in part)
            state.estimated = True
        state.tokens += tokens
        state.cost += ep.cost(tokens)
        if len(part) == 1:
            state.per_input[part[0]] = tokens
        else:
            state.exact = False
            if whole:
                state.per_input[:] = apportion(tokens, counts)
            else:
                for i, n in zip(part, apportion(tokens, [counts[i] for i in part]), strict=True):
                    state.per_input[i] = n
        if 0 in part:
            state.first = ep
        self.health.succeeded(ep.provider, seconds=elapsed, tokens=tokens)
        return None

    async def close(self) -> None:
        for adapter in self._adapters.values():
            await adapter.close()
        for closer in self._closers:
            await closer()
