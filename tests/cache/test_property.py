"""The cache's contract end to end through the real router, dispatcher and OpenAI adapter,
against the fake upstream over HTTP (answering every call in reverse order), on each backend:
random batches, random hit/miss masks from the history, duplicates inside a batch, per-request
Cache-Control. Every row must be the uncached vector of the input at that index; only the
misses go upstream, each once; usage and cost must add up."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections import Counter
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedrouter.cache import VectorCache, resolve_mode
from embedrouter.cache.memory import MemoryBackend
from embedrouter.cache.redis import RedisBackend
from embedrouter.cache.sqlite import SqliteBackend
from embedrouter.cache.tiers import Tier, Tiers
from embedrouter.catalog import build_catalog
from embedrouter.router import Router
from embedrouter.server import build_dispatcher
from embedrouter.settings import load_settings
from embedrouter.types import EmbeddingRequest, TextInput
from tests.cache.conftest import (
    REDIS_URL,
    REMOTE_MODEL,
    drop_prefix,
    fresh_prefix,
    remote_config,
    require_redis,
)
from tests.support.fake_formats import DEFAULT_DIM, tokens_for, vector_for
from tests.support.fake_upstreams import API_KEY, FakeUpstreams, Step

MODEL = REMOTE_MODEL
PRICE = Decimal("0.13")
VOCAB = ["alpha", "beta gamma", "delta epsilon zeta", "eta", "theta iota", "kappa",
         "lambda mu nu xi", "omicron"]
TEXT = st.one_of(st.sampled_from(VOCAB),
                 st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12))
REQUESTS = st.lists(st.tuples(st.lists(TEXT, min_size=1, max_size=10),
                              st.sampled_from([None, None, None, "no-cache", "no-store"])),
                    min_size=1, max_size=6)


async def open_tier(kind: str, folder: Path, prefix: str) -> Tier:
    if kind == "memory":
        return Tier(MemoryBackend(1 << 24, 3600), retry_s=5)
    if kind == "sqlite":
        return Tier(await SqliteBackend(folder / "v.sqlite3", max_bytes=1 << 24,
                                        ttl_s=3600).open(), retry_s=5)
    return Tier(RedisBackend(REDIS_URL, ttl_s=3600, timeout_s=2, prefix=prefix), retry_s=5)


def seen_inputs(fake: FakeUpstreams, since: int) -> list[str]:
    with fake._lock:
        return [x for s in fake.seen[since:] for x in s.json["input"]]


async def scenario(fake: FakeUpstreams, kind: str, cap: int, concurrent: bool,
                   requests: list[tuple[list[str], str | None]]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="er-cache-prop-"))
    prefix = fresh_prefix()
    cfg = folder / "embedrouter.toml"
    cfg.write_text(remote_config(fake, price=str(PRICE), max_inputs=cap))
    s = load_settings(cfg, env={"ALPHA_KEY": API_KEY})
    cache = VectorCache(Tiers([await open_tier(kind, folder, prefix)]))
    router = Router(build_catalog([], {}, s.remote_models), {}, build_dispatcher(s),
                    deadline_s=20, cache=cache)
    fake.reset()
    fake.script(*[Step.ok("shuffle")] * 500)  # every reply out of order
    try:
        if concurrent:
            results = await asyncio.gather(*(
                router.embed(EmbeddingRequest(MODEL, tuple(map(TextInput, texts))),
                             cache=resolve_mode(None, header)) for texts, header in requests))
            for (texts, _), result in zip(requests, results, strict=True):
                check_rows(texts, result.vectors)
                if cap == 1:
                    assert result.usage.prompt_tokens == sum(map(tokens_for, texts))
            return
        stored: dict[str, int] = {}  # text -> the count stored with it (exact when cap == 1)
        for texts, header in requests:
            mode = resolve_mode(None, header)
            before = len(fake.seen)
            result = await router.embed(EmbeddingRequest(MODEL, tuple(map(TextInput, texts))),
                                        cache=mode)
            check_rows(texts, result.vectors)
            sent = seen_inputs(fake, before)
            usage = result.usage
            if not mode.active:  # no-store: exactly today's path
                assert Counter(sent) == Counter(texts)
                assert usage.cached_tokens is None
                assert usage.prompt_tokens == sum(map(tokens_for, texts))
                continue
            hits = set(stored) if mode.read else set()
            # Only the misses went upstream, each once, however the batch repeats them.
            assert Counter(sent) == Counter(dict.fromkeys(
                [t for t in dict.fromkeys(texts) if t not in hits], 1))
            upstream_tokens = sum(map(tokens_for, sent))
            assert usage.prompt_tokens == usage.cached_tokens + upstream_tokens
            assert usage.cost == PRICE * upstream_tokens / 1_000_000  # hits are free
            if cap == 1:  # every count is the upstream's own: usage as if uncached
                assert usage.prompt_tokens == sum(map(tokens_for, texts))
                assert not usage.estimated
            computed_once = set(sent)
            cached_positions = [t for i, t in enumerate(texts)
                                if not (t in computed_once and texts.index(t) == i)]
            if cap == 1:
                assert usage.cached_tokens == sum(map(tokens_for, cached_positions))
            want_status = ("hit" if not sent else
                           "partial" if cached_positions else "miss")
            assert result.cache == want_status
            if mode.write:
                for t in computed_once:
                    stored[t] = tokens_for(t)
    finally:
        await router.close()
        await cache.close()
        fake.reset()
        shutil.rmtree(folder, ignore_errors=True)
        if kind == "redis":
            drop_prefix(prefix)


def check_rows(texts: list[str], vectors: np.ndarray) -> None:
    assert vectors.shape == (len(texts), DEFAULT_DIM)
    for i, t in enumerate(texts):
        # Bit for bit the uncached vector of the input at this index.
        assert vectors[i].tobytes() == vector_for(t, DEFAULT_DIM).tobytes(), (i, t)


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(requests=REQUESTS, cap=st.sampled_from([1, 3]), concurrent=st.booleans())
def test_every_row_is_its_own_inputs_vector(fake: FakeUpstreams, kind: str, cap: int,
                                            concurrent: bool,
                                            requests: list[tuple[list[str], str | None]]
                                            ) -> None:
    if kind == "redis":
        require_redis()
    asyncio.run(scenario(fake, kind, cap, concurrent, requests))
