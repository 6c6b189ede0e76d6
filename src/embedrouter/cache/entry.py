"""One cached vector, and the bytes it is stored as outside this process."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

_HEADER = struct.Struct("<BIB")  # format version, token count, flags
_FORMAT = 1
_EXACT = 1


class CorruptEntry(ValueError):
    """Stored bytes that are not an entry this version wrote."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A float32 row (owned, never a view into a larger array) and the input's token count.

    ``exact``: the count is the provider's own for this input, not a share of a batch's total.
    """

    vector: np.ndarray
    tokens: int
    exact: bool = True

    @property
    def nbytes(self) -> int:
        return int(self.vector.nbytes)


def encode(entry: Entry) -> bytes:
    # A count past 32 bits is no real input's; clamped rather than refused.
    head = _HEADER.pack(_FORMAT, min(entry.tokens, 0xFFFFFFFF), _EXACT if entry.exact else 0)
    return head + np.ascontiguousarray(entry.vector, dtype="<f4").tobytes()


def decode(raw: bytes) -> Entry:
    """The entry in ``raw``; CorruptEntry if it is not one (the caller counts it as a miss)."""
    if len(raw) < _HEADER.size or (len(raw) - _HEADER.size) % 4:
        raise CorruptEntry(f"{len(raw)} bytes is not a vector entry")
    version, tokens, flags = _HEADER.unpack_from(raw)
    if version != _FORMAT:
        raise CorruptEntry(f"entry format {version}, expected {_FORMAT}")
    vector = np.frombuffer(raw, dtype="<f4", offset=_HEADER.size).astype(np.float32)
    return Entry(vector=vector, tokens=tokens, exact=bool(flags & _EXACT))
