"""Key epochs: on SQLite every key change by another process moves the epoch, so KeyService may
reuse a key record between changes and still refuse a disabled key on its next request; on
PostgreSQL there is no epoch (a NOTIFY arrives after the change's command returns), so every
request reads its key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from embedrouter.accounts.keys import KeyService
from embedrouter.errors import AuthenticationFailed
from embedrouter.store import Store, open_store
from tests.store.test_store import rec

OpenSqlite = Callable[[], Awaitable[Store]]


@pytest.fixture
async def open_sqlite(tmp_path: Path) -> AsyncIterator[OpenSqlite]:
    """Opens stores on one SQLite file, as separate processes (server, CLI) would."""
    opened: list[Store] = []

    async def open_one() -> Store:
        store = await open_store(f"sqlite:///{tmp_path / 'embedrouter.db'}")
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()


def count_reads(store: Store) -> Callable[[], int]:
    """Wrap the store's get_key; the returned function says how often it was called."""
    calls = [0]
    real_get = store.get_key

    async def counted(key_hash: str) -> Any:
        calls[0] += 1
        return await real_get(key_hash)

    store.get_key = counted  # type: ignore[method-assign]
    return lambda: calls[0]


async def test_every_key_change_in_another_store_moves_the_epoch(
        open_sqlite: OpenSqlite) -> None:
    writer, reader = await open_sqlite(), await open_sqlite()
    key = rec(1)
    await writer.insert_key(key)
    changes = [lambda: writer.set_key_disabled(key.key_hash, True),
               lambda: writer.update_key(key.key_hash, {"label": "renamed"}),
               lambda: writer.delete_key(key.key_hash)]
    for change in changes:
        before = reader.keys_epoch()
        assert before is not None and reader.keys_epoch() == before  # stable while unchanged
        assert await change()
        # The writer bumped the shared counter before its call returned.
        assert reader.keys_epoch() not in (None, before)


async def test_generation_rows_do_not_move_the_epoch(open_sqlite: OpenSqlite) -> None:
    from embedrouter.store.records import GenerationRecord
    store = await open_sqlite()
    before = store.keys_epoch()
    await store.record_generations([GenerationRecord("g1", "k", "m", "up", "P", 1, 0, 1, 1)])
    await store.add_credits("grant", 5, 1, "")
    assert store.keys_epoch() == before


async def test_a_cached_key_is_read_once_per_epoch_and_refused_once_disabled_elsewhere(
        open_sqlite: OpenSqlite) -> None:
    admin_store, server_store = await open_sqlite(), await open_sqlite()
    admin, server = KeyService(admin_store), KeyService(server_store)
    key, record = await admin.create("cached")
    reads = count_reads(server_store)
    for _ in range(5):
        assert (await server.authenticate(f"Bearer {key}")).key_hash == record.key_hash
    assert reads() == 1
    await admin.disable(key)
    with pytest.raises(AuthenticationFailed, match="disabled"):
        await server.authenticate(f"Bearer {key}")
    assert reads() == 2


async def test_a_store_with_no_epoch_reads_every_time(open_sqlite: OpenSqlite) -> None:
    store = await open_sqlite()
    service = KeyService(store)
    key, _ = await service.create("uncached")
    store.keys_epoch = lambda: None  # type: ignore[method-assign]
    reads = count_reads(store)
    for _ in range(3):
        await service.authenticate(f"Bearer {key}")
    assert reads() == 3


async def test_postgresql_reads_the_key_every_time_and_refuses_a_disabled_one_at_once(
        pg_url: str) -> None:
    admin_store, server_store = await open_store(pg_url), await open_store(pg_url)
    try:
        assert server_store.keys_epoch() is None
        admin, server = KeyService(admin_store), KeyService(server_store)
        key, _ = await admin.create("pg")
        reads = count_reads(server_store)
        for _ in range(3):
            await server.authenticate(f"Bearer {key}")
        assert reads() == 3
        await admin.disable(key)
        with pytest.raises(AuthenticationFailed, match="disabled"):
            await server.authenticate(f"Bearer {key}")
    finally:
        await admin_store.close()
        await server_store.close()


def test_a_sqlite_server_does_not_load_the_postgresql_driver() -> None:
    import subprocess
    import sys
    code = ("import sys, embedrouter.server, embedrouter.store.sqlite, embedrouter.accounts.keys;"
            "print(sorted(m for m in ('psycopg', 'psycopg_pool', 'redis') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
