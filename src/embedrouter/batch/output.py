"""The output file: the kept columns plus the vector as a fixed-size list of float32.

Written under a temporary name and renamed, in row groups, so memory beyond the unique vectors
stays bounded and a crash never leaves a truncated file under the output's name.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import numpy as np

from embedrouter.batch.checkpoint import Checkpoint
from embedrouter.batch.embedders import Target
from embedrouter.batch.errors import BatchError
from embedrouter.batch.plan import Plan
from embedrouter.batch.source import Source

ROW_GROUP = 65_536
VECTOR_COLUMN = "embedding"


def write_output(source: Source, plan: Plan, cp: Checkpoint, out: Path, target: Target
                 ) -> tuple[int, Decimal | None]:
    """Writes ``out``; returns the job's tokens and cost (None if any chunk's is unknown)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    missing = [k for k in range(plan.chunks) if k not in cp.done]
    if missing:
        raise BatchError(f"chunk {missing[0]} is not embedded yet; rerun to finish the job")
    chunks = [cp.load(k) for k in range(plan.chunks)]
    widths = {c.vectors.shape[1] for c in chunks}
    if len(widths) != 1:
        raise BatchError(f"the checkpoint holds vectors of {sorted(widths)} dimensions; "
                         "rerun with --restart")
    unique = np.concatenate([c.vectors for c in chunks]).astype(np.float32, copy=False)
    dim = unique.shape[1]
    tokens = sum(c.tokens for c in chunks)
    costs = [c.cost for c in chunks]
    cost = None if any(c is None for c in costs) else sum(costs, Decimal(0))  # type: ignore[arg-type]

    kept = source.kept
    vector_type = pa.list_(pa.float32(), dim)
    schema = kept.schema.append(pa.field(VECTOR_COLUMN, vector_type, nullable=False))
    schema = schema.with_metadata({
        **(kept.schema.metadata or {}),
        b"embedrouter.model": target.model.encode(),
        b"embedrouter.dimensions": str(dim).encode(),
    })
    tmp = out.with_name(out.name + ".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(tmp, schema) as writer:
        for start in range(0, len(source), ROW_GROUP):
            stop = min(start + ROW_GROUP, len(source))
            rows = unique[plan.inverse[start:stop]]
            vectors = pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), dim)
            part = kept.slice(start, stop - start)
            writer.write_table(pa.Table.from_arrays([*part.columns, vectors], schema=schema))
    os.replace(tmp, out)
    return tokens, cost
