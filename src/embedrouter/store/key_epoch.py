"""Change signals for keys: what lets a server cache key records and still refuse a key at once
after any process disables, changes or deletes it.

An epoch is an opaque value that changes whenever a key changes in the shared database; a
cached record is used only while the epoch it was read under is still current. ``current()``
is called on every request, so it costs microseconds, and it returns None whenever a change
could go unseen (then nothing is cached).

- SQLite (one file, processes on one machine): a counter in a sidecar file that every process
  maps shared; the writer increments it after its commit. Deleting that file while servers run
  would leave them on the old mapping: it lives beside the database and goes with it.
- PostgreSQL (instances on many machines): the writer sends ``NOTIFY`` in the transaction that
  changes the key, delivered at its commit; each instance listens on a connection of its own and
  counts notifications. A change is seen as soon as its notification arrives (well under a
  millisecond on a LAN). While the listener is down, or its liveness probe fails, the epoch is
  None.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import mmap
import os
from pathlib import Path

log = logging.getLogger("embedrouter.store")

# How often a quiet listener proves its connection alive: a half-open connection (a peer gone
# without a FIN) would otherwise leave a cache trusting an epoch nobody can change.
PROBE_EVERY_S = 2.0
RECONNECT_AFTER_S = 1.0
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


class NotifyEpoch:
    """The epoch of a PostgreSQL store: notifications on ``channel``, counted by one listener."""

    def __init__(self, conninfo: str, channel: str) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._count = 0
        self._live = False
        self._task: asyncio.Task[None] | None = None
        self.backend_pid: int | None = None  # the listening session, for diagnostics and tests

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    def current(self) -> int | None:
        return self._count if self._live else None

    async def _listen(self) -> None:
        import psycopg  # here: a SQLite-only server never loads libpq (~15 MB of RSS)

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self._conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {self._channel}")
                    self.backend_pid = conn.info.backend_pid
                    # Changes made before LISTEN took effect were never seen: start a new epoch.
                    self._count += 1
                    self._live = True
                    while True:
                        async for _ in conn.notifies(timeout=PROBE_EVERY_S):
                            self._count += 1
                        await asyncio.wait_for(conn.execute("SELECT 1"), PROBE_EVERY_S)
            except asyncio.CancelledError:
                self._live = False
                raise
            except Exception as exc:
                if self._live:
                    log.warning("the key-change listener lost PostgreSQL (%s); keys are read "
                                "from the database on every request until it is back",
                                type(exc).__name__)
            self._live = False
            self._count += 1
            await asyncio.sleep(RECONNECT_AFTER_S)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
