"""One batch job, start to finish: read, dedupe, embed what the checkpoint lacks, write.

The same steps serve the local runner here and the Ray runner (``ray_runner``): only the
``embed the pending chunks`` step differs, so output and resume semantics are identical.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from embedrouter.batch.checkpoint import Checkpoint, Chunk, checkpoint_dir
from embedrouter.batch.embedders import Target, open_embedder
from embedrouter.batch.errors import BatchError
from embedrouter.batch.output import write_output
from embedrouter.batch.plan import Plan, make_plan
from embedrouter.batch.progress import Progress
from embedrouter.batch.source import Source, read_source


@dataclass(frozen=True, slots=True)
class JobOptions:
    input: Path
    column: str
    out: Path
    target: Target
    id_columns: list[str] | None = None
    keep_text: bool = False
    batch_size: int = 128
    concurrency: int = 4
    restart: bool = False
    progress: bool = True


@dataclass(slots=True)
class Report:
    rows: int
    unique: int
    chunks: int
    resumed_chunks: int  # found finished in the checkpoint
    embedded: int = 0  # unique texts embedded by this run
    tokens: int = 0  # over the whole job, resumed chunks included
    cost: Decimal | None = None
    seconds: float = 0.0
    out: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"rows": self.rows, "unique_texts": self.unique, "chunks": self.chunks,
                "resumed_chunks": self.resumed_chunks, "embedded_texts": self.embedded,
                "tokens": self.tokens, "cost": None if self.cost is None else str(self.cost),
                "seconds": round(self.seconds, 3), "out": self.out, **self.extra}


@dataclass(slots=True)
class Prepared:
    source: Source
    plan: Plan
    checkpoint: Checkpoint

    def pending(self) -> list[int]:
        return [k for k in range(self.plan.chunks) if k not in self.checkpoint.done]

    def done_texts(self) -> int:
        return sum(self.plan.chunk_len(k) for k in self.checkpoint.done)


def prepare(opts: JobOptions, *, create: bool = True) -> Prepared:
    """Read and dedupe the input, and open (or resume) its checkpoint; ``create=False`` for a
    dry run, which writes nothing."""
    if opts.batch_size < 1 or opts.concurrency < 1:
        raise BatchError("--batch-size and --concurrency must be at least 1")
    if opts.out.suffix.lower() not in (".parquet", ".pq"):
        raise BatchError(f"{opts.out}: the output is parquet; name it *.parquet")
    source = read_source(opts.input, opts.column, opts.id_columns, opts.keep_text)
    if not len(source):
        raise BatchError(f"{opts.input}: no rows")
    plan = make_plan(source.texts, opts.batch_size)
    fingerprint = plan.fingerprint(**opts.target.params())
    cp = Checkpoint.open(checkpoint_dir(opts.out), fingerprint, plan.chunks,
                         restart=opts.restart, create=create)
    return Prepared(source, plan, cp)


SaveChunk = Callable[[int, Chunk], None]


def check_chunk(plan: Plan, k: int, chunk: Chunk, width: list[int]) -> None:
    """A chunk's vectors must be one row per text and as wide as every other chunk's."""
    n = plan.chunk_len(k)
    if chunk.vectors.ndim != 2 or chunk.vectors.shape[0] != n:
        raise BatchError(f"chunk {k}: got {chunk.vectors.shape[0]} vectors for {n} texts")
    if not width:
        width.append(chunk.vectors.shape[1])
    elif chunk.vectors.shape[1] != width[0]:
        raise BatchError(f"chunk {k}: {chunk.vectors.shape[1]} dimensions, the others "
                         f"{width[0]}")


async def embed_pending(prep: Prepared, target: Target, concurrency: int,
                        bar: Progress) -> int:
    """Embeds every chunk the checkpoint lacks with ``concurrency`` requests in flight,
    saving each as it lands; the first failure stops the rest. Returns texts embedded."""
    plan, cp = prep.plan, prep.checkpoint
    pending = iter(prep.pending())
    embedded = 0
    width: list[int] = []
    embedder = await open_embedder(target)

    async def worker() -> None:
        nonlocal embedded
        for k in pending:
            chunk = await embedder.embed(plan.chunk(k))
            check_chunk(plan, k, chunk, width)
            await asyncio.to_thread(cp.save, k, chunk)
            embedded += len(chunk.vectors)
            bar.update(len(chunk.vectors))

    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await embedder.aclose()
    return embedded


def finish(prep: Prepared, opts: JobOptions, report: Report) -> Report:
    """Writes the output from the complete checkpoint, then removes the checkpoint."""
    report.tokens, report.cost = write_output(prep.source, prep.plan, prep.checkpoint,
                                              opts.out, opts.target)
    prep.checkpoint.remove()
    report.out = str(opts.out)
    return report


def run(opts: JobOptions) -> Report:
    """The whole job on this machine. Ctrl-C or a failure leaves the checkpoint in place."""
    started = time.perf_counter()
    prep = prepare(opts)
    report = Report(rows=len(prep.source), unique=len(prep.plan.uniques),
                    chunks=prep.plan.chunks, resumed_chunks=len(prep.checkpoint.done))
    bar = Progress(len(prep.plan.uniques), prep.done_texts(), opts.progress)
    try:
        if prep.pending():
            report.embedded = asyncio.run(embed_pending(prep, opts.target, opts.concurrency,
                                                        bar))
    finally:
        bar.close()
    finish(prep, opts, report)
    report.seconds = time.perf_counter() - started
    return report


def dry_run(opts: JobOptions) -> dict[str, object]:
    """What the job would send and cost: all its unique texts, and what is still to do after
    the checkpoint's finished chunks. Sends no embeddings request and writes nothing."""
    from embedrouter.batch.estimate import estimate

    prep = prepare(opts, create=False)
    todo = [t for k in prep.pending() for t in prep.plan.chunk(k)]
    total = asyncio.run(estimate(opts.target, prep.plan.uniques))
    remaining = asyncio.run(estimate(opts.target, todo)) if prep.checkpoint.done else total

    def money(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    return {"rows": len(prep.source), "unique_texts": len(prep.plan.uniques),
            "duplicates": len(prep.source) - len(prep.plan.uniques),
            "chunks": prep.plan.chunks, "resumable_chunks": len(prep.checkpoint.done),
            "texts_to_embed": len(todo), "tokens": total.tokens,
            "tokens_to_embed": remaining.tokens, "tokens_exact": total.exact,
            "price_per_million": money(total.price_per_million),
            "cost": money(total.cost), "cost_to_embed": money(remaining.cost)}
