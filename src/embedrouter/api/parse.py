"""Turn a decoded JSON body into an ``EmbeddingRequest``, or a 400 naming the field path.

The input union (string | string[] | token ids | batch of token ids | multimodal objects) does
not fit a tagged msgspec union, so the body is decoded generically and checked here by hand;
that also lets every message say exactly which element is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from embedrouter.errors import EmptyInput, InvalidRequest, PayloadTooLarge
from embedrouter.types import (
    EmbeddingRequest,
    Input,
    MediaPart,
    MultimodalInput,
    TextInput,
    TokenInput,
)

MAX_TOKEN_ID = 2**31 - 1
MAX_MODEL_CHARS = 256
_MEDIA_KINDS = ("image_url", "input_audio", "input_video", "input_file")
_SORTS = ("price", "throughput", "latency", "exacto")
_QUANTIZATIONS = frozenset(
    ["int4", "int8", "fp4", "mxfp4", "nvfp4", "fp6", "fp8", "mxfp8", "fp16", "bf16", "fp32",
     "unknown"]
)
_PERCENTILES = frozenset({"p50", "p75", "p90", "p99"})
_MAX_PRICE_KEYS = frozenset({"prompt", "completion", "image", "audio", "request"})


def _type_name(value: Any) -> str:
    if value == "":
        return "an empty string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _bad(path: str, expected: str, value: Any) -> InvalidRequest:
    return InvalidRequest(f"{path}: expected {expected}, got {_type_name(value)}",
                          metadata={"field": path})


def _token_id(value: Any, path: str) -> int:
    # The openrouter Python SDK types token arrays as List[float] and sends 1.0 for 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(path, "an integer token id", value)
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidRequest(f"{path}: token ids must be integers, got {value!r}",
                                 metadata={"field": path})
        value = int(value)
    if not 0 <= value <= MAX_TOKEN_ID:
        raise InvalidRequest(f"{path}: token id {value} is out of range",
                             metadata={"field": path})
    return value


def _bulk_ids(items: list[Any] | np.ndarray) -> np.ndarray | None:
    """The ids as int64 if every one is valid, checked in C; None sends the caller to the slow
    path, which finds and names the first bad element (only ever on a request that fails)."""
    try:
        if isinstance(items, np.ndarray):
            arr = items
        else:
            kinds = set(map(type, items))
            if kinds == {int}:
                arr = np.array(items, dtype=np.int64)
            elif kinds <= {int, float}:
                arr = np.array(items, dtype=np.float64)
            else:
                return None
        if arr.dtype.kind == "f":
            if not np.isfinite(arr).all() or (arr != np.floor(arr)).any():
                return None
            if arr.min() < 0 or arr.max() > MAX_TOKEN_ID:
                return None
            arr = arr.astype(np.int64)
    except OverflowError:  # an int past int64
        return None
    if arr.dtype.kind != "i" or arr.min() < 0 or arr.max() > MAX_TOKEN_ID:
        return None
    return arr


def _token_array(items: list[Any] | np.ndarray, path: str, limits: Limits) -> TokenInput:
    if len(items) == 0:
        raise EmptyInput(f"Input must not be empty ({path} is an empty token array)")
    limits.check_length(len(items), path, "token ids")
    arr = _bulk_ids(items)
    if arr is None:
        values = items.tolist() if isinstance(items, np.ndarray) else items
        return TokenInput(tuple(_token_id(v, f"{path}[{i}]") for i, v in enumerate(values)))
    return TokenInput(tuple(arr.tolist()))


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-request bounds, checked before any per-element work."""

    max_inputs: int | None = None
    max_input_chars: int | None = None

    def check_count(self, count: int) -> None:
        if self.max_inputs is not None and count > self.max_inputs:
            raise PayloadTooLarge(
                f"{count} inputs in one request; the limit is {self.max_inputs}",
                metadata={"inputs": count, "limit": self.max_inputs},
            )

    def check_length(self, length: int, path: str, unit: str) -> None:
        cap = self.max_input_chars
        if cap is not None and length > cap:
            raise InvalidRequest(
                f"{path} has {length} {unit}; the limit per input is {cap} "
                "(server.max_input_chars)",
                metadata={"field": path, "error_type": "input_too_long", "length": length,
                          "limit": cap},
            )


NO_LIMITS = Limits()


def _part(raw: Any, path: str) -> TextInput | MediaPart:
    if not isinstance(raw, dict):
        raise _bad(path, "a content part object", raw)
    kind = raw.get("type")
    if kind == "text":
        text = raw.get("text")
        if not isinstance(text, str) or not text:
            raise _bad(f"{path}.text", "a non-empty string", text)
        return TextInput(text)
    if kind == "image_url":
        inner = raw.get("image_url")
        url = inner.get("url") if isinstance(inner, dict) else None
        if not isinstance(url, str) or not url:
            raise _bad(f"{path}.image_url.url", "a non-empty string", url)
        return MediaPart("image_url", url)
    if kind in ("input_audio", "input_video", "input_file"):
        inner = raw.get(kind)
        if not isinstance(inner, dict):
            raise _bad(f"{path}.{kind}", "an object with `data`", inner)
        data, fmt = inner.get("data"), inner.get("format")
        if not isinstance(data, str) or not data.startswith("data:"):
            raise InvalidRequest(f"{path}.{kind}.data: expected a data: URL",
                                 metadata={"field": f"{path}.{kind}.data"})
        if fmt is not None and not isinstance(fmt, str):
            raise _bad(f"{path}.{kind}.format", "a string", fmt)
        return MediaPart(kind, data, fmt)
    raise InvalidRequest(
        f"{path}.type: expected one of text, {', '.join(_MEDIA_KINDS)}; got {kind!r}",
        metadata={"field": f"{path}.type"},
    )


def _multimodal(raw: Any, path: str, limits: Limits) -> MultimodalInput:
    if not isinstance(raw, dict):
        raise _bad(path, "an object with `content`", raw)
    content = raw.get("content")
    if not isinstance(content, list):
        raise _bad(f"{path}.content", "an array of content parts", content)
    if not content:
        raise EmptyInput(f"Input must not be empty ({path}.content is empty)")
    limits.check_count(len(content))
    parts = tuple(_part(p, f"{path}.content[{i}]") for i, p in enumerate(content))
    # The text parts are joined into one input, so the cap applies to them together.
    limits.check_length(sum(len(p.text) for p in parts if isinstance(p, TextInput)), path,
                        "characters of text")
    return MultimodalInput(parts)


def parse_input(raw: Any, limits: Limits = NO_LIMITS) -> tuple[Input, ...]:
    """Validate ``input`` in any of the contract's shapes; each element gives one embedding.

    Counts and lengths are checked before any per-element work, so an oversized request costs
    a few comparisons, whatever its size.
    """
    if isinstance(raw, str):
        if not raw:
            raise EmptyInput()
        limits.check_length(len(raw), "input", "characters")
        return (TextInput(raw),)
    if isinstance(raw, np.ndarray):  # a token array decoded straight to numpy (api/body.py)
        return (_token_array(raw, "input", limits),)
    if not isinstance(raw, list):
        raise _bad("input", "a string, an array of strings, token ids or content objects", raw)
    if not raw:
        raise EmptyInput()
    first = raw[0]
    if isinstance(first, int | float) and not isinstance(first, bool):
        return (_token_array(raw, "input", limits),)
    limits.check_count(len(raw))
    if isinstance(first, str):
        cap = limits.max_input_chars
        for i, item in enumerate(raw):
            # One cheap test per item on the common path; the error is worked out only on failure.
            if item.__class__ is not str or not item or (cap is not None and len(item) > cap):
                if not isinstance(item, str):
                    raise _bad(f"input[{i}]", "a string like input[0]", item)
                if not item:
                    raise EmptyInput(f"Input must not be empty (input[{i}] is an empty string)")
                limits.check_length(len(item), f"input[{i}]", "characters")
        return tuple(map(TextInput, raw))
    if isinstance(first, list | np.ndarray):
        for i, item in enumerate(raw):
            if not isinstance(item, list | np.ndarray):
                raise _bad(f"input[{i}]", "an array of token ids like input[0]", item)
            limits.check_length(len(item), f"input[{i}]", "token ids")
        return tuple(_token_array(item, f"input[{i}]", limits) for i, item in enumerate(raw))
    if isinstance(first, dict):
        return tuple(_multimodal(item, f"input[{i}]", limits) for i, item in enumerate(raw))
    raise _bad("input[0]", "a string, a token id, an array of token ids or a content object",
               first)


def _optional_str(body: dict[str, Any], key: str, *, max_len: int | None = None) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(key, "a string", value)
    if max_len is not None and len(value) > max_len:
        raise InvalidRequest(f"{key}: at most {max_len} characters", metadata={"field": key})
    return value


def _check_str_list(value: Any, path: str) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(path, "an array of strings", value)


def _check_number_or_percentiles(value: Any, path: str) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return
    if not isinstance(value, dict):
        raise _bad(path, "a number or an object of percentiles", value)
    for k, v in value.items():
        if k not in _PERCENTILES:
            raise InvalidRequest(f"{path}.{k}: unknown field", metadata={"field": f"{path}.{k}"})
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise _bad(f"{path}.{k}", "a number or null", v)


def _check_bool(value: Any, path: str) -> None:
    if not isinstance(value, bool):
        raise _bad(path, "a boolean", value)


def _check_sort(value: Any, path: str) -> None:
    if isinstance(value, str):
        if value not in _SORTS:
            raise InvalidRequest(f"{path}: expected one of {', '.join(_SORTS)}; got {value!r}",
                                 metadata={"field": path})
        return
    if not isinstance(value, dict):
        raise _bad(path, "a string or an object", value)
    for k, v in value.items():
        if k == "by":
            if v is not None:
                _check_sort(v, f"{path}.by")
        elif k == "partition":
            if v not in (None, "model", "none"):
                raise InvalidRequest(f"{path}.partition: expected model or none",
                                     metadata={"field": f"{path}.partition"})
        else:
            raise InvalidRequest(f"{path}.{k}: unknown field", metadata={"field": f"{path}.{k}"})


def _check_max_price(value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise _bad(path, "an object", value)
    for k, v in value.items():
        if k not in _MAX_PRICE_KEYS:
            raise InvalidRequest(f"{path}.{k}: unknown field", metadata={"field": f"{path}.{k}"})
        # The schema says strings; the docs' own example sends numbers. Accept both.
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float | str)):
            raise _bad(f"{path}.{k}", "a number or a decimal string", v)


def _check_data_collection(value: Any, path: str) -> None:
    if value not in ("allow", "deny"):
        raise InvalidRequest(f"{path}: expected allow or deny", metadata={"field": path})


def _check_quantizations(value: Any, path: str) -> None:
    _check_str_list(value, path)
    bad = [q for q in value if q not in _QUANTIZATIONS]
    if bad:
        raise InvalidRequest(f"{path}: unknown quantization {bad[0]!r}", metadata={"field": path})


def _check_options(value: Any, path: str) -> None:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise _bad(path, "an object of per-provider objects", value)


_PROVIDER_FIELDS = {
    "order": _check_str_list,
    "only": _check_str_list,
    "ignore": _check_str_list,
    "allow_fallbacks": _check_bool,
    "require_parameters": _check_bool,
    "zdr": _check_bool,
    "enforce_distillable_text": _check_bool,
    "data_collection": _check_data_collection,
    "quantizations": _check_quantizations,
    "sort": _check_sort,
    "preferred_min_throughput": _check_number_or_percentiles,
    "preferred_max_latency": _check_number_or_percentiles,
    # Names used by openrouter SDK 0.0.22; still accepted as aliases.
    "min_throughput": _check_number_or_percentiles,
    "max_latency": _check_number_or_percentiles,
    "max_price": _check_max_price,
    "options": _check_options,
}


def parse_provider(value: Any) -> dict[str, Any] | None:
    """Validate ``provider`` against ProviderPreferences (additionalProperties: false)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad("provider", "an object or null", value)
    for key, item in value.items():
        check = _PROVIDER_FIELDS.get(key)
        if check is None:
            raise InvalidRequest(f"provider.{key}: unknown field",
                                 metadata={"field": f"provider.{key}"})
        if item is not None:
            check(item, f"provider.{key}")
    return value


def parse_embedding_request(body: Any, limits: Limits = NO_LIMITS) -> EmbeddingRequest:
    """Validate a decoded JSON body; unknown top-level keys are ignored, as the OAS allows."""
    if not isinstance(body, dict):
        raise _bad("body", "a JSON object", body)
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        if "model" not in body or model is None:
            raise InvalidRequest("model: required", metadata={"field": "model"})
        raise _bad("model", "a non-empty string", model)
    if len(model) > MAX_MODEL_CHARS:
        raise InvalidRequest(f"model: at most {MAX_MODEL_CHARS} characters, got {len(model)}",
                             metadata={"field": "model"})
    if "input" not in body or body["input"] is None:
        raise InvalidRequest("input: required", metadata={"field": "input"})
    inputs = parse_input(body["input"], limits)

    encoding = body.get("encoding_format")
    if encoding is None:
        encoding = "float"
    elif encoding not in ("float", "base64"):
        raise InvalidRequest(
            f"encoding_format: expected float or base64, got {encoding!r}"
            if isinstance(encoding, str) else f"encoding_format: expected a string, got "
            f"{_type_name(encoding)}",
            metadata={"field": "encoding_format"},
        )

    dimensions = body.get("dimensions")
    if dimensions is not None:
        if isinstance(dimensions, float) and dimensions.is_integer():
            dimensions = int(dimensions)
        if isinstance(dimensions, bool) or not isinstance(dimensions, int):
            raise _bad("dimensions", "an integer", dimensions)
        if dimensions < 1:
            raise InvalidRequest("dimensions: must be at least 1",
                                 metadata={"field": "dimensions"})

    trace = body.get("trace")
    if trace is not None and not isinstance(trace, dict):
        raise _bad("trace", "an object", trace)

    return EmbeddingRequest(
        model=model.strip(),
        inputs=inputs,
        encoding_format=encoding,
        dimensions=dimensions,
        input_type=_optional_str(body, "input_type"),
        user=_optional_str(body, "user"),
        provider=parse_provider(body.get("provider")),
        session_id=_optional_str(body, "session_id", max_len=256),
        trace=trace,
    )
