"""The one narrow seam between the server and its database."""

from __future__ import annotations

from typing import Protocol

from embedrouter.errors import ServiceUnavailable
from embedrouter.store.records import GenerationRecord, KeyRecord, UsageRow


class StoreUnavailable(ServiceUnavailable):
    """The database cannot be reached or stayed locked too long (503 at the API).

    The message is fixed and says nothing about the database; the cause is chained for logs.
    """

    def __init__(self, message: str = "The key store is unavailable; try again shortly") -> None:
        super().__init__(message)


class DuplicateKey(ValueError):
    """``insert_key`` was given a hash that is already stored (never the case for fresh keys)."""


class Store(Protocol):
    """Persistence for keys, the credit ledger and generation records. Every backend passes
    the same test suite (tests/store). Money is integer nano-dollars (accounts/money.py)."""

    async def insert_key(self, rec: KeyRecord) -> None:
        """Store a new key; raises :class:`DuplicateKey` if its hash is already present."""
        ...

    async def insert_key_if_empty(self, rec: KeyRecord) -> bool:
        """Store ``rec`` only if the store holds no key and was never bootstrapped.

        Atomic across processes sharing the database: when several callers race, exactly one
        gets True. Used to create the first (bootstrap) key.
        """
        ...

    async def get_key(self, key_hash: str) -> KeyRecord | None:
        """The key with this full hash, read fresh from the database (no caching)."""
        ...

    def keys_epoch(self) -> object | None:
        """A value that changes whenever any process commits a change to any key (disabled,
        updated, deleted), read in microseconds; None when a change could go unseen right now.
        A key record read under an epoch may be reused while the epoch is unchanged."""
        ...

    async def list_keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        ...

    async def set_key_disabled(self, key_hash: str, disabled: bool) -> bool:
        """Disable or re-enable a key; False if no such key."""
        ...

    async def count_keys(self) -> int:
        """How many keys exist, disabled ones included."""
        ...

    async def update_key(self, key_hash: str, changes: dict[str, object]) -> KeyRecord | None:
        """Set the given fields (names from ``KEY_UPDATE_FIELDS``); None if no such key."""
        ...

    async def delete_key(self, key_hash: str) -> bool:
        """Delete a key (its generation records stay); False if no such key."""
        ...

    async def credits_total(self) -> int:
        """Every credit grant ever made, summed (nano-dollars)."""
        ...

    async def add_credits(self, grant_id: str, amount_nanos: int, created_ms: int,
                          note: str) -> int:
        """Record a grant and return the new total, atomically."""
        ...

    async def record_generations(self, rows: list[GenerationRecord]) -> None:
        """Insert charges in one durable transaction (group commit): all or none.

        Durable means committed with the database's full guarantee before this returns, so a
        response sent after it can never describe a charge that a crash then loses.
        """
        ...

    async def get_generation(self, generation_id: str) -> GenerationRecord | None:
        """One generation by id."""
        ...

    async def spent_total(self) -> int:
        """Every charge ever made, summed (nano-dollars)."""
        ...

    async def spent_since(self, key_hash: str, since_ms: int) -> int:
        """A key's charges admitted at or after ``since_ms``, summed."""
        ...

    async def key_usage(self, key_hash: str, day_ms: int, week_ms: int,
                        month_ms: int) -> tuple[int, int, int, int]:
        """A key's spend: all time, and since the starts of the day, week and month."""
        ...

    async def usage_report(self, key_hash: str | None, since_ms: int) -> list[UsageRow]:
        """Requests, tokens and cost per key and model since ``since_ms``."""
        ...

    async def close(self) -> None:
        """Release connections; the store must not be used afterwards."""
        ...
