"""The SQLite backend: one file in the data dir, bounded by size, with a TTL.

All database work runs on one worker thread that owns the connection (sqlite3 objects are not
for sharing), so the event loop never waits on the disk. The size is kept as a running total of
what this process wrote and evicted, re-read from the file now and then because other processes
may share it. Eviction drops the oldest writes first (rowid order: a rewrite gets a new rowid).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from embedrouter.cache.entry import CorruptEntry, Entry, decode, encode

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL UNIQUE,
    value BLOB NOT NULL,
    expires_at INTEGER NOT NULL
)
"""
_MAX_PARAMS = 500  # keys per SELECT, well under SQLite's host-parameter limit
_RECOUNT_EVERY_S = 60.0
# Evict down to this share of the limit, so that eviction runs once per many writes, not per write.
_LOW_WATER = 0.9


class SqliteBackend:
    name = "sqlite"

    def __init__(self, path: Path, *, max_bytes: int, ttl_s: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._max = max_bytes
        self._ttl = ttl_s
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vector-cache-sqlite")
        self._db: sqlite3.Connection | None = None
        self._bytes = 0
        self._entries = 0
        self._counted_at = 0.0
        self.evictions = 0
        self.corrupt = 0

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def open(self) -> SqliteBackend:
        await self._run(self._open)
        return self

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, timeout=2.0, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a lost write after a power cut is a miss
        db.execute(_SCHEMA)
        self._db = db
        self._recount()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the SQLite vector cache is closed")
        return self._db

    def _recount(self) -> None:
        row = self._conn().execute(
            "SELECT COUNT(*), COALESCE(SUM(length(value)), 0) FROM vectors").fetchone()
        self._entries, self._bytes = int(row[0]), int(row[1])
        self._counted_at = time.monotonic()

    async def get_many(self, keys: Sequence[bytes]) -> dict[bytes, Entry]:
        return await self._run(lambda: self._get(keys))

    def _get(self, keys: Sequence[bytes]) -> dict[bytes, Entry]:
        db, now = self._conn(), int(self._clock())
        found: dict[bytes, Entry] = {}
        for start in range(0, len(keys), _MAX_PARAMS):
            chunk = keys[start:start + _MAX_PARAMS]
            marks = ",".join("?" * len(chunk))
            rows = db.execute(f"SELECT key, value FROM vectors WHERE key IN ({marks}) "
                              "AND expires_at > ?", (*chunk, now)).fetchall()
            for key, value in rows:
                try:
                    found[bytes(key)] = decode(bytes(value))
                except CorruptEntry:
                    self.corrupt += 1  # a miss; the next write of this input replaces it
                    continue
        return found

    async def put_many(self, entries: Mapping[bytes, Entry]) -> None:
        rows = [(key, encode(entry)) for key, entry in entries.items()]
        await self._run(lambda: self._put(rows))

    def _put(self, rows: list[tuple[bytes, bytes]]) -> None:
        db = self._conn()
        expires = int(self._clock()) + self._ttl
        with db:  # one transaction for the whole batch
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR REPLACE INTO vectors (key, value, expires_at) "
                           "VALUES (?, ?, ?)", [(k, v, expires) for k, v in rows])
        self._bytes += sum(len(v) for _, v in rows)
        self._entries += len(rows)
        if time.monotonic() - self._counted_at > _RECOUNT_EVERY_S:
            self._recount()
        if self._bytes > self._max:
            self._evict()

    def _evict(self) -> None:
        db = self._conn()
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM vectors WHERE expires_at <= ?", (int(self._clock()),))
        self._recount()
        target = int(self._max * _LOW_WATER)
        while self._bytes > target and self._entries:
            # Oldest writes first, a bounded batch per statement.
            batch = max(1, min(1000, self._entries // 10))
            with db:
                db.execute("BEGIN IMMEDIATE")
                gone = db.execute("DELETE FROM vectors WHERE id IN (SELECT id FROM vectors "
                                  "ORDER BY id LIMIT ?) RETURNING length(value)",
                                  (batch,)).fetchall()
            if not gone:
                break
            self.evictions += len(gone)
            self._bytes -= sum(n for (n,) in gone)
            self._entries -= len(gone)

    def gauges(self) -> dict[str, float]:
        return {"bytes": self._bytes, "entries": self._entries,
                "evictions_total": self.evictions, "corrupt_total": self.corrupt}

    async def close(self) -> None:
        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        try:
            await self._run(shut)
        finally:
            self._pool.shutdown(wait=False)
