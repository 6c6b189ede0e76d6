"""The same job on a Ray cluster: Ray Data maps the pending chunks over actors that call the
router (a URL, or the router built inside each actor), and this driver saves what comes back.

Reading, dedupe, the checkpoint and the output are ``job``'s, so a Ray run writes the same file
and resumes the same way, including from a checkpoint a local run left (and the reverse). The
checkpoint is written by the driver only, so it needs no storage shared with the workers; the
workers need this package installed (the same environment as the driver).
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any

import numpy as np

from embedrouter.batch.checkpoint import Chunk
from embedrouter.batch.embedders import Embedder, Target, open_embedder
from embedrouter.batch.job import JobOptions, Prepared, Report, check_chunk, finish, prepare
from embedrouter.batch.progress import Progress

# An HTTP actor mostly waits on the router, so several share a CPU; an in-process one runs the
# model and takes a whole one.
HTTP_ACTOR_CPUS = 0.25
LOCAL_ACTOR_CPUS = 1.0


class EmbedActor:
    """One Ray actor: an embedder on its own event loop, fed one chunk per call."""

    def __init__(self, target: Target) -> None:
        self._loop = asyncio.new_event_loop()
        self._embedder: Embedder = self._loop.run_until_complete(open_embedder(target))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, list[Any]] = {"chunk": [], "vectors": [], "rows": [], "dim": [],
                                     "tokens": [], "cost": []}
        for k, texts in zip(batch["chunk"], batch["texts"], strict=True):
            chunk = self._loop.run_until_complete(self._embedder.embed(list(texts)))
            vectors = np.ascontiguousarray(chunk.vectors, dtype=np.float32)
            out["chunk"].append(int(k))
            out["vectors"].append(vectors.tobytes())
            out["rows"].append(vectors.shape[0])
            out["dim"].append(vectors.shape[1])
            out["tokens"].append(chunk.tokens)
            out["cost"].append("" if chunk.cost is None else str(chunk.cost))
        return {name: np.array(values, dtype=object if name in ("vectors", "cost") else None)
                for name, values in out.items()}


def _chunks(batch: dict[str, Any]) -> list[tuple[int, Chunk]]:
    got = []
    for k, raw, rows, dim, tokens, cost in zip(batch["chunk"], batch["vectors"], batch["rows"],
                                               batch["dim"], batch["tokens"], batch["cost"],
                                               strict=True):
        vectors = np.frombuffer(raw, dtype=np.float32).reshape(int(rows), int(dim))
        got.append((int(k), Chunk(vectors=vectors, tokens=int(tokens),
                                  cost=Decimal(str(cost)) if cost else None)))
    return got


def _embed_on_ray(prep: Prepared, opts: JobOptions, address: str, bar: Progress) -> int:
    import ray

    plan, cp = prep.plan, prep.checkpoint
    pending = prep.pending()
    ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    # Our bar shows the progress; Ray Data's bars and INFO lines would garble it.
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    embedded = 0
    width: list[int] = []
    try:
        items = [{"chunk": k, "texts": plan.chunk(k)} for k in pending]
        ds = ray.data.from_items(items).map_batches(
            EmbedActor, fn_constructor_kwargs={"target": opts.target}, batch_size=1,
            concurrency=opts.concurrency, batch_format="numpy",
            num_cpus=HTTP_ACTOR_CPUS if opts.target.url else LOCAL_ACTOR_CPUS)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for k, chunk in _chunks(batch):
                check_chunk(plan, k, chunk, width)
                cp.save(k, chunk)
                embedded += chunk.vectors.shape[0]
                bar.update(chunk.vectors.shape[0])
    finally:
        ray.shutdown()
    return embedded


def run_on_ray(opts: JobOptions, address: str) -> Report:
    """``job.run``'s twin on the Ray cluster at ``address``."""
    started = time.perf_counter()
    prep = prepare(opts)
    report = Report(rows=len(prep.source), unique=len(prep.plan.uniques),
                    chunks=prep.plan.chunks, resumed_chunks=len(prep.checkpoint.done),
                    extra={"ray": address})
    bar = Progress(len(prep.plan.uniques), prep.done_texts(), opts.progress)
    try:
        if prep.pending():
            report.embedded = _embed_on_ray(prep, opts, address, bar)
    finally:
        bar.close()
    finish(prep, opts, report)
    report.seconds = time.perf_counter() - started
    return report
