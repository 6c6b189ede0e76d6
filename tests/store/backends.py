"""Fixtures that run a test once per backend: SQLite in a temp folder, PostgreSQL in a scratch
schema created for that one test and dropped after it.

PostgreSQL comes from ``EMBEDROUTER_TEST_POSTGRES_URL`` (default: the local trust-auth server).
If it is unreachable the PostgreSQL cases fail when ``CI`` is set (a CI run must not pass by
skipping) and are skipped with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from embedrouter.store import Store, open_store

PG_URL = os.environ.get("EMBEDROUTER_TEST_POSTGRES_URL",
                        "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA_PREFIX = "er_test_"
# Schemas left by runs that crashed before cleaning up; far older than any live run.
STALE_AFTER_S = 3600
BACKENDS = ["sqlite", "postgres"]

OpenDb = Callable[[], Awaitable[Store]]

_pg_state: dict[str, str | None] = {}


def postgres_unavailable_reason() -> str | None:
    """None if the test server answers, else why not (checked once per session)."""
    if "reason" not in _pg_state:
        try:
            with psycopg.connect(PG_URL, connect_timeout=3, autocommit=True) as conn:
                _drop_stale_schemas(conn)
            _pg_state["reason"] = None
        except psycopg.Error as exc:
            _pg_state["reason"] = f"PostgreSQL at {PG_URL} unreachable: {exc}".strip()
    return _pg_state["reason"]


def require_postgres() -> None:
    """Fail (under CI) or skip (elsewhere) when the test server is unreachable."""
    reason = postgres_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so PostgreSQL tests must run)", pytrace=False)
    pytest.skip(reason)


def _drop_stale_schemas(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
        (SCHEMA_PREFIX.replace("_", r"\_") + "%",),
    ).fetchall()
    cutoff = time.time() - STALE_AFTER_S
    for (name,) in rows:
        try:
            created = int(name.removeprefix(SCHEMA_PREFIX).split("_", 1)[0])
        except ValueError:
            continue
        if created < cutoff:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


async def _scratch_schema() -> tuple[str, str]:
    """A new empty schema, and a URL whose search_path points at it."""
    # The timestamp lets a later run recognise schemas a crashed run left behind.
    schema = f"{SCHEMA_PREFIX}{int(time.time())}_{secrets.token_hex(4)}"
    async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    sep = "&" if "?" in PG_URL else "?"
    return schema, f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


async def _drop_schema(schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as conn:
        await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(schema)))


@contextlib.asynccontextmanager
async def scratch_postgres() -> AsyncIterator[str]:
    """A PostgreSQL URL on a schema made for the caller and dropped afterwards."""
    require_postgres()
    schema, url = await _scratch_schema()
    try:
        yield url
    finally:
        await _drop_schema(schema)


@contextlib.contextmanager
def scratch_postgres_sync() -> Iterator[str]:
    """:func:`scratch_postgres` for code without an event loop (module-scoped fixtures)."""
    require_postgres()
    schema = f"{SCHEMA_PREFIX}{int(time.time())}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database URL no other test uses; nested folders check that SQLite creates them."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'nested' / 'embedrouter.db'}"
        return
    async with scratch_postgres() as url:
        yield url


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A PostgreSQL URL on a scratch schema, for backend-specific tests."""
    async with scratch_postgres() as url:
        yield url


@pytest.fixture
async def open_db(db_url: str) -> AsyncIterator[OpenDb]:
    """Opens as many stores on the test's database as a test wants; closes them all after."""
    opened: list[Store] = []

    async def open_one() -> Store:
        store = await open_store(db_url)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_db: OpenDb) -> Store:
    """One open store on a fresh database, per backend."""
    return await open_db()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say loudly, once, why PostgreSQL cases did not run."""
    reason = _pg_state.get("reason")
    if reason:
        terminalreporter.write_line(f"embedrouter store tests: {reason}", yellow=True)
