"""The one narrow seam between the server and its database."""

from __future__ import annotations

from typing import Protocol

from embedrouter.errors import ServiceUnavailable
from embedrouter.store.records import KeyRecord


class StoreUnavailable(ServiceUnavailable):
    """The database cannot be reached or stayed locked too long (503 at the API).

    The message is fixed and says nothing about the database; the cause is chained for logs.
    """

    def __init__(self, message: str = "The key store is unavailable; try again shortly") -> None:
        super().__init__(message)


class DuplicateKey(ValueError):
    """``insert_key`` was given a hash that is already stored (never the case for fresh keys)."""


class Store(Protocol):
    """Persistence for keys. Every backend passes the same test suite (tests/store)."""

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

    async def list_keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        ...

    async def set_key_disabled(self, key_hash: str, disabled: bool) -> bool:
        """Disable or re-enable a key; False if no such key."""
        ...

    async def count_keys(self) -> int:
        """How many keys exist, disabled ones included."""
        ...

    async def close(self) -> None:
        """Release connections; the store must not be used afterwards."""
        ...
