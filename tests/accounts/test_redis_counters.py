"""Shared-mode specifics: holds of a dead instance are reclaimed from the ledger exactly once,
and a Redis that does not answer refuses metered requests with a 503 (logged and counted)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis

from embedrouter.accounts.counters import Claim, Hold, RateScope, Refused
from embedrouter.accounts.money import parse_usd, to_nanos
from embedrouter.accounts.redis_counters import DONE_TTL_S, CountersUnavailable, RedisCounters
from embedrouter.errors import PaymentRequired
from embedrouter.store.records import GenerationRecord
from embedrouter.types import Quote
from tests.accounts.harness import MODEL, Env, enforced, make_env
from tests.support.redis_scratch import REDIS_URL

QUOTE = Quote(model=MODEL, tokens=10, cost=Decimal("0.01"))


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with make_env("pg+redis", tmp_path, enforced(reservation_ttl_s=30)) as e:
        await e.store.add_credits("g", parse_usd("0.02"), 0, "")
        yield e


def counters(env: Env) -> RedisCounters:
    c = env.accounts.counters
    assert isinstance(c, RedisCounters)
    return c


async def crashed_reservation(env: Env, gen_id: str) -> None:
    """A request that reserved and then lost its instance (no settle, no release)."""
    gate = env.accounts.gate(await env.key(), gen_id)
    await gate.reserve(QUOTE)


async def test_uncharged_hold_of_a_dead_instance_is_released_after_expiry(env: Env) -> None:
    await crashed_reservation(env, "gen-dead")
    assert (await counters(env).snapshot())["held"] == to_nanos(QUOTE.cost)
    now_ms = env.accounts.now_ms()
    assert await counters(env).reclaim(now_ms) == 0  # not expired yet: never taken early
    assert await counters(env).reclaim(now_ms + 31_000) == 1
    assert await counters(env).snapshot() == {"spent": 0, "held": 0}
    key = await env.key()
    await env.embed(key, "gen-1")
    await env.embed(key, "gen-2")  # the whole balance is usable again


async def test_charged_hold_of_a_dead_instance_is_settled_from_the_ledger(env: Env) -> None:
    await crashed_reservation(env, "gen-dead")
    cost = to_nanos(Decimal("0.006"))
    # The instance committed the charge, then died before settling the counters.
    await env.store.record_generations([GenerationRecord(
        "gen-dead", "k", MODEL, "up", "Fake", 6, cost, env.accounts.now_ms(), 1)])
    assert await counters(env).reclaim(env.accounts.now_ms() + 31_000) == 1
    assert await counters(env).snapshot() == {"spent": cost, "held": 0}
    assert await counters(env).reclaim(env.accounts.now_ms() + 62_000) == 0  # only once


async def test_settle_after_reclaim_counts_the_charge_once(env: Env) -> None:
    key = await env.key()
    gate = env.accounts.gate(key, "gen-slow")
    await gate.reserve(QUOTE)
    hold = gate._hold
    assert isinstance(hold, Hold)
    # The reclaimer found no charge yet and released the hold; then the request finished.
    assert await counters(env).reclaim(env.accounts.now_ms() + 31_000) == 1
    await counters(env).settle(hold, to_nanos(QUOTE.cost), 10)
    await counters(env).settle(hold, to_nanos(QUOTE.cost), 10)  # a repeat is a no-op
    assert await counters(env).snapshot() == {"spent": to_nanos(QUOTE.cost), "held": 0}


async def test_counters_rebuild_from_the_ledger_when_redis_lost_them(env: Env) -> None:
    key = await env.key()
    await env.embed(key, "gen-1")
    client = counters(env)._redis
    await client.delete(f"{counters(env)._p}acct")  # as after a Redis restart
    await env.embed(key, "gen-2")  # seeded from the ledger: one cent spent, one left
    with pytest.raises(PaymentRequired):
        await env.embed(key, "gen-3")


async def test_a_lost_key_window_is_seeded_from_the_ledger_alone(env: Env) -> None:
    # The account's counters survive and only the key's spend window is gone (it expired, or
    # was evicted): the claim asks for that one seed, and the key limit still holds.
    await env.store.add_credits("g-more", parse_usd("1"), 0, "")
    key = await env.key(limit_nanos=parse_usd("0.02"), limit_reset="daily")
    await env.embed(key, "gen-1")
    c = counters(env)
    raw = redis.Redis.from_url(REDIS_URL)
    try:
        windows = [k for k in raw.scan_iter(match=f"{c._p}kw:*")]
        assert len(windows) == 1
        raw.delete(*windows)
        assert raw.exists(f"{c._p}acct")
    finally:
        raw.close()
    await env.embed(key, "gen-2")  # seeded from the ledger: one cent of two spent
    with pytest.raises(PaymentRequired, match="Key limit"):
        await env.embed(key, "gen-3")
    assert await c.snapshot() == {"spent": 2 * to_nanos(QUOTE.cost), "held": 0}


async def test_redis_down_refuses_with_503_logs_once_and_counts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with make_env("pg+redis", tmp_path, enforced()) as env:
        dead = RedisCounters("redis://127.0.0.1:1/0", env.store, env.store,
                             socket_timeout_s=0.5)
        env.accounts.counters = dead
        key = await env.key()
        caplog.set_level(logging.ERROR, logger="embedrouter.accounts")
        for i in range(3):
            with pytest.raises(CountersUnavailable):
                await env.embed(key, f"gen-{i}")
        await dead.close()
    assert env.provider_calls == 0  # nothing served unmetered
    assert dead.errors == 3
    lines = [r.getMessage() for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "503" in lines[0]


async def test_a_connection_lost_mid_use_fails_one_request_then_serves_again(env: Env) -> None:
    await env.store.add_credits("g-more", parse_usd("1"), 0, "")
    key = await env.key()
    await env.embed(key, "gen-before")  # the claim's connection is open now
    await counters(env).settled()  # and idle: its settle went out behind the response
    conn = counters(env)._wire._conn
    assert conn is not None and conn.transport is not None
    port = conn.transport.get_extra_info("sockname")[1]
    raw = redis.Redis.from_url(REDIS_URL)
    try:  # what a Redis restart or a proxy dropping the connection looks like to the client
        assert raw.client_kill_filter(addr=f"127.0.0.1:{port}") == 1
    finally:
        raw.close()
    with pytest.raises(CountersUnavailable):
        for i in range(50):  # the kill reaches this loop a moment later
            await env.embed(key, f"gen-during-{i}")
            await asyncio.sleep(0.01)
    assert counters(env).errors == 1
    await env.embed(key, "gen-after")  # reconnected on the next call
    await counters(env).settled()
    assert (await counters(env).snapshot())["held"] == 0


async def test_a_request_whose_hold_was_reclaimed_is_not_charged(env: Env) -> None:
    from embedrouter.errors import ServiceUnavailable

    key = await env.key()

    async def slow(reserve, _computed):  # type: ignore[no-untyped-def]
        await reserve(QUOTE)
        # The provider took longer than the reservation lives (30 s), and meanwhile another
        # instance decided this one was dead and reclaimed the hold.
        env.clock.now += 31
        await counters(env).reclaim(env.accounts.now_ms())
        return _result()

    with pytest.raises(ServiceUnavailable):
        await env.accounts.metered(key, "gen-late", slow)
    assert await env.store.get_generation("gen-late") is None
    assert await counters(env).snapshot() == {"spent": 0, "held": 0}


async def test_a_young_hold_is_charged_without_a_confirm_round_trip(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    confirms = 0
    real = counters(env).confirm

    async def counted(*args):  # type: ignore[no-untyped-def]
        nonlocal confirms
        confirms += 1
        return await real(*args)

    monkeypatch.setattr(counters(env), "confirm", counted)
    key = await env.key()

    async def taking(seconds: float):  # type: ignore[no-untyped-def]
        async def embed(reserve, _computed):  # type: ignore[no-untyped-def]
            await reserve(QUOTE)
            env.clock.now += seconds
            return _result()
        return embed

    await env.accounts.metered(key, "gen-quick", await taking(1))
    assert confirms == 0  # 1 s into a 30 s reservation: it cannot have been reclaimed
    await env.accounts.metered(key, "gen-slow-ok", await taking(16))
    assert confirms == 1  # past half its life: confirmed (and extended) before charging
    await counters(env).settled()
    assert await counters(env).snapshot() == {"spent": 2 * to_nanos(QUOTE.cost), "held": 0}


async def test_settles_queued_behind_the_responses_all_land(env: Env) -> None:
    key = await env.key()
    gates = []
    for i in range(2):
        gate = env.accounts.gate(key, f"gen-batch-{i}")
        await gate.reserve(QUOTE)
        gates.append(gate)
    for gate in gates:
        await gate.settle(_result())
    await counters(env).settled()
    assert await counters(env).snapshot() == {"spent": 2 * to_nanos(QUOTE.cost), "held": 0}
    assert counters(env).errors == 0


def _result():  # type: ignore[no-untyped-def]
    import numpy as np

    from embedrouter.types import EmbeddingResult, Usage

    return EmbeddingResult(np.zeros((1, 2), np.float32), "up", "Fake",
                           Usage(10, 10, cost=QUOTE.cost))


@pytest.mark.parametrize("outcome", ["settle", "release"])
async def test_a_free_request_settles_and_releases_without_a_redis_error(
        env: Env, outcome: str) -> None:
    # Lua renders -0 as "-0", which HINCRBY refuses: a zero hold (a free model, a full cache hit)
    # must settle and release like any other, without counting a Redis error.
    gate = env.accounts.gate(await env.key(), f"gen-free-{outcome}")
    await gate.reserve(Quote(model=MODEL, tokens=10, cost=Decimal(0)))
    hold = gate._hold
    assert isinstance(hold, Hold) and hold.amount == 0
    if outcome == "settle":
        await counters(env).settle(hold, 0, 10)
    else:
        await counters(env).release(hold)
    assert counters(env).errors == 0
    assert await counters(env).snapshot() == {"spent": 0, "held": 0}


async def test_one_settle_batch_applies_each_hold_like_a_single_settle(env: Env) -> None:
    # Settles queued together go to Redis as one script call: a live hold (some tokens
    # unused), a hold already given back by the reclaimer, and a repeat of the first must each
    # land exactly as a settle of their own would, in the account, key window and rate window.
    await env.store.add_credits("g-more", parse_usd("1"), 0, "")
    key = await env.key(limit_nanos=parse_usd("1"), limit_reset="daily", tpm=1000)
    holds = []
    for i in range(3):
        gate = env.accounts.gate(key, f"gen-batch-{i}")
        await gate.reserve(QUOTE)
        assert isinstance(gate._hold, Hold)
        holds.append(gate._hold)
    live, reclaimed, kept = holds
    await counters(env).release(reclaimed)  # as the reclaimer does with no charge yet
    cost = to_nanos(QUOTE.cost)
    c = counters(env)
    c.settle_behind(live, cost, 4)
    c.settle_behind(reclaimed, cost, 10)
    c.settle_behind(kept, cost, -1)
    c.settle_behind(live, cost, 4)  # a repeat in the same batch is a no-op
    await c.settled()
    assert c.errors == 0
    assert await c.snapshot() == {"spent": 3 * cost, "held": 0}
    assert live.window_id is not None
    raw = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        assert raw.hgetall(c._kw(live.key_hash, live.window_id)) == {
            "spent": str(3 * cost), "held": "0"}
        # 30 tokens claimed; only the live hold gives its 6 unused back (the released one's
        # tokens stay counted, as a single settle after a reclaim leaves them).
        assert {raw.hget(name, "t") for name in live.rate_names} == {"24"}
        # The window's first claim set when it expires (the minute's end plus 60 s).
        assert all(0 < raw.pttl(name) <= 120_000 for name in live.rate_names)
        assert raw.zcard(f"{c._p}holds") == 0
        for hold in holds:
            assert not raw.exists(f"{c._p}hold:{hold.id}")
            assert 0 < raw.ttl(f"{c._p}done:{hold.id}") <= DONE_TTL_S
    finally:
        raw.close()


async def test_a_settled_request_leaves_nothing_in_redis_past_15_minutes(env: Env) -> None:
    # Each settle writes a done marker (one key a request): at a week's lifetime, as it once
    # was, 100 requests a second kept ~7 GB in Redis. After the requests settle, whatever is
    # left that belongs to one request must be on its way out within 15 minutes; the
    # shared counters (the account, key windows, rate windows) are all that may stay.
    await env.store.add_credits("g2", parse_usd("1"), 0, "")
    c = counters(env)
    key = await env.key()
    for i in range(3):
        await env.embed(key, f"gen-left-{i}")
    await crashed_reservation(env, "gen-left-dead")
    await env.store.record_generations([GenerationRecord(
        "gen-left-dead", "k", MODEL, "up", "Fake", 6, 6, env.accounts.now_ms(), 1)])
    assert await c.reclaim(env.accounts.now_ms() + 31_000) == 1  # the reclaimer's marker too
    await c.settled()
    raw = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        names = [k[len(c._p):] for k in raw.scan_iter(match=f"{c._p}*")]
        per_request = sorted(n for n in names if n.split(":")[0] not in ("acct", "kw", "rl"))
        assert per_request == [f"done:gen-left-{i}" for i in (0, 1, 2, "dead")]
        assert all(0 < raw.ttl(c._p + n) <= 15 * 60 for n in per_request)
    finally:
        raw.close()


async def test_a_settle_batch_past_2_to_the_53_nanos_stays_exact(env: Env) -> None:
    # The claim and settle scripts sum each counter's changes over a call in Lua's doubles and
    # write them once; unmetered, four holds can add up past 2**53 (an odd total there is
    # no double), and the counters must still end exact to the nano-dollar.
    c = counters(env)
    now_ms = int(time.time() * 1000)
    amounts = [3_000_000_000_000_001] * 3 + [3_000_000_000_000_002]
    assert sum(amounts) > 2**53 and sum(amounts) % 2 == 1
    # Claimed together (the account seeded first, so no claim of theirs is retried alone):
    # one claim call sums the holds too, and must stay exact the same way.
    await c.release(await c.claim(_claim("gen-big-seed", 0)))
    before = c.claim_calls
    holds = await asyncio.gather(*(c.claim(Claim(
        hold_id=f"gen-big-{i}", amount=amount, tokens=1, credits=None, key_hash="k",
        key_limit=None, key_window=None, scopes=(), minute=0, reset_ms=60_000,
        expires_ms=now_ms + 60_000)) for i, amount in enumerate(amounts)))
    assert c.claim_calls == before + 1
    assert await c.snapshot() == {"spent": 0, "held": sum(amounts)}
    for hold in holds:
        c.settle_behind(hold, hold.amount, 1)
    await c.settled()
    assert c.errors == 0
    assert await c.snapshot() == {"spent": sum(amounts), "held": 0}


def _claim(hold_id: str, amount: int, *, credits: int | None = None, rpm: int | None = None,
           tpm: int | None = None, minute: int = 1) -> Claim:
    scopes = (RateScope("key:batch", rpm, tpm),) if rpm is not None or tpm is not None else ()
    return Claim(hold_id=hold_id, amount=amount, tokens=5, credits=credits, key_hash="k",
                 key_limit=None, key_window=None, scopes=scopes, minute=minute,
                 reset_ms=30_000, expires_ms=int(time.time() * 1000) + 60_000)


async def _outcomes(c: RedisCounters, claims: list[Claim]) -> list[str]:
    async def one(claim: Claim) -> str:
        try:
            await c.claim(claim)
        except Refused as r:
            return f"{r.kind}:{r.remaining}"
        return "granted"

    return list(await asyncio.gather(*(one(x) for x in claims)))


@pytest.mark.parametrize("sent", ["together", "one by one"])
async def test_claims_of_one_turn_are_one_call_decided_in_order(env: Env, sent: str) -> None:
    # The claims asked for in one turn of the event loop go to Redis as one script call, which
    # must decide each exactly as a call of its own would, in the order they were asked: the
    # same outcomes whether sent together or one by one.
    c = counters(env)
    await c.release(await c.claim(_claim("gen-seed", 0)))  # seeds the account counter
    before = (c.claim_calls, c.claims)
    by_rpm = [_claim(f"gen-rpm-{sent}-{i}", 1, rpm=3, minute=7 if sent == "together" else 8)
              for i in range(5)]
    spent = await c.snapshot()
    # Room for the three holds the RPM window lets through and exactly two more nano-dollars.
    credits = spent["spent"] + spent["held"] + 3 + 2
    by_credits = [_claim(f"gen-cr-{sent}-{i}", 1, credits=credits) for i in range(4)]
    if sent == "together":
        outcomes = await _outcomes(c, by_rpm + by_credits)
        assert (c.claim_calls - before[0], c.claims - before[1]) == (1, 9)
    else:
        outcomes = [o for x in by_rpm + by_credits for o in await _outcomes(c, [x])]
        assert (c.claim_calls - before[0], c.claims - before[1]) == (9, 9)
    assert outcomes == ["granted"] * 3 + ["rpm:0"] * 2 + ["granted"] * 2 + ["credits:0"] * 2
    assert (await c.snapshot())["held"] == spent["held"] + 5
    raw = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        window = f"{c._p}rl:key:batch:{7 if sent == 'together' else 8}"
        assert raw.hgetall(window) == {"r": "3", "t": "15"}
        assert 0 < raw.pttl(window) <= 90_000  # set by the claim that created the window
        assert raw.zcard(f"{c._p}holds") == 5
    finally:
        raw.close()


async def test_a_turn_with_more_claims_than_one_call_carries_sends_them_all(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import embedrouter.accounts.redis_counters as rc

    monkeypatch.setattr(rc, "CLAIM_BATCH", 2)
    c = counters(env)
    await c.release(await c.claim(_claim("gen-seed-split", 0)))
    before = (c.claim_calls, c.claims)
    outcomes = await _outcomes(c, [_claim(f"gen-split-{i}", 1, rpm=4, minute=9)
                                   for i in range(5)])
    assert outcomes == ["granted"] * 4 + ["rpm:0"]
    assert (c.claim_calls - before[0], c.claims - before[1]) == (3, 5)
