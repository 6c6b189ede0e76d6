"""Cache keys: what fixes a vector, under a strong hash.

A key is BLAKE2b-256 over a version tag, the request's *space* (the model's fingerprint: for a
local model its graph, weights, tokenizer and truncation policy; for a remote one its upstream
model id; the context length; the output width; the input_type and the prefix it implies) and the
exact input, tagged as text or token ids. Every variable-length field is length-prefixed, so no
two different tuples hash the same bytes.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import numpy as np

from embedrouter.types import TextInput, TokenInput

KEY_VERSION = b"embedrouter-vector-v1"
DIGEST_SIZE = 32


def _field(value: str | bytes) -> bytes:
    raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    return struct.pack("<Q", len(raw)) + raw


def space_key(fingerprint: str, *, context_length: int, width: int, input_type: str | None,
              prefix: str) -> bytes:
    """The part of every key shared by one request's inputs."""
    h = hashlib.blake2b(KEY_VERSION, digest_size=DIGEST_SIZE)
    for part in (fingerprint, str(context_length), str(width),
                 "\x00" if input_type is None else "t" + input_type, prefix):
        h.update(_field(part))
    return h.digest()


def _ids_bytes(ids: Sequence[int]) -> bytes:
    try:
        return np.asarray(ids, dtype="<i8").tobytes()
    except OverflowError:  # an id past 64 bits: still exact, just slower
        return ",".join(map(str, ids)).encode("ascii")


def input_keys(space: bytes, inputs: Sequence[TextInput | TokenInput]) -> list[bytes]:
    """One key per input, in input order; equal inputs get equal keys."""
    base = hashlib.blake2b(space, digest_size=DIGEST_SIZE)
    keys = []
    for item in inputs:
        h = base.copy()
        if isinstance(item, TextInput):
            # surrogatepass: a lone surrogate still maps to its own bytes, never to "?".
            h.update(b"t" + item.text.encode("utf-8", "surrogatepass"))
        else:
            h.update(b"i" + _ids_bytes(item.ids))
        keys.append(h.digest())
    return keys
