"""The one seam every cache backend implements, and the counters kept for each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from embedrouter.cache.entry import Entry


class Backend(Protocol):
    """A key-value store of entries. Any exception it raises is a backend failure: the tier
    above logs it, counts it and skips the backend for a while; the client never sees it."""

    name: str

    async def get_many(self, keys: Sequence[bytes]) -> dict[bytes, Entry]:
        """The entries found (and not expired) among ``keys``; absent keys are left out."""
        ...

    async def put_many(self, entries: Mapping[bytes, Entry]) -> None: ...

    def gauges(self) -> dict[str, float]:
        """What the backend holds: ``bytes`` and ``entries`` where it can tell, and
        ``evictions_total`` (entries dropped to stay within its size)."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class Counters:
    """Per backend, on the event loop: hits and misses per input key looked up."""

    hits: int = 0
    misses: int = 0
    writes: int = 0
    errors: int = 0
    skipped: int = 0  # calls not made because the backend failed recently
    corrupt: int = 0  # entries found but refused (bad bytes or wrong width): counted as misses

    def as_dict(self) -> dict[str, float]:
        return {"hits_total": self.hits, "misses_total": self.misses,
                "writes_total": self.writes, "errors_total": self.errors,
                "skipped_total": self.skipped, "corrupt_total": self.corrupt}
