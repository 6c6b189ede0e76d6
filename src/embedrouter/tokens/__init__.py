"""OpenAI's tiktoken encodings (cl100k_base, o200k_base), read offline for decoding token ids.

Clients such as LangChain's ``OpenAIEmbeddings`` tokenize with tiktoken and send the ids; a model
with another tokenizer can only use them after turning them back into text. Decoding needs just
the rank table (id -> bytes), no BPE merges, so tiktoken itself is not a dependency. The rank files
ship in ``data/`` (MIT licensed, as published by OpenAI; sha256 of each decompressed file checked
at load against the hashes tiktoken pins), so nothing is downloaded at run time.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np

__all__ = ["ENCODINGS", "Encoding", "InvalidTokenId", "encoding"]

# name -> (sha256 of the .tiktoken file, special tokens), as pinned in tiktoken_ext/openai_public.
_FILES: dict[str, tuple[str, dict[int, bytes]]] = {
    "cl100k": (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        {100257: b"<|endoftext|>", 100258: b"<|fim_prefix|>", 100259: b"<|fim_middle|>",
         100260: b"<|fim_suffix|>", 100276: b"<|endofprompt|>"},
    ),
    "o200k": (
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        {199999: b"<|endoftext|>", 200018: b"<|endofprompt|>"},
    ),
}
ENCODINGS = tuple(_FILES)


class InvalidTokenId(ValueError):
    """An id that the encoding does not assign (negative, past the end, or in a gap)."""

    def __init__(self, token_id: int, encoding: str) -> None:
        super().__init__(f"token id {token_id} does not exist in {encoding}")
        self.token_id = token_id
        self.encoding = encoding


@dataclass(frozen=True, slots=True)
class Encoding:
    """One tiktoken encoding's id -> bytes table, laid out for vectorized decoding."""

    name: str
    blob: np.ndarray  # uint8: every token's bytes, in id order
    starts: np.ndarray  # int64 per id: where its bytes start in blob
    lengths: np.ndarray  # int64 per id: how many bytes (0 for unassigned ids)
    valid: np.ndarray  # bool per id: assigned or not

    @property
    def size(self) -> int:
        return len(self.valid)

    def first_invalid(self, ids: np.ndarray) -> int | None:
        """The first id of ``ids`` (int64) this encoding does not assign, checked in bulk."""
        outside = (ids < 0) | (ids >= self.size)
        if outside.any():
            return int(ids[int(np.argmax(outside))])
        unassigned = ~self.valid[ids]
        if unassigned.any():
            return int(ids[int(np.argmax(unassigned))])
        return None

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Text of ``ids``, exactly as ``tiktoken.Encoding.decode`` gives it (errors='replace').

        A gather in numpy rather than a loop over ids: 100k ids decode in about a millisecond.
        """
        arr = np.asarray(ids, dtype=np.int64)
        bad = self.first_invalid(arr)
        if bad is not None:
            raise InvalidTokenId(bad, f"{self.name}_base")
        lengths = self.lengths[arr]
        ends = np.cumsum(lengths)
        # For output byte k of token j: blob index = starts[j] + (k - first output byte of j).
        offsets = np.repeat(self.starts[arr] - (ends - lengths), lengths)
        picked = self.blob[offsets + np.arange(int(ends[-1]) if len(ends) else 0)]
        return picked.tobytes().decode("utf-8", errors="replace")


def _load(name: str) -> Encoding:
    sha, special = _FILES[name]
    raw = gzip.decompress(
        resources.files(__package__).joinpath(f"data/{name}_base.tiktoken.gz").read_bytes())
    if hashlib.sha256(raw).hexdigest() != sha:
        raise RuntimeError(f"{name}_base.tiktoken is corrupt (sha256 mismatch); reinstall")
    ranks: dict[int, bytes] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[int(rank)] = base64.b64decode(token)
    ranks.update(special)
    size = max(ranks) + 1
    pieces = [ranks.get(i, b"") for i in range(size)]
    lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=size)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    blob = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    valid = np.zeros(size, dtype=bool)
    valid[list(ranks)] = True
    return Encoding(name, blob, starts, lengths, valid)


_loaded: dict[str, Encoding] = {}
_lock = threading.Lock()


def encoding(name: str) -> Encoding:
    """The named encoding, loaded once per process on first use (about 0.1-0.3 s)."""
    found = _loaded.get(name)
    if found is not None:
        return found
    if name not in _FILES:
        raise KeyError(f"unknown encoding {name!r}; expected one of {', '.join(ENCODINGS)}")
    with _lock:
        if name not in _loaded:
            _loaded[name] = _load(name)
        return _loaded[name]
