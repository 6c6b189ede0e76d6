"""Small helpers shared by the engine tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np

from embedrouter.engine import Batcher
from tests.engine.gated import GatedModel


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``cond`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def entered(model: GatedModel) -> None:
    """Wait (off the loop) until a forward of ``model`` has reached its gate."""
    await asyncio.to_thread(model.entered.wait, 5)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity, in float64."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def top_k_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    """Mean share of each row's k nearest other rows (by cosine) under ``a`` kept under ``b``."""
    picks = []
    for m in (a, b):
        m = np.asarray(m, dtype=np.float64)
        m = m / np.linalg.norm(m, axis=1, keepdims=True)
        sims = m @ m.T
        np.fill_diagonal(sims, -np.inf)
        picks.append(np.argpartition(-sims, k, axis=1)[:, :k])
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(*picks, strict=True)]))


@contextlib.asynccontextmanager
async def worker_batcher(gated: GatedModel, **kw: Any) -> AsyncIterator[Batcher]:
    """A started batcher on the worker path only (an inline forward behind a closed gate would
    hold the loop); on the way out the gate opens, so closing it never waits on a held forward."""
    batcher = Batcher(gated, inline_max_tokens=0, **kw)  # type: ignore[arg-type]
    await batcher.start()
    try:
        yield batcher
    finally:
        gated.gate.set()
        await batcher.close()
