"""Exact dedupe of the texts, and the fixed cut of the unique ones into request-sized chunks.

A chunk is the unit of work, of checkpointing and of resume: chunk ``k`` is always
``uniques[k * batch_size:(k + 1) * batch_size]``, so a rerun over the same input recomputes
the same chunks and skips those already saved.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Plan:
    uniques: list[str]  # each distinct text once, in order of first appearance
    inverse: np.ndarray  # int64 per input row: its text's position in ``uniques``
    batch_size: int

    @property
    def chunks(self) -> int:
        return -(-len(self.uniques) // self.batch_size)

    def chunk(self, k: int) -> list[str]:
        return self.uniques[k * self.batch_size:(k + 1) * self.batch_size]

    def chunk_len(self, k: int) -> int:
        return min(self.batch_size, len(self.uniques) - k * self.batch_size)

    def fingerprint(self, **params: object) -> str:
        """sha256 of the unique texts (length-prefixed, so no separator can collide) and the
        job's parameters: a checkpoint made for anything else is never resumed."""
        h = hashlib.sha256()
        for key in sorted(params):
            h.update(f"{key}={params[key]!r}\n".encode())
        h.update(f"batch_size={self.batch_size}\n".encode())
        for text in self.uniques:
            data = text.encode("utf-8", "surrogatepass")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
        return h.hexdigest()


def make_plan(texts: list[str], batch_size: int) -> Plan:
    """Dedupe exactly (equal strings, nothing fuzzier) and cut into chunks of ``batch_size``."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    first: dict[str, int] = {}
    inverse = np.fromiter((first.setdefault(t, len(first)) for t in texts), dtype=np.int64,
                          count=len(texts))
    return Plan(uniques=list(first), inverse=inverse, batch_size=batch_size)
