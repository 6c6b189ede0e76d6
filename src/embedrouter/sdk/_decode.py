"""Embedding vectors into numpy: one decode per vector, straight into a preallocated array.

numpy is optional for the SDK; only the functions here need it.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Sequence
from typing import Any


def numpy() -> Any:
    """The numpy module, or an ImportError that says how to get it."""
    try:
        import numpy as np
    except ImportError as exc:
        raise ImportError("to_numpy and embed_many need numpy: "
                          "pip install 'embedrouter[numpy]'") from exc
    return np


def vector(np: Any, embedding: Sequence[float] | str) -> Any:
    """One embedding as a 1-D float32 array: base64 is little-endian float32 (the OpenAI
    convention), read in place from the decoded bytes; a float list is converted once.

    Raises ValueError for base64 that is malformed or not a whole number of float32s.
    """
    if isinstance(embedding, str):
        try:
            raw = binascii.a2b_base64(embedding.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ValueError(f"invalid base64 embedding: {exc}") from None
        if len(raw) % 4:
            raise ValueError(f"base64 embedding of {len(raw)} bytes is not float32")
        return np.frombuffer(raw, dtype="<f4")
    return np.asarray(embedding, dtype=np.float32)


def stack(embeddings: Iterable[Sequence[float] | str], count: int) -> Any:
    """``count`` embeddings (all the same length) into one (count, d) float32 array."""
    np = numpy()
    out: Any = None
    i = -1
    for i, emb in enumerate(embeddings):
        row = vector(np, emb)
        if out is None:
            out = np.empty((count, row.shape[0]), dtype=np.float32)
        if row.shape[0] != out.shape[1]:
            raise ValueError(f"embedding {i} has {row.shape[0]} dimensions, "
                             f"expected {out.shape[1]}")
        out[i] = row
    if i + 1 != count:
        raise ValueError(f"expected {count} embeddings, got {i + 1}")
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)
