"""PostgreSQL backend: the same schema and semantics as SQLite, for several instances.

Point several servers at one database and they share keys, credits and the ledger: a key
disabled anywhere is refused everywhere on the next request, because every lookup reads the
table (no cache of positive lookups; lookups made in one turn of the event loop share one
query, sent after all of them were asked). To keep embedrouter's tables in their own schema, put it
in the URL: ``postgresql://host/db?options=-csearch_path%3Dembedrouter`` (the schema must
exist). Connections come from ``psycopg_pool``, in autocommit mode so that a single-statement
read is its own transaction and never holds a snapshot between requests.
"""

from __future__ import annotations

import asyncio
import select
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from embedrouter.store import sql
from embedrouter.store.base import DuplicateKey, StoreUnavailable
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

BOOTSTRAP_MARKER = "bootstrap"
DEFAULT_POOL_SIZE = 10
# A database that does not answer within this many seconds is reported as unavailable rather
# than hanging the request; the URL may override it with ?connect_timeout=N.
DEFAULT_CONNECT_TIMEOUT_S = 5
# How long a request waits for a free pooled connection before it is a 503.
POOL_WAIT_S = 5.0

# Advisory locks are per database, not per schema; folding the schema into the key lets test
# runs (or tenants) in different schemas migrate without queueing behind each other.
_MIGRATION_LOCK = (
    "SELECT pg_advisory_xact_lock("
    "hashtextextended('embedrouter.migrate:' || coalesce(current_schema(), ''), 0))"
)

T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]
_DOWN = (psycopg.OperationalError, PoolTimeout)


def _target(url: str) -> str:
    """host:port/dbname from a connection URL, without user or password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the configured URL"
    host, port = params.get("host", "localhost"), params.get("port", 5432)
    return f"{host}:{port}/{params.get('dbname', '')}"


async def _configure(conn: Conn) -> None:
    await conn.set_autocommit(True)


async def _check(conn: Conn) -> None:
    """Hand out a pooled connection only if it still looks alive, without a round trip.

    An idle connection has nothing to read unless the server spoke first: it closed the
    connection (a restart, ``pg_terminate_backend``, an idle timeout; EOF or a FATAL
    message) or sent a notice. Only then is the pool's own check run (an empty query), which
    raises for a dead connection, so that the pool replaces it. Running that query on every
    checkout was a round trip before every statement, and under load each round trip waits
    for the server and then the event loop to get a core (bench/README.md, Accounts).
    """
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the pooled connection is closed")
    if hasattr(select, "poll"):  # not on Windows: there, the round trip every time
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        if not poller.poll(0):
            return
    await AsyncConnectionPool.check_connection(conn)


# A few rows arrive as one JSON parameter: one round trip (Bind, Execute, Sync; the statement is
# prepared after its first few uses), where COPY takes two (the command, then its data). orjson
# encodes the records' fields by name, matching the columns. PostgreSQL parses JSON rows more
# slowly than COPY's, so a large batch goes by COPY: idle, one statement saved ~60 us at 1 row,
# matched COPY at 10-30 and lost ~400 us at 100 (bench/README.md, Accounts).
_INSERT_GENERATIONS = (
    f"INSERT INTO {GENERATIONS_TABLE} ({sql.GEN_COLUMNS}) "
    f"SELECT {sql.GEN_COLUMNS} FROM json_to_recordset(%s::json) AS r("
    "id TEXT, key_hash TEXT, model TEXT, upstream_model TEXT, provider TEXT, tokens BIGINT, "
    "cost_nanos BIGINT, created_ms BIGINT, latency_ms BIGINT, cached_tokens BIGINT)")
_COPY_GENERATIONS = f"COPY {GENERATIONS_TABLE} ({sql.GEN_COLUMNS}) FROM STDIN"
JSON_INSERT_MAX_ROWS = 40


class PostgresStore:
    """:class:`~embedrouter.store.base.Store` over a PostgreSQL database."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        # Key lookups asked for in this turn of the event loop, not yet sent: (hash, waiter).
        self._key_waiters: list[tuple[str, asyncio.Future[KeyRecord | None]]] | None = None
        self._key_loop: asyncio.AbstractEventLoop | None = None
        self._key_reads: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> PostgresStore:
        """Connect and migrate; raises StoreUnavailable if the database cannot be reached."""
        conninfo = url
        if "connect_timeout" not in conninfo_to_dict(url):
            conninfo = make_conninfo(url, connect_timeout=DEFAULT_CONNECT_TIMEOUT_S)
        try:
            # Migrated on a connection of its own, so that an unreachable server fails fast
            # with the driver's reason instead of a pool's generic timeout.
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await cls._migrate(conn)
        except psycopg.OperationalError as exc:
            # Unlike a failure mid-request, this one is read by the operator starting the
            # server, so it names the target and the driver's reason (which never includes the
            # password) instead of the masked API message.
            raise StoreUnavailable(f"Cannot open the PostgreSQL store at {_target(url)}: "
                                   f"{str(exc).strip() or type(exc).__name__}") from exc
        # check: a pooled connection that died quietly (server restart, idle timeout) is
        # replaced before a request gets it, at no round trip (see _check).
        pool = AsyncConnectionPool(conninfo, min_size=1, max_size=pool_size, open=False,
                                   configure=_configure, timeout=POOL_WAIT_S,
                                   check=_check)
        await pool.open()
        return cls(pool)

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

    async def _run(self, work: Callable[[Conn], Awaitable[T]], *, read: bool = False) -> T:
        """Run ``work`` on a pooled connection; a lost database is a 503, never a 500.

        A ``read`` whose connection turns out to be dead (the server closed it just before it
        was handed out, faster than ``_check`` could see) runs once more on another: it changes
        nothing, so running it twice is safe. Nothing else is retried: a write whose
        connection dropped mid-commit has an unknown outcome, and retrying it blindly could
        apply it twice.
        """
        try:
            async with self._pool.connection() as conn:
                try:
                    return await work(conn)
                except psycopg.OperationalError:
                    if not (read and conn.broken):
                        raise
            # The pool drops the broken connection as it comes back.
            async with self._pool.connection() as conn:
                return await work(conn)
        except _DOWN as exc:
            raise StoreUnavailable() from exc

    async def _one(self, statement: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        async def work(conn: Conn) -> tuple[Any, ...] | None:
            cur = await conn.execute(sql.pg(statement), params)
            return await cur.fetchone()

        return await self._run(work, read=True)

    async def _all(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        async def work(conn: Conn) -> list[tuple[Any, ...]]:
            cur = await conn.execute(sql.pg(statement), params)
            return await cur.fetchall()

        return await self._run(work, read=True)

    async def _count(self, statement: str, params: tuple[Any, ...] = ()) -> int:
        async def work(conn: Conn) -> int:
            cur = await conn.execute(sql.pg(statement), params)
            return cur.rowcount

        return await self._run(work)

    @staticmethod
    async def _insert(conn: Conn, rec: KeyRecord) -> None:
        try:
            await conn.execute(sql.pg(sql.INSERT_KEY), key_values(rec))
        except pg_errors.UniqueViolation as exc:
            raise DuplicateKey("a key with this hash already exists") from exc

    async def insert_key(self, rec: KeyRecord) -> None:
        """Store a new key; raises DuplicateKey if its hash is already present."""

        async def work(conn: Conn) -> None:
            await self._insert(conn, rec)

        await self._run(work)

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

        return await self._run(work)

    async def get_key(self, key_hash: str) -> KeyRecord | None:
        """The key with this full hash, read from the database on every call.

        Calls made in the same turn of the event loop share one query, sent once the turn's
        callbacks have run: every caller asked before it was sent, so each still sees every
        change committed before its call (a disabled key is refused at once). A server under
        load authenticates several requests a turn, and each query costs its event loop
        ~300 us (a pooled connection, a round trip, a parse).
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[KeyRecord | None] = loop.create_future()
        # A list left by a loop that stopped before sending it is never joined (its callback
        # would not run here).
        if self._key_waiters is None or self._key_loop is not loop:
            self._key_waiters, self._key_loop = [], loop
            loop.call_soon(self._send_key_reads, self._key_waiters)
        self._key_waiters.append((key_hash, waiter))
        return await waiter

    def _send_key_reads(self, waiters: list[tuple[str, asyncio.Future[KeyRecord | None]]]
                        ) -> None:
        if self._key_waiters is waiters:
            self._key_waiters = None
        task = asyncio.ensure_future(self._read_keys(waiters))
        self._key_reads.add(task)
        task.add_done_callback(self._key_reads.discard)

    async def _read_keys(self, waiters: list[tuple[str, asyncio.Future[KeyRecord | None]]]
                         ) -> None:
        hashes = list(dict.fromkeys(h for h, w in waiters if not w.done()))  # cancelled: gone
        if not hashes:
            return
        try:
            if len(hashes) == 1:
                rows = await self._all(sql.GET_KEY, (hashes[0],))
            else:
                rows = await self._all(sql.GET_KEYS, (hashes,))
        except BaseException as exc:
            for _, w in waiters:
                if w.done():
                    continue
                if isinstance(exc, Exception):
                    w.set_exception(exc)
                else:  # cancelled (shutdown): so are its callers, never left waiting
                    w.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        found = {r.key_hash: r for r in map(key_record, rows)}
        for h, w in waiters:
            if not w.done():
                w.set_result(found.get(h))

    async def list_keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        return [key_record(row) for row in await self._all(sql.LIST_KEYS)]

    def keys_epoch(self) -> None:
        """None: no change signal here is synchronous with the change (store/key_epoch.py), so
        every request reads its key and a disabled key is refused on its next request."""
        return None

    async def set_key_disabled(self, key_hash: str, disabled: bool) -> bool:
        """Disable or re-enable a key; False if no such key."""
        return await self._count(f"UPDATE {KEYS_TABLE} SET disabled = ? WHERE key_hash = ?",
                                 (disabled, key_hash)) == 1

    async def count_keys(self) -> int:
        """How many keys exist, disabled ones included."""
        row = await self._one(f"SELECT COUNT(*) FROM {KEYS_TABLE}")
        return int(row[0]) if row is not None else 0

    async def update_key(self, key_hash: str, changes: dict[str, object]) -> KeyRecord | None:
        fields = check_update(changes)
        updated = await self._count(sql.update_key(fields),
                                    (*changes.values(), int(time.time()), key_hash))
        return await self.get_key(key_hash) if updated == 1 else None

    async def delete_key(self, key_hash: str) -> bool:
        return await self._count(sql.DELETE_KEY, (key_hash,)) == 1

    async def credits_total(self) -> int:
        row = await self._one(sql.CREDITS_TOTAL)
        return int(row[0]) if row is not None else 0

    async def add_credits(self, grant_id: str, amount_nanos: int, created_ms: int,
                          note: str) -> int:
        async def work(conn: Conn) -> int:
            async with conn.transaction():
                await conn.execute(sql.pg(sql.INSERT_GRANT),
                                   (grant_id, amount_nanos, created_ms, note))
                cur = await conn.execute(sql.pg(sql.ADD_CREDITS), (amount_nanos,))
                row = await cur.fetchone()
                return int(row[0]) if row is not None else 0

        return await self._run(work)

    async def record_generations(self, rows: list[GenerationRecord]) -> None:
        """One statement in autocommit, so one transaction (a duplicate id fails all of it);
        committed, and so durable, when this returns."""
        if len(rows) > JSON_INSERT_MAX_ROWS:
            async def work(conn: Conn) -> None:
                async with conn.cursor() as cur, cur.copy(_COPY_GENERATIONS) as copy:
                    for row in rows:
                        await copy.write_row(gen_values(row))
        else:
            payload = orjson.dumps(rows).decode()

            async def work(conn: Conn) -> None:
                await conn.execute(_INSERT_GENERATIONS, (payload,))

        await self._run(work)

    async def get_generation(self, generation_id: str) -> GenerationRecord | None:
        row = await self._one(sql.GET_GENERATION, (generation_id,))
        return gen_record(row) if row is not None else None

    async def spent_total(self) -> int:
        row = await self._one(sql.SPENT_TOTAL)
        return int(row[0]) if row is not None else 0

    async def spent_since(self, key_hash: str, since_ms: int) -> int:
        row = await self._one(sql.SPENT_BY_KEY_SINCE, (key_hash, since_ms))
        return int(row[0]) if row is not None else 0

    async def key_usage(self, key_hash: str, day_ms: int, week_ms: int,
                        month_ms: int) -> tuple[int, int, int, int]:
        row = await self._one(sql.KEY_USAGE, (day_ms, week_ms, month_ms, key_hash))
        assert row is not None  # an aggregate always returns one row
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    async def usage_report(self, key_hash: str | None, since_ms: int) -> list[UsageRow]:
        params: tuple[Any, ...] = (since_ms, key_hash) if key_hash else (since_ms,)
        rows = await self._all(sql.usage_report(key_hash is not None), params)
        return [UsageRow(str(k), str(m), int(n), int(t), int(c)) for k, m, n, t, c in rows]

    async def close(self) -> None:
        """Close the pool's connections; idempotent."""
        if self._key_reads:
            await asyncio.gather(*self._key_reads, return_exceptions=True)
        await self._pool.close()
