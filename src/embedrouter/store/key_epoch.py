"""Change signals for keys: what lets a server cache key records and still refuse a key at once
after any process disables, changes or deletes it.

An epoch is an opaque value that changes whenever a key changes in the shared database; a
cached record is used only while the epoch it was read under is still current. ``current()``
is called on every request, so it costs microseconds, and it returns None whenever a change
could go unseen (then nothing is cached).

SQLite (one file, processes on one machine) has one: a counter in a sidecar file that every
process maps shared; the writer increments it after its commit, before its call returns.
Deleting that file while servers run would leave them on the old mapping: it lives beside the
database and goes with it.

PostgreSQL has none, on purpose: a ``NOTIFY`` reaches the listeners asynchronously to the
committing client, so an instance could still serve a key for a moment after the command that
disabled it returned (CI caught exactly that). Keys there are read on every request.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
from pathlib import Path

log = logging.getLogger("embedrouter.store")

EPOCH_BYTES = 8


class FileEpoch:
    """The epoch of a SQLite store: a counter in a small file that every process maps.

    A shared mapping makes the per-request read a memory load (a ``stat`` cost 8 us here, a
    third of the query it saves). Writers bump it after their commit, under a file lock.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._map: mmap.mmap | None = None
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < EPOCH_BYTES:
                    os.ftruncate(fd, EPOCH_BYTES)  # zeros; racing processes agree on the size
                self._map = mmap.mmap(fd, EPOCH_BYTES)
            finally:
                os.close(fd)
        except (OSError, ValueError) as exc:
            log.warning("cannot map %s (%s); keys are read from the database on every "
                        "request", path, type(exc).__name__)

    def bump(self) -> None:
        """Signal a change; called after the change has committed."""
        if self._map is None:
            return
        # Read after the commit, so even two writers that both write N+1 leave a value that no
        # reader can have paired with a row older than either commit.
        with open(self._path, "rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            value = int.from_bytes(self._map[:EPOCH_BYTES], "little") + 1
            self._map[:EPOCH_BYTES] = (value % 2**64).to_bytes(EPOCH_BYTES, "little")

    def current(self) -> bytes | None:
        return self._map[:EPOCH_BYTES] if self._map is not None else None

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
