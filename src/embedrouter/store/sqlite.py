"""SQLite backend: one file, WAL mode, shared safely by the server and CLI processes.

Every call runs on the event loop thread. That is deliberate: lookups by primary key take
microseconds, and WAL readers never wait for writers, so the hot path (``get_key`` per request)
never blocks in practice. Writes are admin operations (create/disable a key, first start); one
may wait up to ``BUSY_TIMEOUT_MS`` if another process holds the write lock. Nothing is cached:
each ``get_key`` reads the file, so a key disabled by ``embedrouter keys disable`` in another
process is refused on the server's very next request.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from embedrouter.store.base import DuplicateKey, StoreUnavailable
from embedrouter.store.migrations import (
    CREATE_VERSION_TABLE,
    KEYS_TABLE,
    MARKERS_TABLE,
    VERSION_TABLE,
    pending,
)
from embedrouter.store.records import KeyRecord

# Long enough to ride out another process's short write transaction, short enough that a
# wedged database surfaces as a 503 instead of a hung server.
BUSY_TIMEOUT_MS = 5000
BOOTSTRAP_MARKER = "bootstrap"

_KEY_COLUMNS = "key_hash, label, is_management, disabled, created_at, display"


def _record(row: tuple[Any, ...]) -> KeyRecord:
    key_hash, label, is_management, disabled, created_at, display = row
    return KeyRecord(
        key_hash=str(key_hash),
        label=str(label),
        is_management=bool(is_management),  # SQLite stores booleans as 0/1
        disabled=bool(disabled),
        created_at=int(created_at),
        display=str(display),
    )


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class SQLiteStore:
    """:class:`~embedrouter.store.base.Store` over one SQLite file."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open_sync(cls, path: Path) -> SQLiteStore:
        """Create the parent folders and the file if needed, then migrate. Blocking."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, so each read sees the latest committed state and
        # transactions are exactly the BEGIN ... COMMIT blocks written below.
        # check_same_thread=False: open() runs here in a worker thread, then every later call
        # comes from the event loop thread, one at a time.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across application crashes in WAL mode; only an OS crash can
            # lose the last transactions, which is acceptable for admin writes.
            conn.execute("PRAGMA synchronous = NORMAL")
            store = cls(conn, path)
            store._migrate()
        except BaseException:
            conn.close()
            raise
        return store

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock up front so that a
        check-then-insert inside it cannot interleave with another process."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise StoreUnavailable() from exc
            raise
        try:
            yield self._conn
        except BaseException:
            if self._conn.in_transaction:  # SQLite may already have rolled back on its own
                self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self._write() as conn:
            conn.execute(CREATE_VERSION_TABLE)
            applied = [row[0] for row in conn.execute(f"SELECT version FROM {VERSION_TABLE}")]
            for migration in pending(applied):
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    f"INSERT INTO {VERSION_TABLE} (version, description, applied_at) "
                    "VALUES (?, ?, ?)",
                    (migration.version, migration.description, int(time.time())),
                )

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise StoreUnavailable() from exc
            raise

    @staticmethod
    def _insert(conn: sqlite3.Connection, rec: KeyRecord) -> None:
        try:
            conn.execute(
                f"INSERT INTO {KEYS_TABLE} ({_KEY_COLUMNS}, inserted_ns) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?)",
                (rec.key_hash, rec.label, rec.is_management, rec.disabled, rec.created_at,
                 rec.display, time.time_ns()),
            )
        except sqlite3.IntegrityError as exc:
            raise DuplicateKey("a key with this hash already exists") from exc

    async def insert_key(self, rec: KeyRecord) -> None:
        """Store a new key; raises DuplicateKey if its hash is already present."""
        with self._write() as conn:
            self._insert(conn, rec)

    async def insert_key_if_empty(self, rec: KeyRecord) -> bool:
        """Store ``rec`` only if no key exists and no bootstrap happened; True if stored."""
        with self._write() as conn:
            # Inside BEGIN IMMEDIATE no other process can write, so check-then-insert is
            # atomic; the marker row additionally makes "once per database" explicit.
            if conn.execute(f"SELECT 1 FROM {KEYS_TABLE} LIMIT 1").fetchone() is not None:
                return False
            cur = conn.execute(
                f"INSERT INTO {MARKERS_TABLE} (name, created_at) VALUES (?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (BOOTSTRAP_MARKER, rec.created_at),
            )
            if cur.rowcount != 1:
                return False
            self._insert(conn, rec)
            return True

    async def get_key(self, key_hash: str) -> KeyRecord | None:
        """The key with this full hash, read from the file on every call."""
        rows = self._read(f"SELECT {_KEY_COLUMNS} FROM {KEYS_TABLE} WHERE key_hash = ?",
                          (key_hash,))
        return _record(rows[0]) if rows else None

    async def list_keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        rows = self._read(f"SELECT {_KEY_COLUMNS} FROM {KEYS_TABLE} "
                          "ORDER BY created_at, inserted_ns, key_hash")
        return [_record(row) for row in rows]

    async def set_key_disabled(self, key_hash: str, disabled: bool) -> bool:
        """Disable or re-enable a key; False if no such key."""
        with self._write() as conn:
            cur = conn.execute(f"UPDATE {KEYS_TABLE} SET disabled = ? WHERE key_hash = ?",
                               (disabled, key_hash))
            return cur.rowcount == 1

    async def count_keys(self) -> int:
        """How many keys exist, disabled ones included."""
        return int(self._read(f"SELECT COUNT(*) FROM {KEYS_TABLE}")[0][0])

    async def close(self) -> None:
        """Close the connection; idempotent."""
        self._conn.close()


async def open_sqlite(path: Path) -> SQLiteStore:
    """Open (creating if needed) and migrate; off the loop, since it may wait for a lock."""
    return await asyncio.to_thread(SQLiteStore.open_sync, path)
