"""Proof of shared mode: three `embedrouter serve` processes on one PostgreSQL + one Redis.

Every limit is global (never limit x instances), the ledger matches what clients were told,
and a SIGKILLed instance leaves nothing held past its reservation's expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from embedrouter.accounts.admission import CREDITS_TTL_S
from embedrouter.accounts.money import from_nanos, to_nanos
from tests.api.conftest import DEFAULT_MODEL
from tests.store.backends import pg_url  # noqa: F401  (fixture: a scratch PostgreSQL schema)
from tests.support.live import LiveServer, start_server
from tests.support.redis_scratch import REDIS_URL, scratch_prefix

PRICE = Decimal(1000)  # USD per million tokens: one short request costs a few tenths of a cent
TEXT = "hello world"  # 4 tokens with [CLS] and [SEP]
CONFIG = """
[default_model]
price_per_million = "1000"

[accounts]
enforce_credits = true
reservation_ttl_s = {ttl}
reclaim_every_s = 1

# These tests count money per computed request; hits (free by default) are the cache suite's.
[cache]
enabled = false
"""


@pytest.fixture
def prefix() -> Iterator[str]:
    with scratch_prefix() as p:
        yield p


@contextlib.contextmanager
def instances(n: int, tmp_path: Path, cache: Path, env: dict[str, str], *, ttl: float = 300
              ) -> Iterator[list[LiveServer]]:
    config = tmp_path / "embedrouter.toml"
    config.write_text(CONFIG.format(ttl=ttl))
    servers: list[LiveServer] = []
    try:
        # The first creates the bootstrap keys; the others find them in the shared database.
        servers.append(start_server(tmp_path / "s0", cache_dir=cache, config=config, env=env))
        for i in range(1, n):
            servers.append(start_server(tmp_path / f"s{i}", cache_dir=cache, config=config,
                                        env=env, announces_keys=False))
        yield servers
    finally:
        for s in servers:
            s.stop()


def sql_one(url: str, query: str, params: tuple[object, ...] = ()) -> object:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
        assert row is not None
        return row[0]


def add_credits(url: str, usd: Decimal) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE embedrouter_account SET credits_nanos = credits_nanos + %s",
                     (to_nanos(usd),))


async def fire(servers: list[LiveServer], key: str, n: int, text: str = TEXT
               ) -> list[httpx.Response]:
    """``n`` requests at once, spread round-robin over the instances."""
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        return await asyncio.gather(*(
            client.post(f"{servers[i % len(servers)].base_url}/embeddings",
                        json={"model": DEFAULT_MODEL, "input": [text]},
                        headers={"authorization": f"Bearer {key}"})
            for i in range(n)))


def usage_cost(resp: httpx.Response) -> Decimal:
    """``usage.cost`` exactly as sent (the default JSON decoder would round it to a float)."""
    return Decimal(str(json.loads(resp.text, parse_float=Decimal)["usage"]["cost"]))


def one_request_cost(server: LiveServer) -> Decimal:
    resp = httpx.post(f"{server.base_url}/embeddings", json={"model": DEFAULT_MODEL,
                                                             "input": [TEXT]},
                      headers={"authorization": f"Bearer {server.api_key}"}, timeout=60)
    assert resp.status_code == 402  # nothing granted yet: even one is refused
    return PRICE * 4 / 1_000_000


def test_exactly_the_balance_is_spent_across_three_instances(
        pg_url: str, prefix: str, tmp_path: Path, onnx_cache_dir: Path) -> None:  # noqa: F811
    env = {"EMBEDROUTER_DATABASE_URL": pg_url, "EMBEDROUTER_REDIS_URL": REDIS_URL,
           "EMBEDROUTER_REDIS_PREFIX": prefix}
    with instances(3, tmp_path, onnx_cache_dir, env) as servers:
        cost = one_request_cost(servers[0])
        add_credits(pg_url, cost * 100)
        time.sleep(CREDITS_TTL_S + 0.2)  # instances re-read credits at most this often
        responses = asyncio.run(fire(servers, servers[0].api_key, 200))
        statuses = [r.status_code for r in responses]
        assert (statuses.count(200), statuses.count(402)) == (100, 100), statuses
        charged = [usage_cost(r) for r in responses if r.status_code == 200]
        assert all(c == cost for c in charged)
        refused = [r.json() for r in responses if r.status_code == 402]
        assert all(b["error"]["code"] == 402 for b in refused)
        ledger = int(sql_one(pg_url, "SELECT SUM(cost_nanos) FROM embedrouter_generations"))
        assert from_nanos(ledger) == sum(charged)
        credits = int(sql_one(pg_url, "SELECT credits_nanos FROM embedrouter_account"))
        assert credits - ledger == 0  # the balance ends exactly at zero
        ids = {r.json()["id"] for r in responses if r.status_code == 200}
        stored = int(sql_one(pg_url, "SELECT COUNT(*) FROM embedrouter_generations"))
        assert stored == len(ids) == 100  # one charge per served request, none for refusals


def test_rpm_limit_is_global_across_three_instances(
        pg_url: str, prefix: str, tmp_path: Path, onnx_cache_dir: Path) -> None:  # noqa: F811
    env = {"EMBEDROUTER_DATABASE_URL": pg_url, "EMBEDROUTER_REDIS_URL": REDIS_URL,
           "EMBEDROUTER_REDIS_PREFIX": prefix}
    with instances(3, tmp_path, onnx_cache_dir, env) as servers:
        add_credits(pg_url, Decimal(100))
        key = servers[0].api_key
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("UPDATE embedrouter_keys SET rpm = 30 WHERE is_management = false")
        # A burst must fall inside one fixed minute window: start early in a minute.
        into = time.time() % 60
        if into > 30:
            time.sleep(60 - into + 0.5)
        responses = asyncio.run(fire(servers, key, 90))
        statuses = [r.status_code for r in responses]
        assert (statuses.count(200), statuses.count(429)) == (30, 60), statuses
        limited = next(r for r in responses if r.status_code == 429)
        assert limited.headers["x-ratelimit-limit"] == "30"
        assert limited.headers["x-ratelimit-remaining"] == "0"
        assert int(limited.headers["retry-after"]) >= 1
        assert int(limited.headers["x-ratelimit-reset"]) > time.time() * 1000


def test_sigkill_mid_request_loses_and_doubles_nothing(
        pg_url: str, prefix: str, tmp_path: Path, onnx_cache_dir: Path) -> None:  # noqa: F811
    env = {"EMBEDROUTER_DATABASE_URL": pg_url, "EMBEDROUTER_REDIS_URL": REDIS_URL,
           "EMBEDROUTER_REDIS_PREFIX": prefix}
    r = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    # A short reservation lifetime so that the dead instance's holds expire within the test.
    with instances(2, tmp_path, onnx_cache_dir, env, ttl=3) as (victim, survivor):
        add_credits(pg_url, Decimal(1000))
        key = victim.api_key
        long_text = " ".join(["several words that keep the model busy"] * 30)

        async def in_flight() -> list[httpx.Response | BaseException]:
            limits = httpx.Limits(max_connections=40)
            async with httpx.AsyncClient(timeout=60, limits=limits) as client:
                tasks = [asyncio.ensure_future(client.post(
                    f"{victim.base_url}/embeddings",
                    json={"model": DEFAULT_MODEL, "input": [long_text] * 32},
                    headers={"authorization": f"Bearer {key}"})) for _ in range(40)]
                deadline = time.monotonic() + 30
                # Kill once reservations are held (requests admitted, not yet charged).
                while r.zcard(f"{prefix}holds") == 0 and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                os.kill(victim.process.pid, signal.SIGKILL)
                return await asyncio.gather(*tasks, return_exceptions=True)

        outcomes = asyncio.run(in_flight())
        answered = [o for o in outcomes if isinstance(o, httpx.Response)
                    and o.status_code == 200]
        # The survivor's reclaimer frees what the dead instance held, after the 3 s expiry.
        deadline = time.monotonic() + 60
        while r.zcard(f"{prefix}holds") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert r.zcard(f"{prefix}holds") == 0, "a reservation is stuck past its expiry"
        acct = r.hgetall(f"{prefix}acct")
        ledger = int(sql_one(pg_url, "SELECT COALESCE(SUM(cost_nanos), 0) "
                                     "FROM embedrouter_generations"))
        assert int(acct["held"]) == 0
        assert int(acct["spent"]) == ledger  # no charge lost or counted twice
        for resp in answered:  # every answer the client got is in the ledger, at its cost
            cost = sql_one(pg_url, "SELECT cost_nanos FROM embedrouter_generations "
                                   "WHERE id = %s", (resp.json()["id"],))
            assert from_nanos(int(cost)) == usage_cost(resp)
        # And the survivor still serves, against the right balance.
        ok = httpx.post(f"{survivor.base_url}/embeddings",
                        json={"model": DEFAULT_MODEL, "input": [TEXT]},
                        headers={"authorization": f"Bearer {key}"}, timeout=60)
        assert ok.status_code == 200
    r.close()
