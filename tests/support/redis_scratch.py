"""A Redis key prefix per test, deleted afterwards, so tests sharing one Redis never collide.

Redis comes from ``EMBEDROUTER_TEST_REDIS_URL`` (default: the local server). Unreachable: the
Redis cases fail under ``CI`` and are skipped with the reason elsewhere, like PostgreSQL's.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

REDIS_URL = os.environ.get("EMBEDROUTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        reason = f"Redis at {REDIS_URL} unreachable: {exc}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so Redis tests must run)", pytrace=False)
        pytest.skip(reason)


@contextmanager
def scratch_prefix() -> Iterator[str]:
    """A fresh prefix; every key under it is deleted when the block ends."""
    require_redis()
    prefix = f"ertest:{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for name in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(name)
        client.close()
