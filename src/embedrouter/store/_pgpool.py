"""A small pool of psycopg async connections.

psycopg_pool is not a dependency, and the store needs little: a bounded number of connections,
opened lazily, reused when healthy, dropped when not. Connections run in autocommit mode so that
a single-statement read is its own transaction and never holds a snapshot between requests;
multi-statement work uses ``conn.transaction()``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus

# A database that does not answer within this many seconds is reported as unavailable rather
# than hanging the request; the URL may override it with ?connect_timeout=N.
DEFAULT_CONNECT_TIMEOUT_S = 5


class ConnectionPool:
    """At most ``max_size`` connections; callers beyond that wait for one to come back."""

    def __init__(self, conninfo: str, *, max_size: int = 10) -> None:
        if "connect_timeout" not in conninfo_to_dict(conninfo):
            conninfo = make_conninfo(conninfo, connect_timeout=DEFAULT_CONNECT_TIMEOUT_S)
        self._conninfo = conninfo
        self._idle: deque[psycopg.AsyncConnection[Any]] = deque()
        self._slots = asyncio.Semaphore(max_size)
        self._closed = False

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)

    @asynccontextmanager
    async def connection(
        self, *, fresh: bool = False
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """Borrow a connection; ``fresh`` skips idle ones (a retry after a stale one failed)."""
        if self._closed:
            raise RuntimeError("the connection pool is closed")
        async with self._slots:
            conn = None
            while not fresh and self._idle and conn is None:
                candidate = self._idle.pop()
                if candidate.closed:
                    continue
                conn = candidate
            if conn is None:
                conn = await self._connect()
            try:
                yield conn
            finally:
                # Keep it only if it is back in a clean state: an error or cancellation in the
                # middle of a statement leaves it busy or in a failed transaction.
                healthy = (not conn.closed
                           and conn.info.transaction_status == TransactionStatus.IDLE)
                if healthy and not self._closed:
                    self._idle.append(conn)
                else:
                    await conn.close()

    async def close(self) -> None:
        """Close idle connections now and borrowed ones when they come back."""
        self._closed = True
        while self._idle:
            await self._idle.pop().close()
