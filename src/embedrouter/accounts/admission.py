"""Admission: reserve before any provider is called, settle after, nothing on failure.

The API layer opens one :class:`Gate` per embeddings request and hands ``gate.reserve`` to the
router, which calls it once with the request's :class:`~embedrouter.types.Quote`. The gate turns
the quote into one :class:`~embedrouter.accounts.counters.Claim` (balance, key limit, rate
windows) and either holds it or refuses with 402 / 429. After the router returns, ``settle``
writes the charge to the ledger (durably, group-committed) and only then moves the hold to
spent; the response is built from what was charged. ``release`` undoes a hold nothing was
charged for.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

from embedrouter.accounts.counters import Claim, Counters, Hold, RateScope, Refused
from embedrouter.accounts.ledger import LedgerWriter
from embedrouter.accounts.money import from_nanos, to_nanos
from embedrouter.accounts.windows import rate_window, spend_window
from embedrouter.errors import InternalError, PaymentRequired, RateLimited, ServiceUnavailable
from embedrouter.histogram import Histogram
from embedrouter.settings import AccountsConfig
from embedrouter.store import KeyRecord, Store
from embedrouter.store.records import GenerationRecord
from embedrouter.types import Computed, EmbeddingResult, OnComputed, Quote, Reserve, Usage

log = logging.getLogger("embedrouter.accounts")

T = TypeVar("T")

CREDITS_TTL_S = 1.0
# Past this age the credits are re-read in the background while the cached value still
# serves: under steady load no request waits for the read (every waiting request was a
# stall of a store round trip, once a second, in the latency's tail).
CREDITS_REFRESH_S = CREDITS_TTL_S / 2
SCOPE_CACHE_SIZE = 4096


def _usd(nanos: int) -> str:
    return f"${from_nanos(nanos)}"


def refusal(r: Refused, quote: Quote, amount: int, now_ms: int) -> Exception:
    """The API error for a refused claim: 402 for money, 429 for rates."""
    if r.kind == "credits":
        return PaymentRequired(
            f"Insufficient credits: this request may cost up to {_usd(amount)} and the "
            f"account has {_usd(r.remaining)} available. Add more with "
            "`embedrouter credits add USD`",
            metadata={"limit": "credits", "available": float(from_nanos(r.remaining))})
    if r.kind == "key_limit":
        return PaymentRequired(
            f"Key limit exceeded: this request may cost up to {_usd(amount)} and the key has "
            f"{_usd(r.remaining)} of its {_usd(r.limit)} limit left",
            metadata={"limit": "key_limit", "limit_remaining": float(from_nanos(r.remaining))})
    unit = "requests" if r.kind == "rpm" else "tokens"
    retry_after = max(1, math.ceil(r.reset_ms / 1000))
    alone = r.kind == "tpm" and quote.tokens > r.limit
    message = (f"Rate limit exceeded: {r.limit} {unit} per minute"
               + (f"; this request alone has up to {quote.tokens} tokens" if alone else "")
               + f". Retry after {retry_after} s")
    return RateLimited(message, limit=r.limit, remaining=r.remaining,
                       reset_ms=now_ms + r.reset_ms, retry_after=retry_after)


def _log_unawaited_charge(charge: asyncio.Future[Decimal]) -> None:
    # Retrieved, so that asyncio does not report it (with a traceback) as never retrieved.
    if not charge.cancelled() and charge.exception() is not None:
        log.warning("a charge whose request ended before its commit failed: %s",
                    type(charge.exception()).__name__)


def _log_refresh_failure(fetch: asyncio.Future[int]) -> None:
    # A failed background re-read changes nothing: the cached value expires and the next
    # request reads the credits itself (and gets the store's error if it still fails).
    if not fetch.cancelled() and fetch.exception() is not None:
        log.warning("re-reading the credits failed: %s", type(fetch.exception()).__name__)


class Gate:
    """One request's passage through admission; not reusable."""

    __slots__ = ("_accounts", "_early", "_hold", "_key", "_now_ms", "_quote", "_settled",
                 "_started", "generation_id")

    def __init__(self, accounts: Accounts, key: KeyRecord, generation_id: str) -> None:
        self._accounts = accounts
        self._key = key
        self.generation_id = generation_id
        self._hold: Hold | None = None
        self._quote: Quote | None = None
        self._now_ms = 0
        self._settled = False
        self._started = time.perf_counter()  # the generation's latency counts from here
        # A charge queued by ``computed``: what it charged, and its outcome.
        self._early: tuple[Computed, asyncio.Future[Decimal]] | None = None

    async def reserve(self, quote: Quote) -> None:
        """Hold the quote's cost and tokens, or raise PaymentRequired / RateLimited."""
        if self._hold is not None:
            raise InternalError("reserve called twice for one request")
        acc = self._accounts
        cfg = acc.config
        key = self._key
        now_ms = acc.now_ms()
        amount = to_nanos(quote.cost)
        credits = None
        if cfg.enforce_credits:
            credits = acc.cached_credits()
            if credits is None:
                credits = await acc.credits()
        minute, reset_ms = rate_window(now_ms)
        claim = Claim(
            hold_id=self.generation_id, amount=amount, tokens=quote.tokens, credits=credits,
            key_hash=key.key_hash, key_limit=key.limit_nanos,
            key_window=spend_window(key.limit_reset, now_ms)
            if key.limit_nanos is not None else None,
            scopes=acc.rate_scopes(key, quote.model), minute=minute, reset_ms=reset_ms,
            expires_ms=now_ms + acc.ttl_ms)
        try:
            self._hold = await acc.counters.claim(claim)
        except Refused as r:
            raise refusal(r, quote, amount, now_ms) from None
        self._quote, self._now_ms = quote, now_ms

    def computed(self, outcome: Computed) -> None:
        """The request's vectors exist and ``outcome`` is its whole cost: queue the charge now
        (``settle`` then returns it), so that the commit is under way while the request's
        result is assembled. Called on the event loop by the local model's batcher; does
        nothing where ``settle`` has more to do (no hold, or an old one to confirm first)."""
        hold, quote = self._hold, self._quote
        if hold is None or quote is None or self._settled:
            return
        if not self._young(self._accounts.now_ms()):
            return
        row = self._row(hold, quote, outcome.tokens, outcome.cost, outcome.model,
                        outcome.provider, None)
        self._settled = True
        self._early = (outcome, self._charge(hold, row))

    def settle(self, result: EmbeddingResult) -> Awaitable[Decimal]:
        """Charge the actual cost (at most what was held), durably; the awaitable gives what
        was charged.

        Not a coroutine: the charge is queued before this returns, and the ledger writer
        settles the hold once it is committed, so a caller cancelled while it waits (client
        gone, shutdown) changes nothing about the charge or the counters."""
        if self._early is not None:
            outcome, charged = self._early
            self._early = None
            u = result.usage
            if (u.cost, u.prompt_tokens, u.cached_tokens) != (outcome.cost, outcome.tokens, None):
                # Not reachable from the router as it is: the two are built from the same
                # figures. Should they ever part, the ledger and the response both say what was
                # charged at computation.
                log.error("generation %s: the result (%s tokens, $%s) differs from its charge "
                          "at computation (%s tokens, $%s)", self.generation_id,
                          u.prompt_tokens, u.cost, outcome.tokens, outcome.cost)
            return charged
        hold, quote = self._hold, self._quote
        if hold is None or quote is None:
            raise InternalError("a request reached settle without a reservation")
        if self._settled:
            raise InternalError("settle called twice for one request")
        row = self._row(hold, quote, result.usage.prompt_tokens, result.usage.cost,
                        result.model, result.provider, result.usage.cached_tokens)
        now_ms = self._accounts.now_ms()
        self._settled = True  # from here settle alone decides what happens to the hold
        if self._young(now_ms):
            return self._charge(hold, row)
        return asyncio.shield(self._confirm_then_charge(hold, row,
                                                        now_ms + self._accounts.ttl_ms))

    def _young(self, now_ms: int) -> bool:
        """Whether the hold may be charged without confirming it. A hold younger than half
        its lifetime cannot have been reclaimed (that takes its expiry to pass, give or take
        clock skew between instances, which must stay under that half), and has that half
        left for the ledger write: only an older one is confirmed, a round trip to Redis that
        most requests do not need."""
        return now_ms - self._now_ms < self._accounts.ttl_ms // 2

    def _row(self, hold: Hold, quote: Quote, tokens: int, cost: Decimal, model: str,
             provider: str, cached_tokens: int | None) -> GenerationRecord:
        """The ledger row charging ``cost``, at most what was held."""
        nanos = to_nanos(cost)
        if nanos > hold.amount:
            # The bound was wrong (an upstream counted more tokens than bytes): the budget
            # wins, and the response says what was charged.
            log.warning("generation %s cost %s over its reservation %s; charged the "
                        "reservation", self.generation_id, nanos, hold.amount)
            nanos = hold.amount
        return GenerationRecord(
            id=self.generation_id, key_hash=self._key.key_hash, model=quote.model,
            upstream_model=model, provider=provider, tokens=tokens, cost_nanos=nanos,
            created_ms=self._now_ms,
            latency_ms=round((time.perf_counter() - self._started) * 1000),
            cached_tokens=cached_tokens)

    async def _confirm_then_charge(self, hold: Hold, row: GenerationRecord,
                                   expires_ms: int) -> Decimal:
        acc = self._accounts
        try:
            confirmed = await acc.counters.confirm(hold, expires_ms)
        except BaseException:
            await self._release_counters(hold)
            raise
        if not confirmed:
            # Slower than the reservation's lifetime: another instance took the hold for a
            # dead one's and released it. Charging now could spend that balance twice.
            raise ServiceUnavailable(
                "The request outlived its credit reservation "
                f"({acc.config.reservation_ttl_s:g} s) and was not charged; retry it")
        return await self._charge(hold, row)

    def _charge(self, hold: Hold, row: GenerationRecord) -> asyncio.Future[Decimal]:
        acc = self._accounts
        cost = row.cost_nanos
        charged = from_nanos(cost)
        future: asyncio.Future[Decimal] = asyncio.get_running_loop().create_future()
        if cost == 0:
            # Nothing charged (a free model, or all hits): nothing to lose or double, so the
            # usage record is group-committed behind the response instead of an fsync before
            # it, which was most of a free request's latency at low concurrency.
            acc.writer.write_behind(row)
            self._settle_counters(hold, cost, row.tokens)
            future.set_result(charged)
            return future

        def done(exc: BaseException | None) -> None:
            if exc is None:
                self._settle_counters(hold, cost, row.tokens)
                if not future.done():  # done: the request was cancelled meanwhile
                    future.set_result(charged)
            elif acc.reclaims:
                # The outcome of a failed commit is unknown: the reclaimer settles or releases
                # the hold from what the ledger holds once it expires.
                log.warning("charging %s failed; its reservation is reclaimed from the ledger "
                            "after it expires", self.generation_id)
                if not future.done():
                    future.set_exception(exc)
            else:
                acc.spawn(self._release_then_fail(hold, future, exc))

        acc.writer.submit(row, done)
        return future

    async def _release_then_fail(self, hold: Hold, future: asyncio.Future[Decimal],
                                 exc: BaseException) -> None:
        # The hold is given back before the request hears of the failure, so a retry finds
        # the balance as it was.
        await self._release_counters(hold)
        if not future.done():
            future.set_exception(exc)

    def _settle_counters(self, hold: Hold, cost: int, tokens: int) -> None:
        try:
            self._accounts.counters.settle_behind(hold, cost, tokens)
        except Exception:  # the charge is durable; the reclaimer applies it from the ledger
            log.warning("settling %s in the counters failed; it is reclaimed from the ledger "
                        "after the reservation expires", self.generation_id)

    async def release(self) -> None:
        """Give back a hold nothing was charged for; a no-op after settle or without a hold."""
        if self._early is not None:
            # Charged at computation, then the request failed or was cancelled (a client gone
            # after its vectors were computed): the charge stands, as it would had the
            # request reached settle; its outcome is only logged.
            self._early[1].add_done_callback(_log_unawaited_charge)
            self._early = None
            return
        hold = self._hold
        if hold is None or self._settled:
            return
        self._settled = True
        await self._release_counters(hold)

    async def _release_counters(self, hold: Hold) -> None:
        try:
            await self._accounts.counters.release(hold)
        except Exception:
            log.warning("releasing %s failed; it is reclaimed after it expires",
                        self.generation_id)


class Accounts:
    """Admission, the ledger writer and the account views over one store and one counter set."""

    def __init__(self, store: Store, counters: Counters, config: AccountsConfig, *,
                 reclaims: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.counters = counters
        self.config = config
        self.reclaims = reclaims  # the counters reclaim expired holds from the ledger (Redis)
        self.writer = LedgerWriter(store.record_generations)
        self.ttl_ms = int(config.reservation_ttl_s * 1000)
        self._clock = clock
        self._scopes: dict[tuple[str, int | None, int | None, str], tuple[RateScope, ...]] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._credits = 0
        self._credits_until = 0.0  # time.monotonic(): the cached value is used until then
        self._credits_refresh_at = 0.0  # and re-read behind requests from then on
        self._credits_fetch: asyncio.Future[int] | None = None

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def cached_credits(self) -> int | None:
        """The credits if read within ``CREDITS_TTL_S``, else None (then await ``credits``).
        A value older than ``CREDITS_REFRESH_S`` is still returned, and a re-read starts
        behind it."""
        now = time.monotonic()
        if now >= self._credits_until:
            return None
        if now >= self._credits_refresh_at:
            self._credits_read(behind=True)
        return self._credits

    def rate_scopes(self, key: KeyRecord, model: str) -> tuple[RateScope, ...]:
        """The rate windows a request of ``key`` to ``model`` counts in: the key's own (its
        limits, else the instance defaults) and the model's, if any limits apply."""
        # Per request these were a few objects and an f-string built the same way each time.
        cache_key = (key.key_hash, key.rpm, key.tpm, model)
        scopes = self._scopes.get(cache_key)
        if scopes is None:
            cfg = self.config
            rpm = key.rpm if key.rpm is not None else cfg.requests_per_minute
            tpm = key.tpm if key.tpm is not None else cfg.tokens_per_minute
            found = []
            if rpm is not None or tpm is not None:
                found.append(RateScope(f"key:{key.key_hash}", rpm, tpm))
            limits = cfg.model_limits.get(model)
            if limits is not None:
                found.append(RateScope(f"model:{model}", *limits))
            if len(self._scopes) >= SCOPE_CACHE_SIZE:
                self._scopes.clear()  # bounded: many keys just rebuild theirs
            scopes = self._scopes[cache_key] = tuple(found)
        return scopes

    def spawn(self, work: Awaitable[T]) -> asyncio.Future[T]:
        """Run ``work`` in the background, holding a reference until it ends (``close``
        waits for it)."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def credits(self) -> int:
        """The account's credits, re-read at most every ``CREDITS_TTL_S``.

        Grants only ever add, so a value up to that old can only refuse a request that a
        fresh one would admit, never admit one it would refuse: the budget stays exact, and
        ``credits add`` takes effect within that time on every instance.
        """
        if time.monotonic() < self._credits_until:
            return self._credits
        # Concurrent callers share one read (never the stale value meanwhile).
        return await asyncio.shield(self._credits_read())

    def _credits_read(self, *, behind: bool = False) -> asyncio.Future[int]:
        """The read of the credits under way, or a new one: one read at a time. A new one
        ``behind`` the requests has no caller waiting for it, so its failure is logged."""
        if self._credits_fetch is None or self._credits_fetch.done():
            self._credits_fetch = self.spawn(self._fetch_credits())
            if behind:
                self._credits_fetch.add_done_callback(_log_refresh_failure)
        return self._credits_fetch

    async def _fetch_credits(self) -> int:
        # Timed from before the read: the value is at least as new as that, so credits
        # added before it count within CREDITS_TTL_S whatever the read's own latency.
        started = time.monotonic()
        value = await self.store.credits_total()
        self._credits = value
        self._credits_until = started + CREDITS_TTL_S
        self._credits_refresh_at = started + CREDITS_REFRESH_S
        return value

    async def start(self) -> None:
        await self.counters.start()

    def gate(self, key: KeyRecord, generation_id: str) -> Gate:
        return Gate(self, key, generation_id)

    async def metered(self, key: KeyRecord, generation_id: str,
                      embed: Callable[[Reserve, OnComputed], Awaitable[EmbeddingResult]]
                      ) -> EmbeddingResult:
        """Run ``embed`` (the router, given the reserve and computed hooks) through
        admission: reserved before any provider call, charged durably after (or as the
        vectors are computed), released on any failure before that. The result's
        ``usage.cost`` is what was charged."""
        gate = self.gate(key, generation_id)
        try:
            result = await embed(gate.reserve, gate.computed)
        except BaseException:
            await gate.release()
            raise
        # Once a provider has answered, the charge and the counters are settled even if this
        # request is cancelled meanwhile (client gone, shutdown): settle queues the charge
        # before it returns and handles its own failures.
        charged = await gate.settle(result)
        u = result.usage
        result.usage = Usage(u.prompt_tokens, u.total_tokens, charged, u.estimated,
                             u.cached_tokens)
        return result

    def stats(self) -> dict[str, Any]:
        out = {"ledger_commits": self.writer.commits, "ledger_rows": self.writer.rows,
               "counter_errors": getattr(self.counters, "errors", 0)}
        # Shared mode: claims and the script calls that carried them (claims / calls = how
        # many requests of one event-loop turn shared a round trip to Redis).
        for name in ("claims", "claim_calls"):
            value = getattr(self.counters, name, None)
            if value is not None:
                out[f"counter_{name}"] = value
        return out

    def histograms(self) -> dict[str, Histogram]:
        return {"ledger_commit_seconds": self.writer.commit_seconds}

    async def close(self) -> None:
        await self.writer.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.counters.close()
