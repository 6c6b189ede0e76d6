"""A real `embedrouter serve` on each deployment's storage: SQLite with in-process counters, or
PostgreSQL (a scratch schema) with Redis (a scratch prefix), as several instances share them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.store.backends import scratch_postgres_sync
from tests.support.live import LiveServer, start_server
from tests.support.redis_scratch import REDIS_URL, scratch_prefix

BACKENDS = ["sqlite", "pg+redis"]


@contextlib.contextmanager
def backend_server(backend: str, data_dir: Path, *, cache_dir: Path,
                   config: Path | None = None) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    """The running server and the environment its CLI needs to reach the same storage."""
    env: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        if backend == "pg+redis":
            url = stack.enter_context(scratch_postgres_sync())
            env = {"EMBEDROUTER_DATABASE_URL": url, "EMBEDROUTER_REDIS_URL": REDIS_URL,
                   "EMBEDROUTER_REDIS_PREFIX": stack.enter_context(scratch_prefix())}
        live = start_server(data_dir, cache_dir=cache_dir, config=config, env=env)
        stack.callback(live.stop)
        yield live, env
