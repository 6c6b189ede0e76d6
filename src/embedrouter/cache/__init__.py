"""The content-addressed vector cache: in-process LRU, SQLite and Redis tiers, per-input keys,
single flight, and the per-request policy. Nothing here is built at import: ``build_cache``."""

from __future__ import annotations

import logging
from pathlib import Path

from embedrouter.cache.config import CacheConfig, CacheConfigError, parse_cache
from embedrouter.cache.policy import CacheMode, resolve_mode
from embedrouter.cache.service import Served, VectorCache
from embedrouter.cache.tiers import Tier, Tiers

__all__ = ["CacheConfig", "CacheConfigError", "CacheMode", "Served",
           "VectorCache", "build_cache", "parse_cache", "resolve_mode"]

log = logging.getLogger("embedrouter.cache")


async def build_cache(config: CacheConfig, data_dir: Path) -> VectorCache | None:
    """The configured tiers, or None when the cache is off (the router then skips it entirely).

    A backend that cannot start (an unwritable SQLite path) is left out with a warning: the
    cache is an optimisation, never a reason not to serve.
    """
    if not config.enabled:
        return None
    tiers: list[Tier] = []
    if config.memory:
        from embedrouter.cache.memory import MemoryBackend

        tiers.append(Tier(MemoryBackend(config.memory_max_bytes, config.ttl_s),
                          retry_s=config.backend_retry_s))
    if config.sqlite:
        from embedrouter.cache.sqlite import SqliteBackend

        path = config.sqlite_file(data_dir)
        backend = SqliteBackend(path, max_bytes=config.sqlite_max_bytes, ttl_s=config.ttl_s)
        try:
            await backend.open()
        except Exception as exc:
            await backend.close()
            log.warning("vector cache: SQLite file %s unusable (%s: %s); continuing without it",
                        path, type(exc).__name__, exc)
        else:
            tiers.append(Tier(backend, retry_s=config.backend_retry_s))
    if config.redis_url:
        from embedrouter.cache.redis import RedisBackend

        tiers.append(Tier(RedisBackend(config.redis_url, ttl_s=config.ttl_s,
                                       timeout_s=config.redis_timeout_s,
                                       prefix=config.redis_prefix),
                          retry_s=config.backend_retry_s))
    if not tiers:
        return None
    log.info("vector cache: %s", ", ".join(t.name for t in tiers))
    return VectorCache(Tiers(tiers), hit_price_fraction=config.hit_price_fraction)
