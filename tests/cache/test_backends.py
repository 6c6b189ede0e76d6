"""Every backend passes the same suite: exact round trip, absent keys, TTL, size bound,
bytes that are not an entry. Run on memory, SQLite and the local Redis."""

from __future__ import annotations

import time

import numpy as np
import pytest

from embedrouter.cache.entry import Entry, decode, encode
from tests.cache.conftest import REDIS_URL, MakeBackend


def entry(seed: int, width: int = 16, tokens: int = 7, exact: bool = True) -> Entry:
    v = np.random.default_rng(seed).standard_normal(width).astype(np.float32)
    return Entry(vector=v, tokens=tokens, exact=exact)


def key(i: int) -> bytes:
    return i.to_bytes(4, "little") * 8


async def test_round_trip_is_bit_exact(make_backend: MakeBackend) -> None:
    backend = await make_backend()
    # Values that a text or float64 detour would change: subnormals, -0.0, extremes.
    odd = np.array([np.float32(1e-45), -0.0, np.finfo(np.float32).max, 1 / 3, np.pi, -1e-38],
                   dtype=np.float32)
    items = {key(0): Entry(odd, 3, True), key(1): entry(1, tokens=12, exact=False)}
    await backend.put_many(items)
    got = await backend.get_many([key(0), key(1), key(2)])
    assert set(got) == {key(0), key(1)}
    for k, want in items.items():
        assert got[k].vector.dtype == np.float32
        assert got[k].vector.tobytes() == want.vector.tobytes()
        assert (got[k].tokens, got[k].exact) == (want.tokens, want.exact)


async def test_absent_keys_are_left_out(make_backend: MakeBackend) -> None:
    backend = await make_backend()
    assert await backend.get_many([key(5), key(6)]) == {}
    await backend.put_many({key(5): entry(5)})
    assert list(await backend.get_many([key(6), key(5)])) == [key(5)]


async def test_rewrite_replaces(make_backend: MakeBackend) -> None:
    backend = await make_backend()
    await backend.put_many({key(1): entry(1)})
    await backend.put_many({key(1): entry(2, tokens=9)})
    got = (await backend.get_many([key(1)]))[key(1)]
    assert got.vector.tobytes() == entry(2).vector.tobytes() and got.tokens == 9


async def test_entries_expire_after_the_ttl(make_backend: MakeBackend) -> None:
    if make_backend.kind == "redis":  # type: ignore[attr-defined]
        # Redis keeps its own clock: a 1 s TTL, polled with a generous deadline.
        backend = await make_backend(ttl_s=1)
        await backend.put_many({key(1): entry(1)})
        assert key(1) in await backend.get_many([key(1)])
        deadline = time.monotonic() + 20
        while key(1) in await backend.get_many([key(1)]):
            assert time.monotonic() < deadline, "a 1 s TTL entry outlived 20 s"
            time.sleep(0.1)
        return
    now = [1_000_000.0]
    backend = await make_backend(ttl_s=60, clock=lambda: now[0])
    await backend.put_many({key(1): entry(1)})
    now[0] += 59
    assert key(1) in await backend.get_many([key(1)])
    now[0] += 2
    assert await backend.get_many([key(1)]) == {}


async def test_size_is_bounded_and_oldest_go_first(make_backend: MakeBackend) -> None:
    if make_backend.kind == "redis":  # type: ignore[attr-defined]
        pytest.skip("Redis bounds itself (maxmemory); entries only carry a TTL")
    width = 256  # 1 KiB vectors
    backend = await make_backend(max_bytes=64 * 1024)
    for i in range(200):
        await backend.put_many({key(i): entry(i, width=width)})
    gauges = backend.gauges()
    assert gauges["bytes"] <= 64 * 1024
    assert gauges["evictions_total"] > 0
    held = await backend.get_many([key(i) for i in range(200)])
    assert key(199) in held and key(0) not in held
    assert 0 < len(held) < 200


async def test_bytes_that_are_not_an_entry_are_a_miss(make_backend: MakeBackend) -> None:
    backend = await make_backend()
    kind = make_backend.kind  # type: ignore[attr-defined]
    if kind == "memory":
        pytest.skip("the memory tier holds Entry objects, never bytes")
    await backend.put_many({key(1): entry(1)})
    if kind == "sqlite":
        db = backend._db  # type: ignore[attr-defined]
        await backend._run(lambda: db.execute(  # type: ignore[attr-defined]
            "UPDATE vectors SET value = ?", (b"\x01garbage",)))
    else:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        client.set(make_backend.prefix.encode() + key(1), b"\x09" * 13)  # type: ignore[attr-defined]
        client.close()
    assert await backend.get_many([key(1)]) == {}
    assert backend.gauges()["corrupt_total"] == 1


def test_entry_codec_refuses_foreign_bytes() -> None:
    e = entry(3, width=5, tokens=2**33)  # a count past 32 bits is clamped, not wrapped
    back = decode(encode(e))
    assert back.tokens == 2**32 - 1 and back.vector.tobytes() == e.vector.tobytes()
    from embedrouter.cache.entry import CorruptEntry

    for raw in (b"", b"\x01\x00", encode(e)[:-1], b"\x02" + encode(e)[1:]):
        with pytest.raises(CorruptEntry):
            decode(raw)
