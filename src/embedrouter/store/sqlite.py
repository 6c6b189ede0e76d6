"""SQLite backend: one file, WAL mode, shared safely by the server and CLI processes.

Every call but one runs on the event loop thread. That is deliberate: lookups by primary key
take microseconds, and WAL readers never wait for writers, so the hot path (``get_key`` per
request) never blocks in practice. Admin writes (create/disable a key, first start) may wait up
to ``BUSY_TIMEOUT_MS`` if another process holds the write lock. The exception is the ledger:
``record_generations`` runs in a child process on its own connection with
``synchronous = FULL`` (an fsync per commit, so a charge survives a power cut; why a process
and not a thread: store/sqlite_ledger.py), and its callers batch many charges into one
commit. ``get_key`` always reads the file; callers that cache keys check ``keys_epoch()``
first, which every key change (in any process) moves after its commit, so a key disabled by
``embedrouter keys disable`` in another process is refused on the server's very next request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from embedrouter.store import sql
from embedrouter.store.base import DuplicateKey, StoreUnavailable
from embedrouter.store.key_epoch import FileEpoch
from embedrouter.store.migrations import (
    CREATE_VERSION_TABLE,
    GENERATIONS_TABLE,
    KEYS_TABLE,
    MARKERS_TABLE,
    VERSION_TABLE,
    pending,
)
from embedrouter.store.records import GenerationRecord, KeyRecord, UsageRow
from embedrouter.store.sql import check_update, gen_record, gen_values, key_record, key_values
from embedrouter.store.sqlite_ledger import LedgerLost, LedgerProcess

log = logging.getLogger("embedrouter.store")

# Long enough to ride out another process's short write transaction, short enough that a
# wedged database surfaces as a 503 instead of a hung server.
BUSY_TIMEOUT_MS = 5000
BOOTSTRAP_MARKER = "bootstrap"



def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


# 10 parameters a row: 10 * 256 stays far under SQLite's 32,766 bound on one statement's variables.
ROWS_PER_INSERT = 256


@functools.lru_cache(maxsize=64)
def _insert_generations(n: int) -> str:
    row = "(" + ", ".join(["?"] * len(sql.GEN_COLUMNS.split(","))) + ")"
    return (f"INSERT INTO {GENERATIONS_TABLE} ({sql.GEN_COLUMNS}) VALUES "
            + ", ".join([row] * n))


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL, waiting (bounded) for processes opening it at the same moment:
    the switch takes an exclusive lock and SQLite may answer "locked" at once, without its busy
    handler, while another connection is switching or recovering the same file."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


def open_ledger(path: Path) -> sqlite3.Connection:
    """The ledger's connection: every commit on it is fsynced (``synchronous = FULL``)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # Per connection: this one fsyncs every commit; the server's own connection does not.
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def checkpoint_sync(conn: sqlite3.Connection) -> None:
    """Copy the WAL's committed pages into the database file (a PASSIVE checkpoint: it waits
    for no one and leaves what a reader still needs). Best effort: on any error the next one,
    or SQLite's own automatic checkpoint, does the work."""
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.Error as exc:
        log.debug("ledger checkpoint skipped: %s", type(exc).__name__)


def record_sync(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``gen_values`` rows in one transaction on a connection from ``open_ledger``."""
    if len(rows) <= ROWS_PER_INSERT:
        # One statement is its own transaction (autocommit): atomic and, with synchronous
        # FULL, durable when it returns; one call instead of BEGIN, INSERT and COMMIT.
        try:
            conn.execute(_insert_generations(len(rows)),
                         [value for row in rows for value in row])
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise StoreUnavailable() from exc
            raise
        return
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise StoreUnavailable() from exc
    try:
        for start in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[start:start + ROWS_PER_INSERT]
            conn.execute(_insert_generations(len(chunk)),
                         [value for row in chunk for value in row])
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SQLiteStore:
    """:class:`~embedrouter.store.base.Store` over one SQLite file."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._ledger = LedgerProcess(path)  # started by the first ledger write
        self._key_epoch = FileEpoch(path.with_name(f"{path.name}-keyepoch"))

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
            _enable_wal(conn)
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
            conn.execute(sql.INSERT_KEY, key_values(rec))
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
        rows = self._read(sql.GET_KEY, (key_hash,))
        return key_record(rows[0]) if rows else None

    async def list_keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        rows = self._read(sql.LIST_KEYS)
        return [key_record(row) for row in rows]

    def keys_epoch(self) -> bytes | None:
        """Changes after every committed key change by any process (store/key_epoch.py)."""
        return self._key_epoch.current()

    @contextmanager
    def _change_key(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that changes keys, signalled to key caches once committed."""
        with self._write() as conn:
            yield conn
        self._key_epoch.bump()

    async def set_key_disabled(self, key_hash: str, disabled: bool) -> bool:
        """Disable or re-enable a key; False if no such key."""
        with self._change_key() as conn:
            cur = conn.execute(f"UPDATE {KEYS_TABLE} SET disabled = ? WHERE key_hash = ?",
                               (disabled, key_hash))
            return cur.rowcount == 1

    async def count_keys(self) -> int:
        """How many keys exist, disabled ones included."""
        return int(self._read(f"SELECT COUNT(*) FROM {KEYS_TABLE}")[0][0])

    async def update_key(self, key_hash: str, changes: dict[str, object]) -> KeyRecord | None:
        """Set the given fields; None if no such key."""
        fields = check_update(changes)
        with self._change_key() as conn:
            cur = conn.execute(sql.update_key(fields),
                               (*changes.values(), int(time.time()), key_hash))
            if cur.rowcount != 1:
                return None
        return await self.get_key(key_hash)

    async def delete_key(self, key_hash: str) -> bool:
        with self._change_key() as conn:
            return conn.execute(sql.DELETE_KEY, (key_hash,)).rowcount == 1

    async def credits_total(self) -> int:
        return int(self._read(sql.CREDITS_TOTAL)[0][0])

    async def add_credits(self, grant_id: str, amount_nanos: int, created_ms: int,
                          note: str) -> int:
        with self._write() as conn:
            conn.execute(sql.INSERT_GRANT, (grant_id, amount_nanos, created_ms, note))
            return int(conn.execute(sql.ADD_CREDITS, (amount_nanos,)).fetchone()[0])

    async def record_generations(self, rows: list[GenerationRecord]) -> None:
        """One fsynced transaction, in the ledger process (store/sqlite_ledger.py)."""
        try:
            await self._ledger.commit([gen_values(r) for r in rows])
        except LedgerLost:
            # The process ended with this batch in hand. It is one transaction, so its first
            # row tells whether all of it committed; answering "failed" for a batch that did
            # commit would release holds whose charges are in the ledger.
            if await self.get_generation(rows[0].id) is None:
                raise
            log.warning("the ledger process ended after committing a batch; continuing")

    async def get_generation(self, generation_id: str) -> GenerationRecord | None:
        rows = self._read(sql.GET_GENERATION, (generation_id,))
        return gen_record(rows[0]) if rows else None

    async def spent_total(self) -> int:
        return int(self._read(sql.SPENT_TOTAL)[0][0])

    async def spent_since(self, key_hash: str, since_ms: int) -> int:
        return int(self._read(sql.SPENT_BY_KEY_SINCE, (key_hash, since_ms))[0][0])

    async def key_usage(self, key_hash: str, day_ms: int, week_ms: int,
                        month_ms: int) -> tuple[int, int, int, int]:
        row = self._read(sql.KEY_USAGE, (day_ms, week_ms, month_ms, key_hash))[0]
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    async def usage_report(self, key_hash: str | None, since_ms: int) -> list[UsageRow]:
        params: tuple[Any, ...] = (since_ms, key_hash) if key_hash else (since_ms,)
        rows = self._read(sql.usage_report(key_hash is not None), params)
        return [UsageRow(str(k), str(m), int(n), int(t), int(c)) for k, m, n, t, c in rows]

    async def close(self) -> None:
        """Close the connections; idempotent."""
        self._conn.close()
        self._key_epoch.close()
        await self._ledger.close()


async def open_sqlite(path: Path) -> SQLiteStore:
    """Open (creating if needed) and migrate; off the loop, since it may wait for a lock."""
    return await asyncio.to_thread(SQLiteStore.open_sync, path)
