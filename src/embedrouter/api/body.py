"""Request body bytes to an ``EmbeddingRequest`` without holding the event loop.

orjson is the fastest way to decode a small body, but it builds a Python object per value while
holding the GIL: a 14 MB body of 3 million token ids took 0.15-0.44 s, during which every other
connection (``/health`` included) waited, even from a worker thread. Large bodies therefore go to
a worker thread and to simdjson, whose parse is a single pass in C (about 40 ms for 17 MB) and whose
arrays are measured before anything is built: counts and lengths are refused before their
elements exist, and token arrays are copied straight into numpy without per-id Python objects.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson
import simdjson

from embedrouter.api.parse import Limits, parse_embedding_request
from embedrouter.errors import InvalidRequest, Overloaded
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
    return value.as_list()


def decode_large(raw: bytes, limits: Limits) -> EmbeddingRequest:
    """Blocking: parse and validate a large body (run it in a worker thread)."""
    try:
        doc = simdjson.Parser().parse(raw)
    except _PARSE_ERRORS as exc:
        raise _malformed(exc) from None
    try:
        if not isinstance(doc, simdjson.Object):
            body: Any = doc.as_list() if isinstance(doc, simdjson.Array) else doc
        else:
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
    except _PARSE_ERRORS as exc:  # e.g. an integer past 64 bits met while building
        raise _malformed(exc) from None
    return parse_embedding_request(body, limits)


async def decode_embedding_request(raw: bytes, limits: Limits,
                                   large_gate: asyncio.Semaphore) -> EmbeddingRequest:
    """Small bodies inline with orjson; large ones in a worker thread with simdjson.

    ``large_gate`` bounds how many large bodies are parsed at once: each parse needs several
    times its body in parser buffers, and ten 15 MB bodies at once ran a 2 GiB process out of
    address space. The rest wait their turn.
    """
    if len(raw) > INLINE_BODY_BYTES:
        async with large_gate:
            try:
                return await asyncio.to_thread(decode_large, raw, limits)
            except MemoryError:
                raise Overloaded("Not enough memory to parse this request body now; retry "
                                 "shortly or send a smaller one", retry_after=1) from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _malformed(exc) from None
    return parse_embedding_request(body, limits)
