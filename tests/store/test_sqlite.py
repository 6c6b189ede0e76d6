"""SQLite specifics: file layout, pragmas, schema version table, refusing newer schemas."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from embedrouter.store import SchemaTooNew, open_store
from embedrouter.store.migrations import LATEST_VERSION, MIGRATIONS, VERSION_TABLE, pending


async def test_creates_folders_wal_and_version_rows(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "er.db"
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = [r[0] for r in conn.execute(f"SELECT version FROM {VERSION_TABLE}")]
    assert versions == [m.version for m in MIGRATIONS]  # each once, despite two opens


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "er.db"
    await (await open_store(f"sqlite:///{path}")).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"INSERT INTO {VERSION_TABLE} VALUES (?, 'future', 0)",
                     (LATEST_VERSION + 1,))
    with pytest.raises(SchemaTooNew):
        await open_store(f"sqlite:///{path}")


def test_pending_is_ordered_and_skips_applied() -> None:
    assert pending([]) == list(MIGRATIONS)
    assert pending([m.version for m in MIGRATIONS]) == []
    versions = [m.version for m in MIGRATIONS]
    assert versions == sorted(versions) == list(range(1, len(versions) + 1))


def test_many_processes_opening_a_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    # Switching a fresh file to WAL takes an exclusive lock, and SQLite can answer "database is
    # locked" at once (no busy handler) to a connection that meets another one switching: with
    # 8 openers on a fresh file that happened in about 1 round in 15 before the retry (2 cores).
    from embedrouter.store.sqlite import SQLiteStore
    from tests.support.threads import at_once

    for round_ in range(100):
        path = tmp_path / f"r{round_}" / "embedrouter.db"
        _, errors = at_once(lambda p=path: SQLiteStore.open_sync(p)._conn.close(), 8)
        assert errors == [], f"round {round_}: {errors[0]!r}"
