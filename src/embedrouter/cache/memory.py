"""The in-process backend: an LRU bounded by bytes, with a TTL."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from embedrouter.cache.entry import Entry

# Per entry beyond the vector: the key, the tuple, the array header and the dict slot.
ENTRY_OVERHEAD = 200


class MemoryBackend:
    """Owned by the event loop (no locks): every method runs to completion without awaiting."""

    name = "memory"

    def __init__(self, max_bytes: int, ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._max = max_bytes
        self._ttl = ttl_s
        self._clock = clock
        self._items: OrderedDict[bytes, tuple[Entry, float]] = OrderedDict()
        self._bytes = 0
        self.evictions = 0

    async def get_many(self, keys: Sequence[bytes]) -> dict[bytes, Entry]:
        now = self._clock()
        found: dict[bytes, Entry] = {}
        items = self._items
        for key in keys:
            held = items.get(key)
            if held is None:
                continue
            entry, expires = held
            if expires <= now:
                self._drop(key)
                continue
            items.move_to_end(key)
            found[key] = entry
        return found

    async def put_many(self, entries: Mapping[bytes, Entry]) -> None:
        expires = self._clock() + self._ttl
        for key, entry in entries.items():
            size = entry.nbytes + ENTRY_OVERHEAD
            if size > self._max:
                continue
            if key in self._items:
                self._drop(key)
            self._items[key] = (entry, expires)
            self._bytes += size
        while self._bytes > self._max:
            oldest = next(iter(self._items))
            self._drop(oldest)
            self.evictions += 1

    def _drop(self, key: bytes) -> None:
        entry, _ = self._items.pop(key)
        self._bytes -= entry.nbytes + ENTRY_OVERHEAD

    def gauges(self) -> dict[str, float]:
        return {"bytes": self._bytes, "entries": len(self._items),
                "evictions_total": self.evictions}

    async def close(self) -> None:
        self._items.clear()
        self._bytes = 0
