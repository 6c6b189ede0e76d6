"""PostgreSQL backend: the same schema and semantics as SQLite, for several instances.

Point several servers at one database and they share keys: a key disabled anywhere is refused
everywhere on the next request, because every lookup reads the table (no cache of positive
lookups). To keep embedrouter's tables in their own schema, put it in the URL:
``postgresql://host/db?options=-csearch_path%3Dembedrouter`` (the schema must exist).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from embedrouter.store._pgpool import ConnectionPool
from embedrouter.store.base import DuplicateKey, StoreUnavailable
from embedrouter.store.migrations import (
    CREATE_VERSION_TABLE,
    KEYS_TABLE,
    MARKERS_TABLE,
    VERSION_TABLE,
    pending,
)
from embedrouter.store.records import KeyRecord

BOOTSTRAP_MARKER = "bootstrap"
DEFAULT_POOL_SIZE = 10

_KEY_COLUMNS = "key_hash, label, is_management, disabled, created_at, display"

# Advisory locks are per database, not per schema; folding the schema into the key lets test
# runs (or tenants) in different schemas migrate without queueing behind each other.
_MIGRATION_LOCK = (
    "SELECT pg_advisory_xact_lock("
    "hashtextextended('embedrouter.migrate:' || coalesce(current_schema(), ''), 0))"
)

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]


def _target(url: str) -> str:
    """host:port/dbname from a connection URL, without user or password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the configured URL"
    host, port = params.get("host", "localhost"), params.get("port", 5432)
    return f"{host}:{port}/{params.get('dbname', '')}"


def _record(row: tuple[Any, ...]) -> KeyRecord:
    key_hash, label, is_management, disabled, created_at, display = row
    return KeyRecord(key_hash=key_hash, label=label, is_management=is_management,
                     disabled=disabled, created_at=int(created_at), display=display)


class PostgresStore:
    """:class:`~embedrouter.store.base.Store` over a PostgreSQL database."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> PostgresStore:
        """Connect and migrate; raises StoreUnavailable if the database cannot be reached."""
        store = cls(ConnectionPool(url, max_size=pool_size))
        try:
            async with store._pool.connection() as conn:
                await store._migrate(conn)
        except psycopg.OperationalError as exc:
            await store.close()
            # Unlike a failure mid-request, this one is read by the operator starting the
            # server, so it names the target and the driver's reason (which never includes the
            # password) instead of the masked API message.
            raise StoreUnavailable(f"Cannot open the PostgreSQL store at {_target(url)}: "
                                   f"{str(exc).strip()}") from exc
        except BaseException:
            await store.close()
            raise
        return store

    @staticmethod
    async def _migrate(conn: Conn) -> None:
        async with conn.transaction():
            # Serialises instances starting together: the second waits, then finds nothing
            # left to do. Released at commit, so a crash cannot leave it held.
            await conn.execute(_MIGRATION_LOCK)
            await conn.execute(CREATE_VERSION_TABLE)
            cur = await conn.execute(f"SELECT version FROM {VERSION_TABLE}")
            applied = [row[0] for row in await cur.fetchall()]
            for migration in pending(applied):
                for statement in migration.statements:
                    await conn.execute(statement)
                await conn.execute(
                    f"INSERT INTO {VERSION_TABLE} (version, description, applied_at) "
                    "VALUES (%s, %s, %s)",
                    (migration.version, migration.description, int(time.time())),
                )

    async def _read(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """Run an idempotent read; retried once on a fresh connection, because a pooled one
        may have died quietly (server restart, idle timeout) since it was last used."""
        try:
            async with self._pool.connection() as conn:
                return await work(conn)
        except psycopg.OperationalError:
            pass
        try:
            async with self._pool.connection(fresh=True) as conn:
                return await work(conn)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable() from exc

    async def _write(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """Run a write once: if the connection drops mid-commit its outcome is unknown, so
        retrying blindly could apply it twice."""
        try:
            async with self._pool.connection() as conn:
                return await work(conn)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable() from exc

    @staticmethod
    async def _insert(conn: Conn, rec: KeyRecord) -> None:
        try:
            await conn.execute(
                f"INSERT INTO {KEYS_TABLE} ({_KEY_COLUMNS}, inserted_ns) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (rec.key_hash, rec.label, rec.is_management, rec.disabled, rec.created_at,
                 rec.display, time.time_ns()),
            )
        except pg_errors.UniqueViolation as exc:
            raise DuplicateKey("a key with this hash already exists") from exc

    async def insert_key(self, rec: KeyRecord) -> None:
        """Store a new key; raises DuplicateKey if its hash is already present."""

        async def work(conn: Conn) -> None:
            await self._insert(conn, rec)

        await self._write(work)

    async def insert_key_if_empty(self, rec: KeyRecord) -> bool:
        """Store ``rec`` only if no key exists and no bootstrap happened; True if stored."""

        async def work(conn: Conn) -> bool:
            async with conn.transaction() as tx:
                # The marker insert is the lock: a concurrent caller blocks on the primary key
                # until this transaction ends, then inserts nothing. Under READ COMMITTED a
                # bare "count, then insert" would let both callers see zero keys.
                cur = await conn.execute(
                    f"INSERT INTO {MARKERS_TABLE} (name, created_at) VALUES (%s, %s) "
                    "ON CONFLICT (name) DO NOTHING",
                    (BOOTSTRAP_MARKER, rec.created_at),
                )
                if cur.rowcount != 1:
                    return False
                cur = await conn.execute(f"SELECT 1 FROM {KEYS_TABLE} LIMIT 1")
                if await cur.fetchone() is not None:
                    # Keys were created another way (CLI) first: no bootstrap, and no marker
                    # either, so the database's state stays exactly as it was.
                    raise psycopg.Rollback(tx)
                await self._insert(conn, rec)
                return True
            return False  # reached only through the Rollback above

        return await self._write(work)

    async def get_key(self, key_hash: str) -> KeyRecord | None:
        """The key with this full hash, read from the database on every call."""

        async def work(conn: Conn) -> KeyRecord | None:
            cur = await conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM {KEYS_TABLE} WHERE key_hash = %s", (key_hash,))
            row = await cur.fetchone()
            return _record(row) if row is not None else None

        return await self._read(work)

    async def list_keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""

        async def work(conn: Conn) -> list[KeyRecord]:
            cur = await conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM {KEYS_TABLE} "
                "ORDER BY created_at, inserted_ns, key_hash")
            return [_record(row) for row in await cur.fetchall()]

        return await self._read(work)

    async def set_key_disabled(self, key_hash: str, disabled: bool) -> bool:
        """Disable or re-enable a key; False if no such key."""

        async def work(conn: Conn) -> bool:
            cur = await conn.execute(
                f"UPDATE {KEYS_TABLE} SET disabled = %s WHERE key_hash = %s",
                (disabled, key_hash))
            return cur.rowcount == 1

        return await self._write(work)

    async def count_keys(self) -> int:
        """How many keys exist, disabled ones included."""

        async def work(conn: Conn) -> int:
            cur = await conn.execute(f"SELECT COUNT(*) FROM {KEYS_TABLE}")
            row = await cur.fetchone()
            return int(row[0]) if row is not None else 0

        return await self._read(work)

    async def close(self) -> None:
        """Close the pool's connections; idempotent."""
        await self._pool.close()
