"""Credits, key limits and reservations through admission, on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from embedrouter.accounts.money import parse_usd, to_nanos
from embedrouter.errors import PaymentRequired
from embedrouter.settings import AccountsConfig
from tests.accounts.harness import BACKENDS, Env, enforced, make_env

CENT = Decimal("0.01")  # 10 tokens at $1000 per million: the harness's default request


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def unmetered(backend: str, tmp_path: Path) -> AsyncIterator[Env]:
    async with make_env(backend, tmp_path, AccountsConfig()) as env:
        yield env


@pytest.fixture
async def metered(backend: str, tmp_path: Path) -> AsyncIterator[Env]:
    async with make_env(backend, tmp_path, enforced()) as env:
        yield env


async def grant(env: Env, usd: str) -> None:
    await env.store.add_credits(f"g-{usd}-{env.clock.now}", parse_usd(usd), 0, "test")


async def test_unmetered_records_every_charge_and_reports_it(unmetered: Env) -> None:
    key = await unmetered.key()
    result = await unmetered.embed(key, "gen-a")
    assert result.usage.cost == CENT
    row = await unmetered.store.get_generation("gen-a")
    assert row is not None and row.cost_nanos == to_nanos(CENT) and row.key_hash == key.key_hash
    assert row.model == "acme/model" and row.tokens == 10
    assert await unmetered.store.spent_total() == to_nanos(CENT)


async def test_enforced_with_no_credits_refuses_before_the_provider(metered: Env) -> None:
    key = await metered.key()
    with pytest.raises(PaymentRequired) as info:
        await metered.embed(key, "gen-a")
    assert "Insufficient credits" in info.value.message
    assert metered.provider_calls == 0
    assert await metered.store.get_generation("gen-a") is None


async def test_balance_pays_for_exactly_what_it_covers(metered: Env) -> None:
    await grant(metered, "0.05")
    key = await metered.key()
    for i in range(5):
        await metered.embed(key, f"gen-{i}")
    with pytest.raises(PaymentRequired):
        await metered.embed(key, "gen-5")
    assert metered.provider_calls == 5
    assert await metered.store.spent_total() == parse_usd("0.05")


@pytest.mark.parametrize("at_compute", [False, True], ids=["at-settle", "at-compute"])
async def test_concurrent_burst_never_overspends(metered: Env, at_compute: bool) -> None:
    await grant(metered, "1")  # pays for exactly 100 requests
    key = await metered.key()
    outcomes = await asyncio.gather(*(metered.embed(key, f"gen-{i}", at_compute=at_compute)
                                      for i in range(200)), return_exceptions=True)
    ok = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, PaymentRequired)]
    assert (len(ok), len(refused)) == (100, 100), {type(o).__name__: str(o) for o in outcomes}
    assert sum(to_nanos(o.usage.cost) for o in ok) == await metered.store.spent_total()
    assert await metered.store.spent_total() == await metered.store.credits_total()


async def test_failure_charges_nothing_and_frees_the_hold(metered: Env) -> None:
    await grant(metered, "0.01")
    key = await metered.key()
    with pytest.raises(RuntimeError):
        await metered.embed(key, "gen-a", fail=True)
    assert await metered.store.spent_total() == 0
    await metered.embed(key, "gen-b")  # the whole cent is available again


async def test_actual_below_quote_charges_actual_and_frees_the_rest(metered: Env) -> None:
    await grant(metered, "0.01")
    key = await metered.key()
    result = await metered.embed(key, "gen-a", actual_tokens=4)  # quoted 10
    assert result.usage.cost == Decimal("0.004")
    await metered.embed(key, "gen-b", tokens=6)  # exactly what is left
    with pytest.raises(PaymentRequired):
        await metered.embed(key, "gen-c", tokens=1)


async def test_actual_above_quote_is_capped_at_the_reservation(unmetered: Env) -> None:
    key = await unmetered.key()
    result = await unmetered.embed(key, "gen-a", tokens=10, actual_tokens=15)
    assert result.usage.cost == CENT
    row = await unmetered.store.get_generation("gen-a")
    assert row is not None and row.cost_nanos == to_nanos(CENT)


async def test_key_limit_applies_without_enforcement_and_resets_daily(unmetered: Env) -> None:
    env = unmetered
    env.clock.now = 1_767_225_600 + 3600  # 2026-01-01 01:00 UTC
    key = await env.key(limit_nanos=parse_usd("0.02"), limit_reset="daily")
    other = await env.key()
    await env.embed(key, "gen-1")
    await env.embed(key, "gen-2")
    with pytest.raises(PaymentRequired) as info:
        await env.embed(key, "gen-3")
    assert "Key limit exceeded" in info.value.message
    await env.embed(other, "gen-o")  # another key is not affected
    env.clock.now += 86400  # the next UTC day
    await env.embed(key, "gen-4")


async def test_key_limit_without_reset_counts_all_time(unmetered: Env) -> None:
    key = await unmetered.key(limit_nanos=parse_usd("0.01"))
    await unmetered.embed(key, "gen-1")
    unmetered.clock.now += 40 * 86400
    with pytest.raises(PaymentRequired):
        await unmetered.embed(key, "gen-2")


async def test_key_limit_counts_spend_from_before_the_limit_was_set(unmetered: Env) -> None:
    key = await unmetered.key()
    await unmetered.embed(key, "gen-1")
    limited = await unmetered.store.update_key(key.key_hash, {"limit_nanos": parse_usd("0.01")})
    assert limited is not None
    with pytest.raises(PaymentRequired):
        await unmetered.embed(limited, "gen-2")


async def test_free_model_passes_with_zero_balance_but_not_a_used_up_key(metered: Env) -> None:
    key = await metered.key()
    await metered.embed(key, "gen-free", price=Decimal(0))
    capped = await metered.key(limit_nanos=0)
    with pytest.raises(PaymentRequired):
        await metered.embed(capped, "gen-capped", price=Decimal(0))


async def test_credits_added_later_apply_within_the_reread_interval(metered: Env) -> None:
    import time

    from embedrouter.accounts.admission import CREDITS_TTL_S

    key = await metered.key()
    with pytest.raises(PaymentRequired):
        await metered.embed(key, "gen-a")
    await grant(metered, "0.01")
    time.sleep(CREDITS_TTL_S + 0.05)  # the read is cached at most this long (monotonic)
    await metered.embed(key, "gen-b")


async def test_an_aging_credits_value_is_reread_behind_the_requests(
        metered: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from embedrouter.accounts import admission

    # The re-read starts at once, and the cached value stays valid for the whole test.
    monkeypatch.setattr(admission, "CREDITS_REFRESH_S", 0.0)
    monkeypatch.setattr(admission, "CREDITS_TTL_S", 60.0)
    env = metered
    key = await env.key()
    await grant(env, "0.01")
    await env.embed(key, "gen-a")  # no cached value yet: this one reads the credits itself
    read, reading, release_read = env.store.credits_total, asyncio.Event(), asyncio.Event()

    async def held_read() -> int:
        reading.set()
        await release_read.wait()
        return await read()

    env.store.credits_total = held_read  # type: ignore[method-assign]
    await env.store.add_credits("g-later", parse_usd("0.01"), 0, "test")
    # The request is served on the cached value while the re-read it started is held.
    with pytest.raises(PaymentRequired):
        await asyncio.wait_for(env.embed(key, "gen-b"), 5)
    assert reading.is_set()
    release_read.set()
    await asyncio.wait_for(env.accounts._credits_fetch, 5)  # type: ignore[arg-type]
    await env.embed(key, "gen-c")  # the grant counts once the re-read lands
    assert await env.store.get_generation("gen-b") is None


async def test_a_failed_background_reread_leaves_the_next_read_to_a_request(
        metered: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from embedrouter.accounts import admission

    monkeypatch.setattr(admission, "CREDITS_REFRESH_S", 0.0)
    env = metered
    key = await env.key()
    await grant(env, "0.03")
    await env.embed(key, "gen-a")
    read = env.store.credits_total

    async def failing_read() -> int:
        raise OSError("the store is gone")

    env.store.credits_total = failing_read  # type: ignore[method-assign]
    await env.embed(key, "gen-b")  # served on the cached value; its re-read fails behind it
    await asyncio.gather(env.accounts._credits_fetch, return_exceptions=True)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert "re-reading the credits failed: OSError" in caplog.text
    env.accounts._credits_until = 0.0  # expired: the next request must read, and fails
    with pytest.raises(OSError):
        await env.embed(key, "gen-c")
    env.store.credits_total = read  # type: ignore[method-assign]
    await env.embed(key, "gen-d")
    assert await env.store.get_generation("gen-c") is None


async def test_a_request_cancelled_while_charging_is_charged_exactly_once(unmetered: Env) -> None:
    env = unmetered
    key = await env.key(limit_nanos=parse_usd("0.02"))
    writer = env.accounts.writer
    flush, writing, release_flush = writer._flush, asyncio.Event(), asyncio.Event()

    async def held_flush(rows):  # type: ignore[no-untyped-def]
        writing.set()
        await release_flush.wait()
        await flush(rows)

    writer._flush = held_flush
    task = asyncio.create_task(env.embed(key, "gen-cancelled"))
    try:
        # Until the charge is being written (the provider has answered).
        await asyncio.wait_for(writing.wait(), timeout=30)
        task.cancel()  # the client went away while the charge was being written
    finally:
        release_flush.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(500):
        if await env.store.get_generation("gen-cancelled") is not None:
            break
        await asyncio.sleep(0.01)
    writer._flush = flush
    assert await env.store.get_generation("gen-cancelled") is not None
    await env.embed(key, "gen-after")  # the limit has exactly one cent left
    with pytest.raises(PaymentRequired):
        await env.embed(key, "gen-over")


async def test_a_charge_at_computation_is_what_the_response_and_the_ledger_say(
        metered: Env) -> None:
    # A local model's requests are charged as the batcher delivers their vectors (the commit
    # then runs while they wake): the same amounts, rows and limits as a charge at settle.
    await grant(metered, "0.05")
    key = await metered.key(limit_nanos=parse_usd("0.04"))
    for i in range(4):
        result = await metered.embed(key, f"gen-{i}", at_compute=True)
        assert result.usage.cost == CENT
        row = await metered.store.get_generation(f"gen-{i}")
        assert row is not None and row.cost_nanos == to_nanos(CENT) and row.tokens == 10
        assert (row.upstream_model, row.provider, row.cached_tokens) == ("up", "Fake", None)
    with pytest.raises(PaymentRequired) as info:  # the key's limit is used up, exactly
        await metered.embed(key, "gen-4", at_compute=True)
    assert "Key limit exceeded" in info.value.message
    assert await metered.store.spent_total() == parse_usd("0.04")
    assert metered.accounts.writer.rows == 4


async def test_a_request_failing_after_its_charge_at_computation_stays_charged_once(
        unmetered: Env) -> None:
    # Its vectors were computed (the provider answered): the charge stands, as it does for a
    # request cancelled while its charge is written, and the hold is settled, not released.
    env = unmetered
    key = await env.key(limit_nanos=parse_usd("0.02"))
    with pytest.raises(RuntimeError, match="after the vectors"):
        await env.embed(key, "gen-failed", at_compute=True, fail_after_compute=True)
    await env.accounts.writer.settled()
    row = await env.store.get_generation("gen-failed")
    assert row is not None and row.cost_nanos == to_nanos(CENT)
    await env.embed(key, "gen-after", at_compute=True)  # one cent of the limit was left
    with pytest.raises(PaymentRequired):
        await env.embed(key, "gen-over", at_compute=True)
    assert await env.store.spent_total() == parse_usd("0.02")


async def test_a_hold_past_half_its_life_is_charged_at_settle_not_at_computation(
        unmetered: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    # Old enough that another instance may have reclaimed it: the charge waits for settle,
    # which confirms the hold first instead of charging on the spot.
    env = unmetered
    confirmed: list[str] = []
    real = env.accounts.counters.confirm

    async def counted(hold, expires_ms):  # type: ignore[no-untyped-def]
        confirmed.append(hold.id)
        return await real(hold, expires_ms)

    monkeypatch.setattr(env.accounts.counters, "confirm", counted)
    key = await env.key()
    ttl_s = env.accounts.config.reservation_ttl_s
    await env.embed(key, "gen-old", at_compute=True, compute_s=ttl_s / 2 + 1)
    await env.embed(key, "gen-young", at_compute=True, compute_s=1)
    assert confirmed == ["gen-old"]
    assert env.accounts.writer.rows == 2
    for gen_id in ("gen-old", "gen-young"):
        row = await env.store.get_generation(gen_id)
        assert row is not None and row.cost_nanos == to_nanos(CENT)
