"""Fixtures that run a cache test once per backend: the in-process LRU, SQLite in a temp
folder, and the local Redis under a prefix made for that one test (its keys deleted after).

Redis comes from ``EMBEDROUTER_TEST_REDIS_URL`` (default: the local server). If it does not
answer, the Redis cases fail when ``CI`` is set (a CI run must not pass by skipping) and are
skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from embedrouter.cache.backend import Backend
from tests.support.fake_formats import DEFAULT_DIM
from tests.support.fake_upstreams import FakeUpstreams

REDIS_URL = os.environ.get("EMBEDROUTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BACKENDS = ["memory", "sqlite", "redis"]

_redis_state: dict[str, str | None] = {}


def redis_unavailable_reason() -> str | None:
    if "reason" not in _redis_state:
        import redis

        try:
            client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
            client.ping()
            client.close()
            _redis_state["reason"] = None
        except redis.RedisError as exc:
            _redis_state["reason"] = f"Redis at {REDIS_URL} unreachable: {exc}"
    return _redis_state["reason"]


def require_redis() -> None:
    reason = redis_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so Redis tests must run)", pytrace=False)
    pytest.skip(reason)


def fresh_prefix() -> str:
    return f"er-test:{secrets.token_hex(6)}:"


def drop_prefix(prefix: str) -> None:
    """Delete every key a test wrote under its prefix."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


REMOTE_MODEL = "acme/fake-embed"


def remote_config(fake: FakeUpstreams, *, price: str, max_inputs: int, extra: str = "") -> str:
    """A config serving REMOTE_MODEL from the fake's OpenAI format, key in ALPHA_KEY."""
    return f"""
[default_model]
enabled = false

{extra}

[[providers]]
name = "alpha"
kind = "openai"
base_url = "{fake.base_url('openai')}"
api_key_env = "ALPHA_KEY"
timeout_s = 5

[[models]]
slug = "{REMOTE_MODEL}"
dimensions = {DEFAULT_DIM}
context_length = 512
  [[models.endpoints]]
  provider = "alpha"
  upstream_model = "alpha-embed"
  price_per_million = "{price}"
  max_inputs = {max_inputs}
"""


MakeBackend = Callable[..., Awaitable[Backend]]


@pytest.fixture(params=BACKENDS)
async def make_backend(request: pytest.FixtureRequest, tmp_path: Path
                       ) -> AsyncIterator[MakeBackend]:
    """Opens backends of the test's kind (all on the same store); closes them after."""
    kind = request.param
    if kind == "redis":
        require_redis()
    prefix = fresh_prefix()
    opened: list[Backend] = []

    async def make(*, max_bytes: int = 1 << 30, ttl_s: int = 3600,
                   clock: Callable[[], float] | None = None) -> Backend:
        backend: Backend
        if kind == "memory":
            from embedrouter.cache.memory import MemoryBackend

            backend = MemoryBackend(max_bytes, ttl_s, **({"clock": clock} if clock else {}))
        elif kind == "sqlite":
            from embedrouter.cache.sqlite import SqliteBackend

            backend = await SqliteBackend(tmp_path / "cache" / "vectors.sqlite3",
                                          max_bytes=max_bytes, ttl_s=ttl_s,
                                          **({"clock": clock} if clock else {})).open()
        else:
            from embedrouter.cache.redis import RedisBackend

            backend = RedisBackend(REDIS_URL, ttl_s=ttl_s, timeout_s=2.0, prefix=prefix)
        opened.append(backend)
        return backend

    make.kind = kind  # type: ignore[attr-defined]
    make.prefix = prefix  # type: ignore[attr-defined]
    yield make
    for backend in opened:
        await backend.close()
    if kind == "redis":
        drop_prefix(prefix)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstreams]:
    upstreams = FakeUpstreams().start()
    yield upstreams
    upstreams.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reason = _redis_state.get("reason")
    if reason:
        terminalreporter.write_line(f"embedrouter cache tests: {reason}", yellow=True)
