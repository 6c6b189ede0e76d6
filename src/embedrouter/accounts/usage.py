"""What a key or the account has spent, read from the ledger (never from counters)."""

from __future__ import annotations

from dataclasses import dataclass

from embedrouter.accounts.windows import period_starts, spend_window
from embedrouter.store import KeyRecord, Store


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """Nano-dollars: all time, this UTC day, week and month, and the key limit's window."""

    total: int
    daily: int
    weekly: int
    monthly: int
    limit_remaining: int | None  # None: no limit
    resets_at_ms: int | None  # when the limit's window ends; None: never


async def key_usage(store: Store, key: KeyRecord, now_ms: int) -> KeyUsage:
    day, week, month = period_starts(now_ms)
    total, daily, weekly, monthly = await store.key_usage(key.key_hash, day, week, month)
    remaining = resets = None
    if key.limit_nanos is not None:
        window = spend_window(key.limit_reset, now_ms)
        spent = {None: total, "daily": daily, "weekly": weekly, "monthly": monthly}[
            key.limit_reset]
        remaining, resets = max(key.limit_nanos - spent, 0), window.end_ms
    return KeyUsage(total, daily, weekly, monthly, remaining, resets)


@dataclass(frozen=True, slots=True)
class Balance:
    credits: int
    spent: int

    @property
    def available(self) -> int:
        return self.credits - self.spent


async def balance(store: Store) -> Balance:
    return Balance(await store.credits_total(), await store.spent_total())
