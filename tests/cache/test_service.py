"""VectorCache.serve with a real memory/SQLite/Redis tier and a compute step the test drives:
single flight, failure isolation between requests, duplicates, failing backends."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from embedrouter.cache.entry import Entry
from embedrouter.cache.memory import MemoryBackend
from embedrouter.cache.policy import REFRESH, USE
from embedrouter.cache.redis import RedisBackend
from embedrouter.cache.service import VectorCache
from embedrouter.cache.sqlite import SqliteBackend
from embedrouter.cache.tiers import Tier, Tiers
from embedrouter.types import EmbeddingResult, Usage

W = 8


def vec(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(W).astype(np.float32)


def key(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=32).digest()


class Upstream:
    """Computes texts (one token per character), optionally held at a gate or failing."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.fail_next = False
        self.started = asyncio.Event()

    def compute_for(self, texts: list[str]):  # type: ignore[no-untyped-def]
        async def compute(positions: list[int]) -> EmbeddingResult:
            batch = [texts[i] for i in positions]
            self.calls.append(batch)
            self.started.set()
            if self.gate is not None:
                await self.gate.wait()
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("upstream refused this batch")
            counts = [len(t) for t in batch]
            return EmbeddingResult(np.stack([vec(t) for t in batch]), "m", "p",
                                   Usage(sum(counts), sum(counts), Decimal(sum(counts))),
                                   input_tokens=counts, input_tokens_exact=True)
        return compute


def memory_cache() -> VectorCache:
    return VectorCache(Tiers([Tier(MemoryBackend(1 << 20, 3600), retry_s=5)]))


async def serve(cache: VectorCache, up: Upstream, texts: list[str], mode=USE):  # type: ignore[no-untyped-def]
    served = await cache.serve([key(t) for t in texts], width=W, mode=mode,
                               compute=up.compute_for(texts))
    np.testing.assert_array_equal(served.vectors, np.stack([vec(t) for t in texts]))
    return served


async def test_duplicates_in_a_batch_are_computed_once_and_counted_as_cached() -> None:
    cache, up = memory_cache(), Upstream()
    served = await serve(cache, up, ["aa", "b", "aa", "aa", "ccc"])
    assert up.calls == [["aa", "b", "ccc"]]
    assert (served.cached_inputs, served.cached_tokens, served.status) == (2, 4, "partial")
    again = await serve(cache, up, ["ccc", "aa", "b", "ccc"])
    assert len(up.calls) == 1
    assert (again.cached_inputs, again.cached_tokens, again.status) == (4, 9, "hit")


async def test_concurrent_identical_misses_share_one_computation() -> None:
    cache, up = memory_cache(), Upstream()
    up.gate = asyncio.Event()
    first = asyncio.create_task(serve(cache, up, ["x", "shared"]))
    await asyncio.wait_for(up.started.wait(), 10)
    second = asyncio.create_task(serve(cache, up, ["shared", "y"]))
    # The second request computes "y" on its own and waits on the first for "shared".
    while len(up.calls) < 2:
        await asyncio.sleep(0.01)
    up.gate.set()
    a, b = await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert sorted(map(tuple, up.calls)) == [("x", "shared"), ("y",)]
    assert (a.cached_inputs, b.cached_inputs, b.cached_tokens) == (0, 1, len("shared"))
    assert cache.flight.joined == 1 and cache.stats()["single_flight"]["in_flight"] == 0


@pytest.mark.parametrize("how", ["fails", "is_cancelled"])
async def test_a_leader_that_fails_releases_its_followers(how: str) -> None:
    cache, up = memory_cache(), Upstream()
    up.gate = asyncio.Event()
    up.fail_next = how == "fails"
    leader = asyncio.create_task(serve(cache, up, ["too-long-elsewhere", "shared"]))
    await asyncio.wait_for(up.started.wait(), 10)
    follower = asyncio.create_task(serve(cache, up, ["shared"]))
    for _ in range(10):  # scheduling steps (no clock): the follower reaches its wait
        await asyncio.sleep(0)
    if how == "fails":
        up.gate.set()
        with pytest.raises(RuntimeError, match="refused"):
            await asyncio.wait_for(leader, 10)
    else:
        leader.cancel()  # its client went away
        up.gate.set()
    got = await asyncio.wait_for(follower, 10)  # never the leader's error, never a hang
    assert got.cached_inputs == 0 and up.calls[-1] == ["shared"]
    assert cache.flight.released == 1  # it did wait on the leader, and was let go


async def test_no_cache_computes_for_itself_and_still_stores() -> None:
    cache, up = memory_cache(), Upstream()
    await serve(cache, up, ["a"])
    fresh = await serve(cache, up, ["a"], mode=REFRESH)
    assert fresh.status == "miss" and len(up.calls) == 2
    assert (await serve(cache, up, ["a"])).status == "hit"


async def test_a_failing_backend_is_skipped_with_a_log_line_and_a_metric(
        caplog: pytest.LogCaptureFixture) -> None:
    # A real Redis client pointed at a port nothing listens on.
    dead = RedisBackend("redis://:hunter2-secret@127.0.0.1:9/0", ttl_s=60, timeout_s=0.5,
                        prefix="x:")
    cache = VectorCache(Tiers([Tier(MemoryBackend(1 << 20, 3600), retry_s=5),
                               Tier(dead, retry_s=60)]))
    up = Upstream()
    with caplog.at_level(logging.WARNING, logger="embedrouter.cache"):
        first = await serve(cache, up, ["a", "b"])
        second = await serve(cache, up, ["a", "c"])
    await dead.close()
    assert first.status == "miss" and second.status == "partial"
    redis = cache.stats()["redis"]
    assert redis["errors_total"] == 1  # then skipped, not retried on every request
    assert redis["skipped_total"] >= 2
    assert "vector cache backend redis failed" in caplog.text
    assert "hunter2" not in caplog.text


async def test_a_hit_below_fills_the_tiers_above(tmp_path: Path) -> None:
    sqlite = await SqliteBackend(tmp_path / "v.sqlite3", max_bytes=1 << 20, ttl_s=60).open()
    memory = MemoryBackend(1 << 20, 3600)
    cache = VectorCache(Tiers([Tier(memory, retry_s=5), Tier(sqlite, retry_s=5)]))
    try:
        await sqlite.put_many({key("a"): Entry(vec("a"), 1)})
        up = Upstream()
        assert (await serve(cache, up, ["a"])).status == "hit"
        assert key("a") in await memory.get_many([key("a")])
        stats = cache.stats()
        assert (stats["memory"]["misses_total"], stats["sqlite"]["hits_total"]) == (1, 1)
    finally:
        await sqlite.close()


async def test_an_entry_of_another_width_is_a_miss_never_a_vector() -> None:
    memory = MemoryBackend(1 << 20, 3600)
    cache = VectorCache(Tiers([Tier(memory, retry_s=5)]))
    await memory.put_many({key("a"): Entry(np.zeros(W + 1, np.float32), 1)})
    up = Upstream()
    served = await serve(cache, up, ["a"])
    assert served.status == "miss" and cache.stats()["memory"]["corrupt_total"] == 1
