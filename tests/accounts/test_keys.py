"""KeyService on both backends: creation, hashed storage, authentication, disabling,
bootstrap."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from embedrouter.accounts import KEY_PREFIX, KeyService, display_key, generate_key, hash_key
from embedrouter.accounts.keys import (
    MALFORMED_HEADER,
    MALFORMED_KEY,
    MISSING_HEADER,
    UNKNOWN_KEY,
)
from embedrouter.errors import AuthenticationFailed, InvalidRequest, NotFound
from embedrouter.store import KeyRecord, Store, open_store, sqlite_path
from tests.store.backends import OpenDb


def test_generated_keys_have_the_documented_shape() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert re.fullmatch(r"sk-er-v1-[0-9a-f]{64}", key)


def test_hash_is_sha256_hex_and_display_hides_the_middle() -> None:
    # FIPS 180-2 test vector for "abc".
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    key = KEY_PREFIX + "3f9" + "0" * 58 + "a1c"
    assert display_key(key) == "sk-er-v1-3f9…a1c"


async def test_create_returns_plaintext_and_stores_only_the_hash(keys: KeyService,
                                                                 store: Store) -> None:
    key, record = await keys.create("  my app  ")
    assert key.startswith(KEY_PREFIX)
    assert record.key_hash == hash_key(key)
    assert record.label == "my app"
    assert record.display == display_key(key) and key not in record.display
    assert not record.is_management and not record.disabled and record.can_embed
    assert await store.get_key(hash_key(key)) == record


async def test_management_keys_cannot_embed(keys: KeyService) -> None:
    _, record = await keys.create("admin", management=True)
    assert record.is_management and not record.can_embed and record.can_manage


# NUL: PostgreSQL text cannot hold it (a 500 from the driver before it was refused here).
@pytest.mark.parametrize("label", ["", "   ", "x" * 201, "x" + " " * 200, "a\x00b"])
async def test_bad_labels_are_refused(keys: KeyService, label: str) -> None:
    with pytest.raises(InvalidRequest):
        await keys.create(label)


async def _raw_rows(db_url: str) -> str:
    """Every row of every embedrouter table, straight from the database, as one string."""
    tables = ("embedrouter_keys", "embedrouter_markers", "embedrouter_schema_version")
    if db_url.startswith("sqlite"):
        with sqlite3.connect(sqlite_path(db_url)) as conn:
            return repr([conn.execute(f"SELECT * FROM {t}").fetchall() for t in tables])
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        out = []
        for t in tables:
            cur = await conn.execute(f"SELECT * FROM {t}")
            out.append(await cur.fetchall())
        return repr(out)


async def test_plaintext_never_reaches_the_database(keys: KeyService, db_url: str) -> None:
    bootstrap = await keys.ensure_bootstrap_key()
    assert bootstrap is not None
    created = [(await keys.create(f"k{i}"))[0] for i in range(3)]
    raw = await _raw_rows(db_url)
    for key in [bootstrap, *created]:
        assert hash_key(key) in raw  # the rows are really there...
        assert key not in raw  # ...but no key, nor its secret part, is
        assert key.removeprefix(KEY_PREFIX) not in raw
        assert key.removeprefix(KEY_PREFIX)[3:-3] not in raw
    if db_url.startswith("sqlite"):
        # Also not in the file bytes (free pages, WAL) where a deleted or rolled-back row
        # could linger.
        path = sqlite_path(db_url)
        blob = b"".join(p.read_bytes() for p in path.parent.iterdir() if p.is_file())
        for key in [bootstrap, *created]:
            assert key.removeprefix(KEY_PREFIX).encode() not in blob


# --- authenticate --------------------------------------------------------------------------


async def _fail(keys: KeyService, header: str | None) -> str:
    with pytest.raises(AuthenticationFailed) as info:
        await keys.authenticate(header)
    return info.value.message


async def test_missing_header(keys: KeyService) -> None:
    assert await _fail(keys, None) == MISSING_HEADER
    assert await _fail(keys, "") == MISSING_HEADER
    assert await _fail(keys, "   ") == MISSING_HEADER


@pytest.mark.parametrize("header", ["Basic x", "Bearer", "Bearer ", "Bearer   ", "Token abc",
                                    "Bearer a b", "sk-er-v1-abc"])
async def test_malformed_header(keys: KeyService, header: str) -> None:
    assert await _fail(keys, header) == MALFORMED_HEADER


@pytest.mark.parametrize("token", ["abc", KEY_PREFIX + "0" * 63, KEY_PREFIX + "G" * 64,
                                   KEY_PREFIX.upper() + "0" * 64, "sk-or-v1-" + "0" * 64,
                                   KEY_PREFIX + "\x00" * 64, KEY_PREFIX + "\ud800" * 64])
async def test_malformed_key(keys: KeyService, token: str) -> None:
    assert await _fail(keys, f"Bearer {token}") == MALFORMED_KEY


async def test_unknown_key(keys: KeyService) -> None:
    await keys.create("someone else")
    assert await _fail(keys, f"Bearer {generate_key()}") == UNKNOWN_KEY


async def test_disabled_key_names_only_its_display_form(keys: KeyService) -> None:
    key, record = await keys.create("app")
    await keys.disable(key)
    message = await _fail(keys, f"Bearer {key}")
    assert message == f"API key {record.display} is disabled"
    assert key not in message and record.key_hash not in message
    distinct = {MISSING_HEADER, MALFORMED_HEADER, MALFORMED_KEY, UNKNOWN_KEY, message}
    assert len(distinct) == 5


@pytest.mark.parametrize("template", ["Bearer {}", "bearer {}", "BEARER {}", "  Bearer   {}  ",
                                      "Bearer\t{}", "bEaReR {}\r\n"])
async def test_good_key_in_any_accepted_spelling(keys: KeyService, template: str) -> None:
    key, record = await keys.create("app")
    assert await keys.authenticate(template.format(key)) == record


async def test_management_key_authenticates_but_cannot_embed(keys: KeyService) -> None:
    key, _ = await keys.create("admin", management=True)
    record = await keys.authenticate(f"Bearer {key}")
    assert record.is_management and not record.can_embed


async def test_disable_in_another_process_is_seen_on_the_next_request(open_db: OpenDb) -> None:
    server = KeyService(await open_db())
    cli = KeyService(await open_db())  # separate connection, as `embedrouter keys disable`
    key, _ = await server.create("app")
    await server.authenticate(f"Bearer {key}")
    await cli.disable(key)
    with pytest.raises(AuthenticationFailed, match="disabled"):
        await server.authenticate(f"Bearer {key}")


# --- disable -------------------------------------------------------------------------------


async def test_disable_by_key_hash_and_prefix(keys: KeyService) -> None:
    (k1, r1), (_, r2), (_, r3) = [await keys.create(f"k{i}") for i in range(3)]
    by_key = await keys.disable(k1)
    assert by_key.key_hash == r1.key_hash and by_key.disabled
    by_hash = await keys.disable(r2.key_hash.upper())  # hex case does not matter
    assert by_hash.key_hash == r2.key_hash and by_hash.disabled
    by_prefix = await keys.disable(f"  {r3.key_hash[:8]} ")
    assert by_prefix.key_hash == r3.key_hash and by_prefix.disabled
    assert all(r.disabled for r in await keys.list())
    again = await keys.disable(k1)  # already disabled: not an error
    assert again.disabled


async def test_disable_ambiguous_prefix(keys: KeyService, store: Store) -> None:
    # Two hashes sharing a 10-char prefix: cheaper to plant than to find by brute force.
    for tail in ("a", "b"):
        await store.insert_key(KeyRecord(key_hash="0123456789" + tail * 54, label=f"t{tail}",
                                         is_management=False, disabled=False, created_at=1,
                                         display="sk-er-v1-000…000"))
    with pytest.raises(InvalidRequest, match="matches 2 keys") as info:
        await keys.disable("01234567")
    assert "0123456789" not in info.value.message  # no hash material in the message
    one = await keys.disable("0123456789a")
    assert one.label == "ta" and one.disabled
    assert not (await store.get_key("0123456789" + "b" * 54)).disabled  # type: ignore[union-attr]


@pytest.mark.parametrize("ref", ["deadbeef", "f" * 64, "f" * 40])
async def test_disable_unknown_is_not_found(keys: KeyService, ref: str) -> None:
    await keys.create("app")
    with pytest.raises(NotFound):
        await keys.disable(ref)


async def test_disable_unknown_key_is_not_found(keys: KeyService) -> None:
    with pytest.raises(NotFound):
        await keys.disable(generate_key())


@pytest.mark.parametrize("ref", ["", "abc", "1234567", "not-hex-at-all", KEY_PREFIX + "12",
                                 "g" * 64, "0" * 65])
async def test_disable_bad_reference(keys: KeyService, ref: str) -> None:
    with pytest.raises(InvalidRequest):
        await keys.disable(ref)


# --- bootstrap -----------------------------------------------------------------------------


async def test_bootstrap_creates_one_management_key_once(keys: KeyService) -> None:
    key = await keys.ensure_bootstrap_key()
    assert key is not None
    record = await keys.authenticate(f"Bearer {key}")
    assert record.label == "bootstrap" and record.is_management
    assert await keys.ensure_bootstrap_key() is None
    assert len(await keys.list()) == 1


async def test_no_bootstrap_when_keys_exist(keys: KeyService) -> None:
    await keys.create("made by the CLI first")
    assert await keys.ensure_bootstrap_key() is None
    assert [r.label for r in await keys.list()] == ["made by the CLI first"]


async def test_concurrent_bootstrap_creates_exactly_one_key(open_db: OpenDb) -> None:
    a, b = await open_db(), await open_db()
    results = await asyncio.gather(KeyService(a).ensure_bootstrap_key(),
                                   KeyService(b).ensure_bootstrap_key())
    created = [r for r in results if r is not None]
    assert len(created) == 1
    records = await KeyService(a).list()
    assert len(records) == 1 and records[0].key_hash == hash_key(created[0])


async def test_many_concurrent_bootstraps_create_exactly_one_key(open_db: OpenDb) -> None:
    services = [KeyService(await open_db()) for _ in range(6)]
    results = await asyncio.gather(*(s.ensure_bootstrap_key() for s in services))
    assert sum(r is not None for r in results) == 1
    assert len(await services[0].list()) == 1


class _RacingStore:
    """Reports an empty store to the fast path, so that every caller reaches the atomic
    insert at the same moment: the worst case of processes starting together."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner

    async def count_keys(self) -> int:
        await asyncio.sleep(0)
        return 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


async def test_bootstrap_race_past_the_fast_path_creates_exactly_one_key(
        open_db: OpenDb) -> None:
    services = [KeyService(_RacingStore(await open_db())) for _ in range(4)]  # type: ignore[arg-type]
    results = await asyncio.gather(*(s.ensure_bootstrap_key() for s in services))
    assert sum(r is not None for r in results) == 1
    assert len(await services[0].list()) == 1


def test_bootstrap_from_threads_with_their_own_loops_creates_exactly_one_key(
        db_url: str) -> None:
    # Closest to two processes: separate connections and event loops, truly in parallel
    # (sqlite3 and psycopg release the GIL while they wait on the database).
    barrier = threading.Barrier(6)

    async def start() -> str | None:
        store = await open_store(db_url)
        try:
            keys = KeyService(_RacingStore(store))  # type: ignore[arg-type]
            await asyncio.to_thread(barrier.wait)
            return await keys.ensure_bootstrap_key()
        finally:
            await store.close()

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: asyncio.run(start()), range(6)))
    assert sum(r is not None for r in results) == 1

    async def count() -> int:
        store = await open_store(db_url)
        try:
            return await store.count_keys()
        finally:
            await store.close()

    assert asyncio.run(count()) == 1
