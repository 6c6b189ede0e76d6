"""Splitting a batch to an endpoint's caps, and putting the answers back together by index.

Upstreams answer parts out of order and sometimes short; a peer's cache merge once returned
indices like [0, 1, 1] with HTTP 200. So parts carry the request positions they cover, each
reply is checked to be exactly a permutation of its part, and rows are placed by ``index``,
never by position. A reply that is not exactly right is an invalid reply, never a short 200.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class InvalidReply(ValueError):
    """An upstream reply whose indices or rows do not match what was sent."""


def split(token_counts: Sequence[int], *, max_inputs: int | None,
          max_tokens: int | None) -> list[list[int]]:
    """Consecutive parts of request positions, each within both caps.

    An input that alone exceeds ``max_tokens`` gets a part of its own: the upstream decides
    (it may truncate, or refuse with a clear error that names it).
    """
    if max_inputs is not None and max_inputs < 1:
        raise ValueError("max_inputs must be at least 1")
    n = len(token_counts)
    if (max_inputs is None or n <= max_inputs) and \
            (max_tokens is None or sum(token_counts) <= max_tokens):
        return [list(range(n))] if n else []  # within both caps: one part, no loop
    parts: list[list[int]] = []
    current: list[int] = []
    tokens = 0
    for i, n in enumerate(token_counts):
        full = max_inputs is not None and len(current) >= max_inputs
        over = max_tokens is not None and current and tokens + n > max_tokens
        if full or over:
            parts.append(current)
            current, tokens = [], 0
        current.append(i)
        tokens += n
    if current:
        parts.append(current)
    return parts


def halve(part: Sequence[int]) -> list[list[int]]:
    """An upstream refused ``part`` as too large: two halves to send instead (a single input
    cannot be split; the caller then gives up on it)."""
    if len(part) < 2:
        raise ValueError("a single input cannot be split further")
    mid = len(part) // 2
    return [list(part[:mid]), list(part[mid:])]


def place(out: np.ndarray, part: Sequence[int], indices: Sequence[int], rows: np.ndarray) -> None:
    """Write one part's reply into ``out`` by its ``index`` values, after checking them.

    ``indices[k]`` is the reply's index of ``rows[k]``, relative to the part as sent.
    """
    n = len(part)
    if rows.ndim != 2 or rows.shape[0] != len(indices):
        raise InvalidReply(f"{len(indices)} indices for {rows.shape[0] if rows.ndim else 0} rows")
    if len(indices) != n:
        raise InvalidReply(f"{len(indices)} embeddings for {n} inputs")
    if sorted(indices) != list(range(n)):
        raise InvalidReply(f"indices {sorted(indices)[:8]}... are not 0..{n - 1} exactly once")
    if rows.shape[1] != out.shape[1]:
        raise InvalidReply(f"{rows.shape[1]} dimensions, expected {out.shape[1]}")
    if not np.isfinite(rows).all():
        raise InvalidReply("non-finite values in the embeddings")
    targets = np.asarray(part, dtype=np.int64)[np.asarray(indices, dtype=np.int64)]
    out[targets] = rows


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` shared in proportion to ``weights`` by largest remainder: the shares are whole,
    never negative, and sum to ``total`` exactly (an upstream reports one count per call; the
    cache keeps one per input)."""
    n = len(weights)
    if n == 0:
        return []
    weight = sum(weights)
    if weight <= 0:
        weights, weight = [1] * n, n
    shares = [total * w // weight for w in weights]
    left = total - sum(shares)
    if left:
        # Largest remainder first; sorted is stable, so ties go to the earlier input.
        remainders = [-(total * w % weight) for w in weights]
        for i in sorted(range(n), key=remainders.__getitem__)[:left]:
            shares[i] += 1
    return shares
