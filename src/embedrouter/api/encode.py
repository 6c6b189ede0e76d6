"""Response bodies, encoded straight from numpy: no per-float Python objects on the hot path."""

from __future__ import annotations

import secrets
import string
import time
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pybase64

from embedrouter.types import EmbeddingResult, EncodingFormat

_ALNUM = string.ascii_letters + string.digits
# Byte value -> an alphanumeric: 256 = 4 x 62 + 8, so 8 of the 62 come up 5/256 of the time and
# the rest 4/256, ~5.95 bits per character and ~119 bits per id; ids are unique names, not
# secrets (a generation is shown only to its own key).
_BYTE_TO_ALNUM = bytes((_ALNUM * 5)[:256], "ascii")
_DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY


def generation_id() -> str:
    """``gen-emb-<unix seconds>-<20 alphanumerics>``, the form OpenRouter sends."""
    # One 20-byte draw mapped through a table: twenty secrets.choice calls, or a base-62
    # conversion in Python, cost a few percent of a proxied request's CPU.
    suffix = secrets.token_bytes(20).translate(_BYTE_TO_ALNUM).decode("ascii")
    return f"gen-emb-{int(time.time())}-{suffix}"


def decimal_number(value: Decimal) -> orjson.Fragment:
    """An exact decimal as a JSON number (never through float, never in exponent form)."""
    text = format(value.normalize(), "f") if value else "0"
    return orjson.Fragment(text)


def base64_rows(vectors: np.ndarray) -> list[str]:
    """Each row as little-endian float32 bytes in standard, padded base64 (the OpenAI form)."""
    le = np.ascontiguousarray(vectors, dtype="<f4")
    width = le.shape[1] * 4
    raw = le.tobytes()
    if width % 3 == 0:
        # Rows whose bytes divide by 3 encode without padding, so the encoding of all rows at
        # once, cut every 4/3 row width, is each row's own encoding: one call, not one per row.
        text = pybase64.b64encode(raw).decode("ascii")
        step = width // 3 * 4
        return [text[i:i + step] for i in range(0, len(text), step)]
    return [pybase64.b64encode(raw[i * width:(i + 1) * width]).decode("ascii")
            for i in range(le.shape[0])]


def embeddings_body(result: EmbeddingResult, encoding: EncodingFormat, gen_id: str) -> bytes:
    vectors = np.ascontiguousarray(result.vectors, dtype=np.float32)
    rows: Any = base64_rows(vectors) if encoding == "base64" else vectors
    data = [{"object": "embedding", "embedding": rows[i], "index": i}
            for i in range(vectors.shape[0])]
    usage = result.usage
    shown: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "total_tokens": usage.total_tokens,
        "cost": decimal_number(usage.cost),
        "is_byok": False,
    }
    if usage.cached_tokens is not None:
        # OpenAI's name for it in chat usage; only sent when the cache took part.
        shown["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": result.model,
            "id": gen_id,
            "provider": result.provider,
            "usage": shown,
        },
        option=_DUMPS_OPTS,
    )
