"""Every Store operation, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from typing import Any

import psycopg
import pytest

from embedrouter.store import DuplicateKey, KeyRecord, Store, open_store, sqlite_path
from embedrouter.store.migrations import CREATE_VERSION_TABLE, KEYS_TABLE, MIGRATIONS, VERSION_TABLE
from embedrouter.store.sql import pg
from tests.store.backends import OpenDb


def rec(n: int, *, management: bool = False, disabled: bool = False,
        created_at: int = 1_700_000_000) -> KeyRecord:
    return KeyRecord(key_hash=f"{n:064x}", label=f"key {n}", is_management=management,
                     disabled=disabled, created_at=created_at + n, display=f"sk-er-v1-{n:03}…")


async def test_insert_then_get_round_trips_every_field(store: Store) -> None:
    a = rec(1, management=True)
    b = rec(2, disabled=True)
    await store.insert_key(a)
    await store.insert_key(b)
    assert await store.get_key(a.key_hash) == a
    assert await store.get_key(b.key_hash) == b
    got = await store.get_key(a.key_hash)
    assert got is not None
    assert type(got.is_management) is bool and type(got.created_at) is int


async def test_get_unknown_is_none(store: Store) -> None:
    assert await store.get_key("f" * 64) is None


async def test_insert_duplicate_hash_is_refused(store: Store) -> None:
    await store.insert_key(rec(1))
    with pytest.raises(DuplicateKey):
        await store.insert_key(dataclasses.replace(rec(1), label="other"))
    assert (await store.get_key(rec(1).key_hash)) == rec(1)  # the first one is untouched
    await store.insert_key(rec(2))  # and the store still works after the failed insert


async def test_list_is_oldest_first_and_count_matches(store: Store) -> None:
    assert await store.list_keys() == []
    assert await store.count_keys() == 0
    for n in (3, 1, 2):
        await store.insert_key(rec(n))
    assert [r.key_hash for r in await store.list_keys()] == [rec(n).key_hash for n in (1, 2, 3)]
    assert await store.count_keys() == 3


async def test_set_disabled_toggles_and_reports_missing(store: Store) -> None:
    await store.insert_key(rec(1))
    assert await store.set_key_disabled(rec(1).key_hash, True) is True
    assert (await store.get_key(rec(1).key_hash)).disabled is True  # type: ignore[union-attr]
    assert await store.set_key_disabled(rec(1).key_hash, True) is True  # idempotent
    assert await store.set_key_disabled(rec(1).key_hash, False) is True
    assert (await store.get_key(rec(1).key_hash)).disabled is False  # type: ignore[union-attr]
    assert await store.set_key_disabled("e" * 64, True) is False
    assert await store.count_keys() == 1


async def test_insert_if_empty_only_once(store: Store) -> None:
    assert await store.insert_key_if_empty(rec(1, management=True)) is True
    assert await store.insert_key_if_empty(rec(2, management=True)) is False
    assert [r.key_hash for r in await store.list_keys()] == [rec(1).key_hash]


async def test_insert_if_empty_refuses_when_keys_exist(store: Store) -> None:
    await store.insert_key(rec(5))
    assert await store.insert_key_if_empty(rec(1, management=True)) is False
    assert await store.count_keys() == 1


async def test_concurrent_insert_if_empty_from_two_stores_stores_one(open_db: OpenDb) -> None:
    first, second = await open_db(), await open_db()
    results = await asyncio.gather(
        first.insert_key_if_empty(rec(1, management=True)),
        second.insert_key_if_empty(rec(2, management=True)),
    )
    assert sorted(results) == [False, True]
    assert await first.count_keys() == 1


async def test_reopen_is_idempotent_and_keeps_data(open_db: OpenDb) -> None:
    first = await open_db()
    await first.insert_key(rec(1))
    second = await open_db()  # migrations run again: must be a no-op
    third = await open_db()
    assert await second.get_key(rec(1).key_hash) == rec(1)
    assert await third.count_keys() == 1


async def test_concurrent_open_migrates_once(open_db: OpenDb) -> None:
    stores = await asyncio.gather(*(open_db() for _ in range(4)))
    for s in stores:
        assert await s.count_keys() == 0


async def test_write_through_one_store_is_seen_by_another_at_once(open_db: OpenDb) -> None:
    # The server and the CLI hold separate connections: no stale positive lookups allowed.
    server, cli = await open_db(), await open_db()
    await server.insert_key(rec(1))
    assert (await server.get_key(rec(1).key_hash)).disabled is False  # type: ignore[union-attr]
    assert await cli.set_key_disabled(rec(1).key_hash, True)
    assert (await server.get_key(rec(1).key_hash)).disabled is True  # type: ignore[union-attr]


async def test_close_is_idempotent(open_db: OpenDb) -> None:
    s = await open_db()
    await s.close()
    await s.close()


@pytest.mark.parametrize("url", ["mysql://x/y", "", "sqlite://relative.db", "sqlite:///"])
async def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        await open_store(url)


async def test_cache_policy_is_stored_updated_and_cleared(store: Store) -> None:
    a = dataclasses.replace(rec(1), cache_policy="no-store")
    await store.insert_key(a)
    assert await store.get_key(a.key_hash) == a
    changed = await store.update_key(a.key_hash, {"cache_policy": "no-cache"})
    assert changed is not None and changed.cache_policy == "no-cache"
    cleared = await store.update_key(a.key_hash, {"cache_policy": None})
    assert cleared is not None and cleared.cache_policy is None
    assert [k.cache_policy for k in await store.list_keys()] == [None]


def _run_sync(db_url: str, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Statements on the test's database outside the store (``?`` placeholders)."""
    if db_url.startswith("sqlite"):
        path = sqlite_path(db_url)
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            for statement, params in statements:
                conn.execute(statement, params)
        return
    with psycopg.connect(db_url, autocommit=True) as conn, conn.transaction():
        for statement, params in statements:
            conn.execute(pg(statement), params)


async def test_a_version_2_database_upgrades_with_its_keys_on_the_default_policy(
        db_url: str, open_db: OpenDb) -> None:
    # The schema as embedrouter left it before migration 3, with a key in it.
    old = [m for m in MIGRATIONS if m.version <= 2]
    _run_sync(db_url, [
        (CREATE_VERSION_TABLE, ()),
        *[(statement, ()) for m in old for statement in m.statements],
        *[(f"INSERT INTO {VERSION_TABLE} (version, description, applied_at) VALUES (?, ?, 0)",
           (m.version, m.description)) for m in old],
        (f"INSERT INTO {KEYS_TABLE} (key_hash, label, is_management, disabled, created_at, "
         "display, rpm) VALUES (?, 'old', FALSE, FALSE, 1700000000, 'sk-er-v1-old…', 7)",
         ("a" * 64,)),
    ])
    store = await open_db()
    got = await store.get_key("a" * 64)
    assert got is not None and (got.label, got.rpm, got.cache_policy) == ("old", 7, None)
    updated = await store.update_key("a" * 64, {"cache_policy": "no-store"})
    assert updated is not None and updated.cache_policy == "no-store"
    assert await (await open_db()).get_key("a" * 64) == updated  # reopened: nothing redone


async def test_a_batch_larger_than_one_insert_statement_is_recorded_whole(store: Store) -> None:
    from embedrouter.store.records import GenerationRecord
    rows = [GenerationRecord(f"gen-{i:04}", "k" * 64, "m", "up", "P", i, 10 * i, 1_000 + i, 1,
                             cached_tokens=i if i % 2 else None)
            for i in range(600)]  # over SQLite's 256 rows per statement, in one transaction
    await store.record_generations(rows)
    assert await store.get_generation("gen-0599") == rows[-1]
    assert await store.get_generation("gen-0598") == rows[-2]  # no cached_tokens
    assert await store.spent_total() == sum(10 * i for i in range(600))
    with pytest.raises(Exception):  # noqa: B017 - a duplicate id fails the whole batch
        await store.record_generations([
            GenerationRecord("gen-new", "k" * 64, "m", "up", "P", 1, 1, 1, 1), rows[0]])
    assert await store.get_generation("gen-new") is None
    # Past one statement too: a duplicate in the last chunk undoes the chunks before it.
    more = [GenerationRecord(f"gen-more-{i:04}", "k" * 64, "m", "up", "P", 1, 1, 1, 1)
            for i in range(300)]
    with pytest.raises(Exception):  # noqa: B017
        await store.record_generations([*more, rows[1]])
    assert await store.get_generation("gen-more-0000") is None
    assert await store.spent_total() == sum(10 * i for i in range(600))


async def test_generation_text_and_large_amounts_round_trip_exactly(store: Store) -> None:
    from embedrouter.store.records import GenerationRecord
    odd = 'qu"ote \\back\\slash\ttab\nnewline {"json": [1]} é 中文 🙂 \\u0041'
    rows = [GenerationRecord("gen-odd-1", "k" * 64, odd, f"up/{odd}", f"P {odd}", 2**40,
                             2**62 + 1, 2**50 + 3, 2**31, cached_tokens=2**33),
            GenerationRecord("gen-odd-2", "k" * 64, "m", "up", "P", 0, 0, 0, 0)]
    await store.record_generations(rows)
    assert await store.get_generation("gen-odd-1") == rows[0]
    assert await store.get_generation("gen-odd-2") == rows[1]
    assert await store.spent_total() == 2**62 + 1
    # A batch large enough for PostgreSQL's other way in (COPY) keeps them exactly too.
    many = [GenerationRecord(f"gen-odd-many-{i}", "k" * 64, odd, f"up/{odd}", f"P {odd}",
                             2**40 + i, 1, 2**50, 2**31, cached_tokens=None if i % 2 else i)
            for i in range(100)]
    await store.record_generations(many)
    assert await store.get_generation("gen-odd-many-99") == many[99]
    assert await store.get_generation("gen-odd-many-42") == many[42]
