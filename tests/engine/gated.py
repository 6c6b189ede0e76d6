"""A real model behind a gate, for batcher tests that need a forward to wait or fail."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from embedrouter.engine import LocalModel

POISON = 999  # a valid token id that makes GatedModel.forward fail


class GatedModel:
    """Wraps the real model; forward and release_memory can be held at gates, and forward fails
    on POISON ids. Records the thread each forward ran on and the most forwards and releases
    that ever ran at once."""

    def __init__(self, inner: LocalModel) -> None:
        self.inner = inner
        self.dim, self.max_seq_length, self.vocab_size = (inner.dim, inner.max_seq_length,
                                                          inner.vocab_size)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.batches: list[list[list[int]]] = []
        self.releases = 0
        self.release_gate = threading.Event()  # release_memory waits here too
        self.release_gate.set()
        self.release_entered = threading.Event()
        self.threads: list[int] = []  # threading.get_ident() of each forward
        self.max_overlap = 0
        self._running = 0
        self._lock = threading.Lock()

    def _enter(self) -> None:
        with self._lock:
            self._running += 1
            self.max_overlap = max(self.max_overlap, self._running)

    def _leave(self) -> None:
        with self._lock:
            self._running -= 1

    def forward(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        self._enter()
        try:
            self.threads.append(threading.get_ident())
            self.entered.set()
            assert self.gate.wait(10), "test never opened the gate"
            self.batches.append([list(s) for s in batch])
            if any(POISON in s for s in batch):
                raise RuntimeError("boom")
            return self.inner.forward(batch)
        finally:
            self._leave()

    def release_memory(self) -> None:
        self._enter()
        try:
            self.releases += 1
            self.release_entered.set()
            assert self.release_gate.wait(10), "test never opened the release gate"
            self.inner.release_memory()
        finally:
            self._leave()
