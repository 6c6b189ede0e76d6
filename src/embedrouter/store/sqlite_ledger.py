"""The SQLite ledger's commits, in a child process that owns the ledger connection.

Each commit is fsynced (``synchronous = FULL``) and must not block the event loop, so it runs
elsewhere. A thread was measured first (bench/accounts_bench.py, remote workload, 2-core VM):
the commit itself costs ~200 us, but every handoff made the writer thread and the event loop
trade the GIL, and each forced switch left the loop waiting for the OS to schedule the writer.
Accounting cost ~27% of throughput that way (a long-lived writer thread; a thread per commit
was no better), against 12-15% for the same commits run inline on the loop (which would stall
every request behind a slow disk's fsync). A child process has its own interpreter: the loop
writes a batch to a pipe and reads one short reply, and nothing else is shared.

The child also checkpoints the WAL, between commits: SQLite's automatic checkpoint runs inside
the commit that fills the WAL to 1,000 pages, so every ~20th commit of a local cohort (~48 pages
for 32 rows once the table is large) also copied ~4 MB into the database file and fsynced it,
and that commit's requests waited the extra 2-5 ms (more on a slow disk). Once its reply is out,
if no batch is waiting on stdin and ``CHECKPOINT_ROWS`` rows have been committed since the last
one, the child runs a small PASSIVE checkpoint itself (~1 ms). It runs in the writer, so it copies
the whole WAL and the next commit starts the WAL over (a checkpoint in a thread of its own runs
beside commits and never catches up, so the WAL would never restart). A stream of commits with no
idle moment leaves the automatic checkpoint to do it, as before.

Protocol (stdin to the child, stdout back), each message a 4-byte little-endian length and a
``marshal`` payload: ``(seq, rows)`` in, ``(seq, status, message)`` out, in order. ``rows`` are
``gen_values`` tuples, committed in one transaction. The child exits when stdin closes (the
server closed the store, or died), after finishing the commit in hand.
"""

from __future__ import annotations

import asyncio
import marshal
import os
import select
import signal
import struct
import sys
from pathlib import Path
from typing import Any

import embedrouter
from embedrouter.store.base import StoreUnavailable

HEADER = struct.Struct("<I")
OK, BUSY, FAILED = 0, 1, 2
# ~400 WAL pages at most between checkpoints (bench/README: 1 ms a checkpoint, off the path).
CHECKPOINT_ROWS = 256


class LedgerLost(StoreUnavailable):
    """The ledger process ended with this batch in hand: whether it committed is unknown
    until the database is read."""


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read(fd: int) -> Any:
    # Unbuffered, so that select() on the descriptor tells exactly whether a batch waits.
    head = _read_exactly(fd, HEADER.size)
    if head is None:
        return None
    body = _read_exactly(fd, HEADER.unpack(head)[0])
    return None if body is None else marshal.loads(body)


def _waiting(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def _frame(message: Any) -> bytes:
    body = marshal.dumps(message)
    return HEADER.pack(len(body)) + body


def child_main(path: str) -> None:
    """The child's loop: commit each batch read from stdin, reply on stdout."""
    from embedrouter.store.sqlite import checkpoint_sync, open_ledger, record_sync

    # Out of the terminal's reach too (its own session): a Ctrl-C must not abort a commit the
    # server is still waiting for while it shuts down; the end of stdin is the only stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = open_ledger(Path(path))
    stdin, stdout = sys.stdin.fileno(), sys.stdout.buffer
    unchecked = 0  # rows committed since the last checkpoint
    while (message := _read(stdin)) is not None:
        seq, rows = message
        try:
            record_sync(conn, rows)
            reply = (seq, OK, "")
            unchecked += len(rows)
        except StoreUnavailable:
            reply = (seq, BUSY, "")
        except Exception as exc:  # reported to the waiting requests; the next batch may pass
            reply = (seq, FAILED, f"{type(exc).__name__}: {exc}")
        stdout.write(_frame(reply))
        stdout.flush()
        if unchecked >= CHECKPOINT_ROWS and not _waiting(stdin):
            unchecked = 0
            checkpoint_sync(conn)
    conn.close()


class LedgerProcess:
    """The server's side: started on the first batch, restarted after it ends."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._starting: asyncio.Lock | None = None
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._seq = 0

    async def _start(self) -> asyncio.subprocess.Process:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._proc is not None and self._proc.returncode is None \
                    and self._reader is not None and not self._reader.done():
                return self._proc
            # The package's own location, whatever put it on this process's path.
            root = str(Path(embedrouter.__file__).resolve().parents[1])
            code = ("import sys; sys.path.insert(0, sys.argv[1]); "
                    "from embedrouter.store.sqlite_ledger import child_main; "
                    "child_main(sys.argv[2])")
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", code, root, str(self._path),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                start_new_session=True)
            self._proc = proc
            self._reader = asyncio.create_task(self._read_replies(proc))
            return proc

    async def _read_replies(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                head = await proc.stdout.readexactly(HEADER.size)
                seq, status, message = marshal.loads(
                    await proc.stdout.readexactly(HEADER.unpack(head)[0]))
                future = self._pending.pop(seq, None)
                if future is None or future.done():
                    continue
                if status == OK:
                    future.set_result(None)
                elif status == BUSY:
                    future.set_exception(StoreUnavailable())
                else:
                    future.set_exception(RuntimeError(f"ledger commit failed: {message}"))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            # Ended (or closed) with batches in hand; once it has exited, each of them either
            # committed or did not, and the caller reads the database to tell which.
            await proc.wait()
            pending, self._pending = self._pending, {}
            for future in pending.values():
                if not future.done():
                    future.set_exception(LedgerLost())

    async def commit(self, rows: list[tuple[Any, ...]]) -> None:
        """Commit ``rows`` in one fsynced transaction; raise StoreUnavailable (LedgerLost if
        the outcome is unknown) or RuntimeError on failure."""
        proc = await self._start()
        assert proc.stdin is not None
        self._seq += 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[self._seq] = future
        try:
            proc.stdin.write(_frame((self._seq, rows)))
            await proc.stdin.drain()
        except (ConnectionError, RuntimeError):
            pass  # it ended: the reader fails this batch as lost
        await future

    async def close(self) -> None:
        """Let the batches in hand finish, then end the process; idempotent."""
        proc, reader = self._proc, self._reader
        self._proc = self._reader = None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        if reader is not None:
            await reader
