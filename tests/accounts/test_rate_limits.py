"""RPM and TPM per key and per model, on both backends: fixed minute windows, tokens reserved
at admission, 429 with Retry-After and X-RateLimit-* headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from embedrouter.errors import RateLimited
from embedrouter.settings import AccountsConfig
from tests.accounts.harness import BACKENDS, MODEL, Env, make_env

MINUTE_START = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC, a minute boundary


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def env(backend: str, tmp_path: Path) -> AsyncIterator[Env]:
    config = AccountsConfig(requests_per_minute=5, tokens_per_minute=1000,
                            model_limits={"acme/busy": (3, None)})
    async with make_env(backend, tmp_path, config) as e:
        e.clock.now = MINUTE_START + 15
        yield e


async def burst(env: Env, key, n: int, *, prefix: str, **kw) -> tuple[int, list[RateLimited]]:  # type: ignore[no-untyped-def]
    outcomes = await asyncio.gather(
        *(env.embed(key, f"{prefix}-{i}", **kw) for i in range(n)), return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, RateLimited)]
    errors = [o for o in outcomes if isinstance(o, BaseException) and o not in refused]
    assert not errors, errors
    return n - len(refused), refused


async def test_key_rpm_lets_exactly_the_limit_through_per_window(env: Env) -> None:
    key = await env.key(rpm=30)  # the key's own limit overrides the instance default of 5
    passed, refused = await burst(env, key, 50, prefix="a")
    assert passed == 30
    r = refused[0]
    assert r.headers["retry-after"] == "45"  # 15 s into the minute
    assert r.headers["x-ratelimit-limit"] == "30"
    assert r.headers["x-ratelimit-remaining"] == "0"
    assert r.headers["x-ratelimit-reset"] == str(int((MINUTE_START + 60) * 1000))
    env.clock.now = MINUTE_START + 60  # no lockout past the window
    passed, _ = await burst(env, key, 50, prefix="b")
    assert passed == 30


async def test_instance_default_applies_to_keys_without_their_own(env: Env) -> None:
    key = await env.key()
    passed, _ = await burst(env, key, 8, prefix="a")
    assert passed == 5


async def test_refused_requests_do_not_use_up_the_window(env: Env) -> None:
    key = await env.key(rpm=2)
    await burst(env, key, 10, prefix="a")
    env.clock.now = MINUTE_START + 60
    passed, _ = await burst(env, key, 2, prefix="b")
    assert passed == 2


async def test_tokens_are_reserved_at_admission_so_a_burst_cannot_overshoot(env: Env) -> None:
    key = await env.key(rpm=1000, tpm=100)
    passed, refused = await burst(env, key, 20, prefix="a", tokens=30)
    assert passed == 3  # 3 x 30 fits in 100; a fourth would make 120
    assert refused[0].headers["x-ratelimit-remaining"] == "10"


async def test_unused_reserved_tokens_return_to_the_window(env: Env) -> None:
    key = await env.key(rpm=1000, tpm=100)
    await env.embed(key, "a", tokens=90, actual_tokens=10)
    await env.embed(key, "b", tokens=90)  # 10 + 90 fits once the first freed its 80


async def test_a_request_larger_than_the_tpm_says_so(env: Env) -> None:
    key = await env.key(tpm=100)
    with pytest.raises(RateLimited) as info:
        await env.embed(key, "a", tokens=150)
    assert "this request alone has up to 150 tokens" in info.value.message


async def test_model_limit_is_shared_by_every_key(env: Env) -> None:
    a, b = await env.key(rpm=100), await env.key(rpm=100)
    passed_a, _ = await burst(env, a, 2, prefix="a", model="acme/busy")
    passed_b, _ = await burst(env, b, 2, prefix="b", model="acme/busy")
    assert passed_a + passed_b == 3
    await env.embed(b, "other-model", model=MODEL)  # other models are not limited by it


async def test_a_failed_request_counts_once_toward_rpm(env: Env) -> None:
    key = await env.key(rpm=2)
    with pytest.raises(RuntimeError):
        await env.embed(key, "a", fail=True)
    await env.embed(key, "b")
    with pytest.raises(RateLimited):
        await env.embed(key, "c")
