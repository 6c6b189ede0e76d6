"""SQLite specifics: file layout, pragmas, schema version table, refusing newer schemas."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from embedrouter.store import SchemaTooNew, StoreUnavailable, open_store
from embedrouter.store.migrations import LATEST_VERSION, MIGRATIONS, VERSION_TABLE, pending
from embedrouter.store.records import GenerationRecord
from embedrouter.store.sqlite_ledger import LedgerLost

ROOT = Path(__file__).resolve().parents[2]


async def test_creates_folders_wal_and_version_rows(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "er.db"
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        versions = [r[0] for r in conn.execute(f"SELECT version FROM {VERSION_TABLE}")]
    assert versions == [m.version for m in MIGRATIONS]  # each once, despite two opens


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "er.db"
    await (await open_store(f"sqlite:///{path}")).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"INSERT INTO {VERSION_TABLE} VALUES (?, 'future', 0)",
                     (LATEST_VERSION + 1,))
    with pytest.raises(SchemaTooNew):
        await open_store(f"sqlite:///{path}")


def test_pending_is_ordered_and_skips_applied() -> None:
    assert pending([]) == list(MIGRATIONS)
    assert pending([m.version for m in MIGRATIONS]) == []
    versions = [m.version for m in MIGRATIONS]
    assert versions == sorted(versions) == list(range(1, len(versions) + 1))


def test_many_processes_opening_a_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    # Switching a fresh file to WAL takes an exclusive lock, and SQLite can answer "database is
    # locked" at once (no busy handler) to a connection that meets another one switching: with
    # 8 openers on a fresh file that happened in about 1 round in 15 before the retry (2 cores).
    from embedrouter.store.sqlite import SQLiteStore
    from tests.support.threads import at_once

    for round_ in range(100):
        path = tmp_path / f"r{round_}" / "embedrouter.db"
        _, errors = at_once(lambda p=path: SQLiteStore.open_sync(p)._conn.close(), 8)
        assert errors == [], f"round {round_}: {errors[0]!r}"


def _gen(i: int) -> GenerationRecord:
    return GenerationRecord(id=f"gen-emb-1-ledger{i:04d}", key_hash="k" * 64, model="a/b",
                            upstream_model="b", provider="Local", tokens=4, cost_nanos=100 + i,
                            created_ms=1_700_000_000_000 + i, latency_ms=1)


async def test_ledger_process_killed_between_batches_is_restarted(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'er.db'}")
    try:
        await store.record_generations([_gen(0), _gen(1)])
        proc = store._ledger._proc  # type: ignore[attr-defined]
        assert proc is not None
        proc.kill()
        await proc.wait()
        await store.record_generations([_gen(2)])  # a fresh process takes over
        assert store._ledger._proc is not proc  # type: ignore[attr-defined]
        for i in range(3):
            got = await store.get_generation(_gen(i).id)
            assert got is not None and got.cost_nanos == 100 + i
    finally:
        await store.close()
    assert proc.returncode is not None


def _rows_in_main_file(path: Path, scratch: Path) -> int:
    """The generations in the database file alone, as if its WAL were lost: what the ledger's
    checkpoints have copied there."""
    scratch.write_bytes(path.read_bytes())
    for suffix in ("-wal", "-shm"):
        Path(f"{scratch}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(scratch) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = "
                            "'embedrouter_generations'").fetchall():
            return 0  # even the schema is still in the WAL only
        return conn.execute("SELECT COUNT(*) FROM embedrouter_generations").fetchone()[0]


async def test_ledger_checkpoints_between_commits(tmp_path: Path) -> None:
    # SQLite's own checkpoint runs inside the commit that fills the WAL to 1,000 pages, and that
    # commit's requests wait for it; the ledger process checkpoints once it has replied instead,
    # every CHECKPOINT_ROWS rows, far below that.
    from embedrouter.store.sqlite_ledger import CHECKPOINT_ROWS

    path, scratch = tmp_path / "er.db", tmp_path / "copy.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        batch = 32
        full = CHECKPOINT_ROWS // batch
        for b in range(full - 1):
            await store.record_generations([_gen(b * batch + i) for i in range(batch)])
        time.sleep(0.2)  # a checkpoint would have run by now: none is due
        assert _rows_in_main_file(path, scratch) == 0
        await store.record_generations([_gen((full - 1) * batch + i) for i in range(batch)])
        deadline = time.monotonic() + 10
        while True:
            try:
                copied = _rows_in_main_file(path, scratch)
            except sqlite3.DatabaseError:  # copied while the checkpoint wrote: read again
                copied = -1
            if copied == CHECKPOINT_ROWS or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert copied == CHECKPOINT_ROWS
    finally:
        await store.close()


async def test_ledger_process_closed_with_the_store(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'er.db'}")
    await store.record_generations([_gen(0)])
    proc = store._ledger._proc  # type: ignore[attr-defined]
    await store.close()
    assert proc is not None and proc.returncode == 0


async def test_a_lost_batch_is_reported_by_what_the_ledger_holds(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'er.db'}")
    ledger = store._ledger  # type: ignore[attr-defined]
    commit = ledger.commit
    try:
        # The process ended after committing, before its reply: the batch is in the ledger,
        # so it succeeded (failing it would release holds whose charges exist).
        async def committed_then_lost(rows):  # type: ignore[no-untyped-def]
            await commit(rows)
            raise LedgerLost()

        ledger.commit = committed_then_lost
        await store.record_generations([_gen(0), _gen(1)])

        # It ended before committing: unknown to the caller, absent from the ledger, a 503.
        async def lost(rows):  # type: ignore[no-untyped-def]
            raise LedgerLost()

        ledger.commit = lost
        with pytest.raises(StoreUnavailable):
            await store.record_generations([_gen(2)])
        assert await store.get_generation(_gen(2).id) is None
    finally:
        ledger.commit = commit
        await store.close()


def test_ledger_process_exits_when_the_server_is_killed(tmp_path: Path) -> None:
    # SIGKILL leaves no chance to close the store: the ledger process must not outlive it.
    script = (
        "import asyncio, sys\n"
        "from embedrouter.store import open_store\n"
        "from tests.store.test_sqlite import _gen\n"
        "async def main():\n"
        f"    store = await open_store('sqlite:///{tmp_path / 'er.db'}')\n"
        "    await store.record_generations([_gen(0)])\n"
        "    print(store._ledger._proc.pid, flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n")
    server = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                  [str(ROOT / "src"), str(ROOT)])})
    try:
        assert server.stdout is not None
        ledger_pid = int(server.stdout.readline())
        server.kill()
        server.wait()
        deadline = time.monotonic() + 10
        while _alive(ledger_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(ledger_pid)
    finally:
        server.kill()
        server.wait()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False
