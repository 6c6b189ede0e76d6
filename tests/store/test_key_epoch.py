"""Key epochs: every key change by another process moves the epoch, so KeyService may reuse a
key record between changes and still refuse a disabled key on its next request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from embedrouter.accounts.keys import KeyService
from embedrouter.errors import AuthenticationFailed
from embedrouter.store import Store
from embedrouter.store.postgres import PostgresStore
from tests.store.backends import PG_URL, OpenDb
from tests.store.test_store import rec

# PostgreSQL delivers NOTIFY at commit; on this machine it arrives in about a millisecond.
DELIVERY_BOUND_S = 1.0


async def within(check: Callable[[], Any], seconds: float) -> float:
    """Poll ``check`` until it is truthy; return how long that took, or fail after ``seconds``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            pytest.fail(f"not true within {seconds} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


def count_reads(store: Store) -> Callable[[], int]:
    """Wrap the store's get_key; the returned function says how often it was called."""
    calls = [0]
    real_get = store.get_key

    async def counted(key_hash: str) -> Any:
        calls[0] += 1
        return await real_get(key_hash)

    store.get_key = counted  # type: ignore[method-assign]
    return lambda: calls[0]


async def live_epoch(store: Store) -> object:
    await within(lambda: store.keys_epoch() is not None, 5.0)  # the listener has connected
    return store.keys_epoch()


async def test_every_key_change_in_another_store_moves_the_epoch(open_db: OpenDb) -> None:
    writer, reader = await open_db(), await open_db()
    key = rec(1)
    await writer.insert_key(key)
    changes = [lambda: writer.set_key_disabled(key.key_hash, True),
               lambda: writer.update_key(key.key_hash, {"label": "renamed"}),
               lambda: writer.delete_key(key.key_hash)]
    for change in changes:
        before = await live_epoch(reader)
        assert reader.keys_epoch() == before  # stable while nothing changes
        assert await change()
        if isinstance(reader, PostgresStore):
            took = await within(lambda b=before: reader.keys_epoch() not in (None, b),
                                DELIVERY_BOUND_S)
            assert took < DELIVERY_BOUND_S
        else:  # the writer replaced the sidecar file before its call returned
            assert reader.keys_epoch() not in (None, before)


async def test_generation_rows_do_not_move_the_epoch(open_db: OpenDb) -> None:
    from embedrouter.store.records import GenerationRecord
    store = await open_db()
    before = await live_epoch(store)
    await store.record_generations([GenerationRecord("g1", "k", "m", "up", "P", 1, 0, 1, 1)])
    await store.add_credits("grant", 5, 1, "")
    await asyncio.sleep(0.05)
    assert store.keys_epoch() == before


async def test_a_cached_key_is_read_once_per_epoch_and_refused_once_disabled_elsewhere(
        open_db: OpenDb) -> None:
    admin_store, server_store = await open_db(), await open_db()
    admin, server = KeyService(admin_store), KeyService(server_store)
    key, record = await admin.create("cached")
    await live_epoch(server_store)
    reads = count_reads(server_store)
    for _ in range(5):
        assert (await server.authenticate(f"Bearer {key}")).key_hash == record.key_hash
    assert reads() == 1

    before = server_store.keys_epoch()
    await admin.disable(key)
    if isinstance(server_store, PostgresStore):  # NOTIFY arrives just after the commit
        await within(lambda: server_store.keys_epoch() not in (None, before), DELIVERY_BOUND_S)
    with pytest.raises(AuthenticationFailed, match="disabled"):
        await server.authenticate(f"Bearer {key}")
    assert reads() == 2


async def test_a_store_with_no_epoch_reads_every_time(open_db: OpenDb) -> None:
    store = await open_db()
    service = KeyService(store)
    key, _ = await service.create("uncached")
    await live_epoch(store)
    store.keys_epoch = lambda: None  # type: ignore[method-assign]
    reads = count_reads(store)
    for _ in range(3):
        await service.authenticate(f"Bearer {key}")
    assert reads() == 3


async def test_postgres_listener_loss_stops_caching_until_it_is_back(pg_url: str) -> None:
    from embedrouter.store import open_store
    store = await open_store(pg_url)
    try:
        assert isinstance(store, PostgresStore)
        before = await live_epoch(store)
        pid = store._key_epoch.backend_pid if store._key_epoch else None
        assert pid is not None
        async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as conn:
            await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # Until the listener is back, any change could go unseen: no epoch, so no caching.
        await within(lambda: store.keys_epoch() is None, 5.0)
        after = await live_epoch(store)
        assert after != before  # what was cached before the loss is not trusted after it
    finally:
        await store.close()


def test_a_sqlite_server_does_not_load_the_postgresql_driver() -> None:
    import subprocess
    import sys
    code = ("import sys, embedrouter.server, embedrouter.store.sqlite, embedrouter.accounts.keys;"
            "print(sorted(m for m in ('psycopg', 'psycopg_pool', 'redis') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
