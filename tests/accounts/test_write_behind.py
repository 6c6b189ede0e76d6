"""Free requests' usage records are written behind the response: committed, readable once
``settled`` returns, and counted in the writer's figures, without the caller waiting for them."""

from __future__ import annotations

from pathlib import Path

from embedrouter.accounts.ledger import LedgerWriter
from embedrouter.store import open_store
from embedrouter.store.records import GenerationRecord


def _row(i: int) -> GenerationRecord:
    return GenerationRecord(id=f"gen-emb-1-free{i:04d}", key_hash="k" * 64, model="a/b",
                            upstream_model="b", provider="Local", tokens=4, cost_nanos=0,
                            created_ms=1_700_000_000_000 + i, latency_ms=1)


async def test_rows_written_behind_are_committed_and_readable(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'e.db'}")
    try:
        writer = LedgerWriter(store.record_generations)
        for i in range(50):
            writer.write_behind(_row(i))  # returns at once: nothing awaited
        assert writer.rows < 50  # not all committed yet: the caller did not wait
        await writer.settled()
        assert writer.rows == 50 and writer.commits < 50  # group-committed
        for i in (0, 25, 49):
            got = await store.get_generation(_row(i).id)
            assert got is not None and got.cost_nanos == 0 and got.tokens == 4
        await writer.close()
    finally:
        await store.close()
