"""The ``[cache]`` section of the config file, validated at start.

Three backends, looked up in this order: an in-process LRU bounded by bytes, an SQLite file in
the data dir bounded by size (both on by default), and Redis, shared by every instance that
points at it (on when ``redis_url`` or ``EMBEDROUTER_REDIS_URL`` is set).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

REDIS_URL_ENV = "EMBEDROUTER_REDIS_URL"
DAY_S = 86_400

CACHE_KEYS = frozenset({
    "enabled", "ttl_s", "memory", "memory_max_bytes", "sqlite", "sqlite_path", "sqlite_max_bytes",
    "redis_url", "redis_timeout_s", "redis_prefix", "backend_retry_s", "hit_price_fraction",
})


class CacheConfigError(ValueError):
    """A ``[cache]`` value cannot be used; the message names the key."""


@dataclass(frozen=True, slots=True)
class CacheConfig:
    enabled: bool = True
    ttl_s: int = 30 * DAY_S  # every backend forgets a vector this long after it was written
    memory: bool = True
    memory_max_bytes: int = 256 * 1024 * 1024
    sqlite: bool = True
    sqlite_path: Path | None = None  # None: <data_dir>/vector-cache.sqlite3
    sqlite_max_bytes: int = 1024 * 1024 * 1024
    redis_url: str | None = None
    # A Redis that stopped answering must cost a request at most this long, once: the backend is
    # then skipped for backend_retry_s.
    redis_timeout_s: float = 0.5
    redis_prefix: str = "embedrouter:vec:"
    backend_retry_s: float = 5.0
    # What a hit costs, as a fraction of the model's price for its tokens: 0 = hits are free.
    hit_price_fraction: Decimal = Decimal(0)

    def sqlite_file(self, data_dir: Path) -> Path:
        return self.sqlite_path if self.sqlite_path is not None \
            else data_dir / "vector-cache.sqlite3"


_D = CacheConfig()  # the defaults, read from an instance: slots hide class attributes


def _bool(table: Mapping[str, Any], key: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise CacheConfigError(f"cache.{key}: expected true or false")
    return value


def _int(table: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CacheConfigError(f"cache.{key}: expected an integer >= {minimum}")
    return value


def _seconds(table: Mapping[str, Any], key: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise CacheConfigError(f"cache.{key}: expected a number of seconds > 0 and <= 3600")
    return float(value)


def _fraction(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise CacheConfigError("cache.hit_price_fraction: expected a number between 0 and 1")
    try:
        # Through str so that a TOML 0.1 is exactly one tenth, not its binary neighbour.
        fraction = Decimal(str(value))
    except InvalidOperation:
        raise CacheConfigError(
            f"cache.hit_price_fraction: {value!r} is not a decimal number") from None
    if not fraction.is_finite() or not 0 <= fraction <= 1:
        raise CacheConfigError("cache.hit_price_fraction: expected a number between 0 and 1")
    return fraction


def parse_cache(table: Any, env: Mapping[str, str]) -> CacheConfig:
    """``[cache]`` (a TOML table, or absent) plus ``EMBEDROUTER_REDIS_URL``, which wins."""
    if table is None:
        table = {}
    if not isinstance(table, dict):
        raise CacheConfigError("[cache]: expected a table")
    unknown = set(table) - CACHE_KEYS
    if unknown:
        raise CacheConfigError(f"[cache]: unknown keys {sorted(unknown)}")
    redis_url = env.get(REDIS_URL_ENV) or table.get("redis_url")
    if redis_url is not None and (not isinstance(redis_url, str) or not redis_url.startswith(
            ("redis://", "rediss://", "unix://"))):
        # The value is not echoed: a Redis URL may carry a password.
        raise CacheConfigError("cache.redis_url: expected a redis://, rediss:// or unix:// URL")
    path = table.get("sqlite_path")
    if path is not None and (not isinstance(path, str) or not path):
        raise CacheConfigError("cache.sqlite_path: expected a non-empty string")
    prefix = table.get("redis_prefix", _D.redis_prefix)
    if not isinstance(prefix, str) or not prefix:
        raise CacheConfigError("cache.redis_prefix: expected a non-empty string")
    return CacheConfig(
        enabled=_bool(table, "enabled", True),
        ttl_s=_int(table, "ttl_s", _D.ttl_s, 1),
        memory=_bool(table, "memory", True),
        memory_max_bytes=_int(table, "memory_max_bytes", _D.memory_max_bytes, 1024),
        sqlite=_bool(table, "sqlite", True),
        sqlite_path=Path(path).expanduser() if path else None,
        sqlite_max_bytes=_int(table, "sqlite_max_bytes", _D.sqlite_max_bytes, 65536),
        redis_url=redis_url or None,
        redis_timeout_s=_seconds(table, "redis_timeout_s", _D.redis_timeout_s),
        redis_prefix=prefix,
        backend_retry_s=_seconds(table, "backend_retry_s", _D.backend_retry_s),
        hit_price_fraction=_fraction(table.get("hit_price_fraction", 0)),
    )
