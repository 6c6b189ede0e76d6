"""Live admission counters: balance held and spent, key windows, rate windows.

The ledger in the store is the truth about money; counters are its fast, atomic mirror for
admission. A request makes one :class:`Claim` carrying every check and every increment, and
the counters apply it all or nothing: either every limit has room and everything is reserved
together, or nothing changes and :class:`Refused` says which limit stopped it. Two backends
implement :class:`Counters`: :class:`MemoryCounters` here (one instance) and
``RedisCounters`` (several instances, one Lua script per step).

A counter that does not exist yet (first request of a window, a fresh Redis) is seeded from
the ledger's committed sum before the first claim uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from embedrouter.accounts.windows import Window


@dataclass(frozen=True, slots=True)
class RateScope:
    """One rate-limited scope (``key:<hash>`` or ``model:<slug>``) and its per-minute limits."""

    name: str
    rpm: int | None
    tpm: int | None


# Claim and Hold are built once a request and never changed after: not frozen, because a
# frozen dataclass's __init__ sets each field through object.__setattr__, about three times
# the cost of a plain one (a few microseconds a request on the admission path).
@dataclass(slots=True)
class Claim:
    """What one request asks for, before any provider is called."""

    hold_id: str  # the generation id: a charge and its hold share it
    amount: int  # nano-dollars reserved: an upper bound of the cost
    tokens: int  # an upper bound of the tokens, reserved against TPM
    credits: int | None  # the account's credits when enforced; None: spend is only tracked
    key_hash: str
    key_limit: int | None  # nano-dollars per key_window; None: no key limit
    key_window: Window | None
    scopes: tuple[RateScope, ...]
    minute: int  # the rate window's number
    reset_ms: int  # until the rate window ends
    expires_ms: int  # when the hold may be reclaimed if its instance died


@dataclass(slots=True)
class Hold:
    """A claim that was granted; settle or release it exactly once."""

    id: str
    amount: int
    tokens: int
    key_hash: str
    window_id: str | None  # the key window the amount was counted in
    rate_names: tuple[str, ...]


class Refused(Exception):
    """A limit has no room. ``kind``: credits, key_limit, rpm or tpm."""

    def __init__(self, kind: str, limit: int, remaining: int, reset_ms: int) -> None:
        super().__init__(kind)
        self.kind = kind
        self.limit = limit
        self.remaining = remaining
        self.reset_ms = reset_ms


class Ledger(Protocol):
    """The committed sums counters are seeded from (the store implements it)."""

    async def spent_total(self) -> int: ...

    async def spent_since(self, key_hash: str, since_ms: int) -> int: ...


class Counters(Protocol):
    async def start(self) -> None:
        """Seed what must exist before the first claim."""
        ...

    async def claim(self, claim: Claim) -> Hold:
        """Check every limit and reserve everything at once, or raise :class:`Refused`."""
        ...

    async def confirm(self, hold: Hold, expires_ms: int) -> bool:
        """Just before the charge is written: extend the hold's expiry to ``expires_ms``, or
        return False if it expired and was reclaimed (then the request must not be charged)."""
        ...

    async def settle(self, hold: Hold, cost: int, tokens: int) -> None:
        """The charge is committed: move ``cost`` from held to spent, free the rest."""
        ...

    def settle_behind(self, hold: Hold, cost: int, tokens: int) -> None:
        """``settle`` without waiting for it (the request's path): applied now where that is
        free, queued where it costs a round trip. Until it lands the hold stays counted in
        full, which can refuse early but never overspend."""
        ...

    async def release(self, hold: Hold) -> None:
        """Nothing was charged: free the whole reservation (requests still count)."""
        ...

    async def close(self) -> None: ...


def rate_name(scope: RateScope, minute: int) -> str:
    return f"{scope.name}:{minute}"


def check_rates(claim: Claim, counts: Sequence[Sequence[int]]) -> None:
    """Raise Refused for the first scope without room; ``counts`` are (requests, tokens)."""
    for scope, (requests, tokens) in zip(claim.scopes, counts, strict=True):
        if scope.rpm is not None and requests + 1 > scope.rpm:
            raise Refused("rpm", scope.rpm, max(scope.rpm - requests, 0), claim.reset_ms)
        if scope.tpm is not None and tokens + claim.tokens > scope.tpm:
            raise Refused("tpm", scope.tpm, max(scope.tpm - tokens, 0), claim.reset_ms)


class MemoryCounters:
    """In-process counters for a single instance; every check-and-apply is one synchronous
    step on the event loop, so concurrent requests cannot interleave inside it."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._acct: list[int] | None = None  # [spent, held]
        self._keys: dict[str, tuple[str, list[int]]] = {}  # key -> (window id, [spent, held])
        self._rates: dict[str, list[int]] = {}  # "scope:minute" -> [requests, tokens]
        self._minute = -1

    async def start(self) -> None:
        if self._acct is None:
            spent = await self._ledger.spent_total()
            if self._acct is None:  # another caller may have seeded it during the await
                self._acct = [spent, 0]

    async def _seed_key_entry(self, claim: Claim, window: Window) -> list[int]:
        """The key's counter for ``window``, seeded from the ledger (its first claim there)."""
        spent = await self._ledger.spent_since(claim.key_hash, window.start_ms)
        entry = self._keys.get(claim.key_hash)
        # Re-checked after the await: a concurrent claim may have seeded it and reserved.
        if entry is None or entry[0] != window.id:
            entry = (window.id, [spent, 0])
            self._keys[claim.key_hash] = entry
        return entry[1]

    async def claim(self, claim: Claim) -> Hold:
        if self._acct is None:
            await self.start()
        key = None
        window = claim.key_window
        if claim.key_limit is not None and window is not None:
            entry = self._keys.get(claim.key_hash)
            key = entry[1] if entry is not None and entry[0] == window.id \
                else await self._seed_key_entry(claim, window)
        assert self._acct is not None
        # From here to the return there is no await: check and apply are one atomic step.
        if claim.minute != self._minute:
            self._rates = {n: c for n, c in self._rates.items()
                           if int(n.rsplit(":", 1)[1]) >= claim.minute}
            self._minute = claim.minute
        acct = self._acct
        if claim.credits is not None:
            available = claim.credits - acct[0] - acct[1]
            if available < claim.amount:
                raise Refused("credits", claim.credits, max(available, 0), 0)
        if key is not None and claim.key_limit is not None:
            remaining = claim.key_limit - key[0] - key[1]
            if remaining < claim.amount or remaining <= 0:
                raise Refused("key_limit", claim.key_limit, max(remaining, 0), 0)
        names = tuple(rate_name(s, claim.minute) for s in claim.scopes)
        check_rates(claim, [self._rates.get(n, (0, 0)) for n in names])
        acct[1] += claim.amount
        if key is not None:
            key[1] += claim.amount
        for name in names:
            entry = self._rates.setdefault(name, [0, 0])
            entry[0] += 1
            entry[1] += claim.tokens
        window_id = claim.key_window.id if key is not None and claim.key_window else None
        return Hold(claim.hold_id, claim.amount, claim.tokens, claim.key_hash, window_id, names)

    def _unhold(self, hold: Hold, spent: int) -> None:
        assert self._acct is not None
        self._acct[1] -= hold.amount
        self._acct[0] += spent
        entry = self._keys.get(hold.key_hash)
        if hold.window_id is not None and entry is not None and entry[0] == hold.window_id:
            entry[1][1] -= hold.amount
            entry[1][0] += spent

    async def confirm(self, hold: Hold, expires_ms: int) -> bool:
        return True  # in-process holds live exactly as long as their request

    async def settle(self, hold: Hold, cost: int, tokens: int) -> None:
        self.settle_behind(hold, cost, tokens)

    def settle_behind(self, hold: Hold, cost: int, tokens: int) -> None:
        self._unhold(hold, cost)
        unused = hold.tokens - tokens
        if unused > 0:
            for name in hold.rate_names:
                entry = self._rates.get(name)
                if entry is not None:
                    entry[1] = max(entry[1] - unused, 0)

    async def release(self, hold: Hold) -> None:
        self._unhold(hold, 0)

    async def close(self) -> None:
        return None

