"""What the SQLite ledger's WAL checkpoints add to its commits: SQLite's automatic checkpoint
(inside the commit that fills the WAL to 1,000 pages) against the ledger process's own (after
its reply, every ``CHECKPOINT_ROWS`` rows, when no batch waits), in one run.

    python bench/ledger_checkpoint.py [--commits 1000] [--rows 32] [--gap-ms 5]
                                      [--prefill 50000] [--repeats 3] [--dir DIR]

Each commit is the ledger's own (``record_sync`` on an ``open_ledger`` connection, fsynced) of
``--rows`` generation rows, as a local cohort's forward hands them over, ``--gap-ms`` apart (the
idle spell in which the ledger process checkpoints). Each round starts from a fresh database
holding ``--prefill`` rows, so that a commit dirties as many pages as it does in a server that
has run a while (generation ids are random after their second: ~48 WAL pages for 32 rows at
50,000 rows, ~16 when empty). Modes alternate round by round; prints each mode's commit p50,
p90, p99 and max (medians over rounds) and its checkpoints' median time. A commit's time is
what every charged request of its batch waits for.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import http_bench as hb  # sibling script, not a package

from embedrouter.api.encode import generation_id
from embedrouter.store.sqlite import SQLiteStore, checkpoint_sync, open_ledger, record_sync
from embedrouter.store.sqlite_ledger import CHECKPOINT_ROWS

KEY_HASH = "ab" * 32
MODES = ("sqlite-auto", "ledger")


def _rows(n: int) -> list[tuple[object, ...]]:
    now = time.time()
    return [(generation_id(), KEY_HASH, "sentence-transformers/all-minilm-l6-v2", "local-model",
             "Local", 12, 1200, int(now * 1000), 90, None) for _ in range(n)]


def _round(path: Path, mode: str, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    for old in path.parent.glob(f"{path.name}*"):
        old.unlink()
    SQLiteStore.open_sync(path)._conn.close()
    conn = open_ledger(path)
    for _ in range(args.prefill // 500):
        record_sync(conn, _rows(500))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    commits, checkpoints, unchecked = [], [], 0
    for _ in range(args.commits):
        rows = _rows(args.rows)
        t0 = time.perf_counter()
        record_sync(conn, rows)
        commits.append((time.perf_counter() - t0) * 1000)
        unchecked += len(rows)
        if mode == "ledger" and unchecked >= CHECKPOINT_ROWS:
            unchecked = 0
            t0 = time.perf_counter()
            checkpoint_sync(conn)
            checkpoints.append((time.perf_counter() - t0) * 1000)
        time.sleep(args.gap_ms / 1000)
    conn.close()
    return commits, checkpoints


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=32, help="rows a commit")
    ap.add_argument("--gap-ms", type=float, default=5.0, help="idle time between commits")
    ap.add_argument("--prefill", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", help="where the database goes (default: a temporary directory)")
    args = ap.parse_args()
    stats: dict[str, list[tuple[float, ...]]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "ledger.db"
        for r in range(args.repeats):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                commits, checkpoints = _round(path, mode, args)
                ck = statistics.median(checkpoints) if checkpoints else float("nan")
                stats[mode].append((*(hb.percentile(commits, q) for q in (50, 90, 99)),
                                    max(commits), ck))
                p50, _, p99, most, _ = stats[mode][-1]
                hb.log(f"round {r + 1} {mode}: commit p50 {p50:.2f} p99 {p99:.2f} "
                       f"max {most:.2f} ms")
    print(f"\n{'mode':<12} {'p50 ms':>8} {'p90':>8} {'p99':>8} {'max':>8} {'checkpoint':>11}")
    for mode, rows in stats.items():
        cells = [statistics.median(r[i] for r in rows) for i in range(5)]
        print(f"{mode:<12} " + " ".join(f"{c:8.2f}" for c in cells[:4]) + f" {cells[4]:11.2f}")
    print(f"(medians over {args.repeats} rounds of {args.commits} commits of {args.rows} rows, "
          f"{args.gap_ms:g} ms apart; checkpoint: the ledger's own, every {CHECKPOINT_ROWS} rows)")


if __name__ == "__main__":
    main()
