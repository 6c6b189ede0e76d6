"""Request body bytes to an ``EmbeddingRequest`` without holding the event loop.

orjson is the fastest way to decode a small body, but it builds a Python object per value while
holding the GIL: a 14 MB body of 3 million token ids took 0.15-0.44 s, during which every other
connection (``/health`` included) waited, even from a worker thread. Large bodies therefore go to
a parser process and to simdjson, whose parse is a single pass in C and whose arrays are measured
before anything is built: counts and lengths are refused before their elements exist, and token
arrays are copied straight into numpy without per-id Python objects.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import orjson
import simdjson

from embedrouter.api.parse import Limits, parse_embedding_request
from embedrouter.errors import InvalidRequest, Overloaded, PayloadTooLarge
from embedrouter.types import EmbeddingRequest

# Below this, orjson on the loop costs well under a millisecond and a thread hop would cost more.
INLINE_BODY_BYTES = 256 * 1024
_PARSE_ERRORS = (ValueError, RuntimeError, UnicodeDecodeError)


def _malformed(exc: Exception) -> InvalidRequest:
    return InvalidRequest(f"Malformed JSON body: {exc}")


def _numbers(arr: simdjson.Array) -> np.ndarray | list[Any]:
    """A JSON array of numbers as an int64 or float64 array; anything else as a plain list."""
    for kind, dtype in (("i", np.int64), ("d", np.float64)):
        try:
            return np.frombuffer(arr.as_buffer(of_type=kind), dtype=dtype)
        except (TypeError, ValueError, RuntimeError):
            continue
    return arr.as_list()


def _input(value: Any, limits: Limits) -> Any:
    if isinstance(value, str):
        # Refused here, a 15 MB string costs the parse, not a copy back to the server process.
        limits.check_length(len(value), "input", "characters")
        return value
    if not isinstance(value, simdjson.Array):
        return value.as_dict() if isinstance(value, simdjson.Object) else value
    n = len(value)
    if n == 0:
        return []
    first = value[0]
    if isinstance(first, int | float) and not isinstance(first, bool):
        limits.check_length(n, "input", "token ids")
        return _numbers(value)
    limits.check_count(n)
    if isinstance(first, simdjson.Array):
        out: list[Any] = []
        for i in range(n):
            item = value[i]
            if not isinstance(item, simdjson.Array):
                out.append(item.as_dict() if isinstance(item, simdjson.Object) else item)
                continue
            limits.check_length(len(item), f"input[{i}]", "token ids")
            out.append(_numbers(item))
        return out
    items = value.as_list()
    # Only where the parser would reach the same verdict first: every item a non-empty string
    # (otherwise its type or emptiness error, at a lower index, must win).
    if all(isinstance(item, str) and item for item in items):
        for i, item in enumerate(items):
            limits.check_length(len(item), f"input[{i}]", "characters")
    return items


def _prepare(raw: bytes, limits: Limits) -> Any:
    """The decoded body, token arrays as numpy; counts and lengths refused before building."""
    try:
        doc = simdjson.Parser().parse(raw)
    except _PARSE_ERRORS as exc:
        raise _malformed(exc) from None
    try:
        if not isinstance(doc, simdjson.Object):
            return doc.as_list() if isinstance(doc, simdjson.Array) else doc
        body = {}
        for key in doc.keys():  # noqa: SIM118 (an Object is not a dict)
            value = doc[key]
            if key == "input":
                body[key] = _input(value, limits)
            elif isinstance(value, simdjson.Object):
                body[key] = value.as_dict()
            elif isinstance(value, simdjson.Array):
                body[key] = value.as_list()
            else:
                body[key] = value
        return body
    except _PARSE_ERRORS as exc:  # e.g. an integer past 64 bits met while building
        raise _malformed(exc) from None


def prepare_in_worker(raw: bytes, limits: Limits) -> tuple[str, Any]:
    """Runs in the parser process: ("ok", body) or ("error", (kind, message, metadata)).

    Errors travel as plain data: the error classes take keyword arguments that pickling drops.
    """
    try:
        return "ok", _prepare(raw, limits)
    except (InvalidRequest, PayloadTooLarge) as exc:
        kind = "too_large" if isinstance(exc, PayloadTooLarge) else "invalid"
        return "error", (kind, exc.message, exc.metadata)
    except MemoryError:
        return "error", ("memory", "", None)


def decode_large(raw: bytes, limits: Limits) -> EmbeddingRequest:
    """Blocking, in this process: what the parser process and the caller do together."""
    return parse_embedding_request(_unwrap(prepare_in_worker(raw, limits)), limits)


def _unwrap(outcome: tuple[str, Any]) -> Any:
    status, value = outcome
    if status == "ok":
        return value
    kind, message, metadata = value
    if kind == "too_large":
        raise PayloadTooLarge(message, metadata=metadata)
    if kind == "invalid":
        raise InvalidRequest(message, metadata=metadata)
    raise _NO_MEMORY


_NO_MEMORY = Overloaded("Not enough memory to parse this request body now; retry shortly or "
                        "send a smaller one", retry_after=1)


class BodyDecoder:
    """Decodes request bodies; owns the process that parses the large ones.

    Threads are not enough for large bodies: a C parser holds the GIL for its whole run (simdjson
    about 40-60 ms on 15 MB, orjson 150-440 ms), and the event loop waits that long. One worker
    process, started on the first large body, parses them; what comes back is compact (token
    arrays as numpy, strings), and the caller's remaining checks are bounded per array.
    ``max_pending`` large bodies at most are in flight, since each holds up to ``max_body_bytes``.
    """

    def __init__(self, *, max_pending: int = 2) -> None:
        self._gate = asyncio.Semaphore(max_pending)
        self._pool: ProcessPoolExecutor | None = None

    async def decode(self, raw: bytes, limits: Limits) -> EmbeddingRequest:
        if len(raw) <= INLINE_BODY_BYTES:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise _malformed(exc) from None
            return parse_embedding_request(body, limits)
        async with self._gate:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=1,
                                                 mp_context=multiprocessing.get_context("spawn"))
            loop = asyncio.get_running_loop()
            try:
                outcome = await loop.run_in_executor(self._pool, prepare_in_worker, raw, limits)
            except BrokenProcessPool:
                # The parser died (killed for memory, most likely): start a fresh one next time.
                self._pool = None
                raise _NO_MEMORY from None
        # Still O(ids) of per-array work: in a thread, so the loop gets the GIL between arrays.
        return await asyncio.to_thread(parse_embedding_request, _unwrap(outcome), limits)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
