"""The ``[cache]`` section of the config file: a msgspec schema, decoded at start.

Three backends, looked up in this order: an in-process LRU bounded by bytes, an SQLite file in
the data dir bounded by size (both on by default), and Redis, shared by every instance that
points at it (on when ``redis_url`` or ``EMBEDROUTER_REDIS_URL`` is set).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from msgspec import UNSET, Meta, Struct, UnsetType

from embedrouter.configschema import FieldError, NonEmpty, Positive, decode, set_fields

REDIS_URL_ENV = "EMBEDROUTER_REDIS_URL"
DAY_S = 86_400
_REDIS_URL = r"^(redis://|rediss://|unix://)"


class CacheConfigError(ValueError):
    """A ``[cache]`` value cannot be used; the message names the file and the key."""


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


Seconds = Annotated[float, Meta(gt=0, le=3600)]


class _Cache(Struct, forbid_unknown_fields=True):
    enabled: bool | UnsetType = UNSET
    ttl_s: Positive | UnsetType = UNSET
    memory: bool | UnsetType = UNSET
    memory_max_bytes: Annotated[int, Meta(ge=1024)] | UnsetType = UNSET
    sqlite: bool | UnsetType = UNSET
    sqlite_path: NonEmpty | UnsetType = UNSET
    sqlite_max_bytes: Annotated[int, Meta(ge=65536)] | UnsetType = UNSET
    # A pattern, so that a bad URL is refused without being echoed: it may carry a password.
    redis_url: Annotated[str, Meta(pattern=_REDIS_URL)] | UnsetType = UNSET
    redis_timeout_s: Seconds | UnsetType = UNSET
    redis_prefix: NonEmpty | UnsetType = UNSET
    backend_retry_s: Seconds | UnsetType = UNSET
    # A TOML 0.1 becomes exactly one tenth: msgspec reads a float into a Decimal by its repr.
    hit_price_fraction: Decimal | UnsetType = UNSET

    def __post_init__(self) -> None:
        fraction = self.hit_price_fraction
        if fraction is not UNSET and (not fraction.is_finite() or not 0 <= fraction <= 1):
            raise FieldError("hit_price_fraction", "expected a number between 0 and 1")


def parse_cache(table: Any, env: Mapping[str, str], *, source: str = "config") -> CacheConfig:
    """``[cache]`` (a TOML table, or absent) plus ``EMBEDROUTER_REDIS_URL``, which wins."""
    fields = set_fields(decode({} if table is None else table, _Cache, source=source,
                               entry="cache", error=CacheConfigError))
    if "sqlite_path" in fields:
        fields["sqlite_path"] = Path(fields["sqlite_path"]).expanduser()
    if env.get(REDIS_URL_ENV):
        if not re.match(_REDIS_URL, env[REDIS_URL_ENV]):
            # Not echoed: a Redis URL may carry a password.
            raise CacheConfigError(f"{REDIS_URL_ENV} (cache.redis_url): expected a redis://, "
                                   "rediss:// or unix:// URL")
        fields["redis_url"] = env[REDIS_URL_ENV]
    return CacheConfig(**fields)
