"""The checkpoint beside the output: one file per finished chunk, written atomically.

``OUT.parquet.partial/`` holds ``job.json`` (what the job is: a fingerprint of its texts and
parameters) and ``chunk-NNNNNNN.npz`` per finished chunk (its vectors, token count and cost).
Each chunk file is written under a temporary name and renamed into place, so after a crash or
Ctrl-C every file present is whole: a rerun loads those and embeds only the rest. The directory
is removed once the output is written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np

from embedrouter.batch.errors import BatchError

_CHUNK = re.compile(r"chunk-(\d{7})\.npz")
VERSION = 1


@dataclass(frozen=True, slots=True)
class Chunk:
    vectors: np.ndarray  # (n, d) float32
    tokens: int
    cost: Decimal | None  # None where the router did not say


def checkpoint_dir(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


class Checkpoint:
    """Finished chunks of one job; ``open`` resumes a matching one or starts afresh."""

    def __init__(self, path: Path, fingerprint: str, chunks: int) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.chunks = chunks
        self.done: set[int] = set()

    @classmethod
    def open(cls, path: Path, fingerprint: str, chunks: int, *, restart: bool = False,
             create: bool = True) -> Checkpoint:
        """``create=False`` only reads (for a dry run): nothing is written or removed."""
        meta = path / "job.json"
        if not create:
            cp = cls(path, fingerprint, chunks)
            if not restart and meta.exists() and path.is_dir():
                found = json.loads(meta.read_text())
                if found.get("fingerprint") == fingerprint:
                    cp.done = {int(m.group(1)) for e in os.listdir(path)
                               if (m := _CHUNK.fullmatch(e)) and int(m.group(1)) < chunks}
            return cp
        if path.exists() and restart:
            shutil.rmtree(path)
        if meta.exists():
            try:
                found = json.loads(meta.read_text())
            except (OSError, ValueError):
                found = {}
            if found.get("fingerprint") != fingerprint or found.get("version") != VERSION:
                raise BatchError(
                    f"{path} holds the checkpoint of a different job (other texts, model or "
                    "options); pass --restart to discard it, or remove it")
        cp = cls(path, fingerprint, chunks)
        path.mkdir(parents=True, exist_ok=True)
        if not meta.exists():
            tmp = path / "job.json.tmp"
            tmp.write_text(json.dumps({"version": VERSION, "fingerprint": fingerprint,
                                       "chunks": chunks}))
            os.replace(tmp, meta)
        for entry in os.listdir(path):
            m = _CHUNK.fullmatch(entry)
            if m and int(m.group(1)) < chunks:
                cp.done.add(int(m.group(1)))
            elif entry.endswith(".tmp") and entry != "job.json.tmp":
                (path / entry).unlink(missing_ok=True)  # a write cut short by the crash
        return cp

    def _file(self, k: int) -> Path:
        return self.path / f"chunk-{k:07d}.npz"

    def save(self, k: int, chunk: Chunk) -> None:
        """Blocking file I/O (a few hundred kB): call it from a worker thread."""
        tmp = self.path / f"chunk-{k:07d}.npz.tmp"
        with open(tmp, "wb") as f:
            np.savez(f, vectors=np.ascontiguousarray(chunk.vectors, dtype=np.float32),
                     tokens=np.int64(chunk.tokens),
                     cost=np.array("" if chunk.cost is None else str(chunk.cost)))
        os.replace(tmp, self._file(k))
        self.done.add(k)

    def load(self, k: int) -> Chunk:
        try:
            with np.load(self._file(k), allow_pickle=False) as z:
                cost = str(z["cost"])
                return Chunk(vectors=z["vectors"], tokens=int(z["tokens"]),
                             cost=Decimal(cost) if cost else None)
        except (OSError, ValueError, KeyError) as exc:
            raise BatchError(f"{self._file(k)}: unreadable ({exc}); remove it and rerun "
                             "to embed that chunk again") from None

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
