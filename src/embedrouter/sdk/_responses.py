"""Typed, validated response objects for ``POST /embeddings``.

Validation follows the official SDK's models: required fields must be present with the right
type, unknown keys are ignored. ``embedding`` stays exactly as sent (a float list, or the base64
string); ``to_numpy()`` decodes either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from embedrouter.sdk import _decode


class ShapeError(ValueError):
    """A body does not have the documented shape; the message names the JSON path."""


def need(obj: Any, key: str, kinds: type | tuple[type, ...], path: str, *,
         optional: bool = False, nullable: bool = False) -> Any:
    """``obj[key]`` checked against ``kinds`` (bool is never an int here)."""
    if not isinstance(obj, dict):
        raise ShapeError(f"{path}: expected an object")
    if key not in obj:
        if optional:
            return None
        raise ShapeError(f"{path}.{key}: missing")
    value = obj[key]
    if value is None and (nullable or optional):
        return None
    allowed = kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise ShapeError(f"{path}.{key}: unexpected type {type(value).__name__}")
    return value


def _dump(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _dump(getattr(value, f.name)) for f in fields(value)
                if f.repr and getattr(value, f.name) is not None}
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


class Dumpable:
    """``model_dump()`` as on the official SDK's pydantic models (unset optionals left out)."""

    __slots__ = ()

    def model_dump(self) -> dict[str, Any]:
        return _dump(self)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class EmbeddingData(Dumpable):
    embedding: list[float] | str
    index: int | None = None
    object: str = "embedding"


@dataclass(frozen=True, slots=True)
class CostDetails(Dumpable):
    upstream_inference_prompt_cost: float
    upstream_inference_completions_cost: float
    upstream_inference_cost: float | None = None
    server_tool_cost: float | None = None


@dataclass(frozen=True, slots=True)
class PromptTokensDetails(Dumpable):
    text_tokens: int | None = None
    image_tokens: int | None = None
    audio_tokens: int | None = None
    video_tokens: int | None = None
    file_tokens: int | None = None
    # Not in OpenRouter's embeddings schema: embedrouter's vector cache sends it (the prompt
    # tokens served from the cache); absent when the request did not use the cache.
    cached_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class EmbeddingsUsage(Dumpable):
    prompt_tokens: int
    total_tokens: int
    cost: float | None = None
    is_byok: bool | None = None
    cost_details: CostDetails | None = None
    prompt_tokens_details: PromptTokensDetails | None = None


@dataclass(frozen=True, slots=True)
class CreateEmbeddingsResponse(Dumpable):
    data: list[EmbeddingData]
    model: str
    object: str = "list"
    id: str | None = None
    usage: EmbeddingsUsage | None = None
    provider: str | None = None  # sent by OpenRouter and embedrouter, not in the OAS

    def to_numpy(self) -> Any:
        """An (n, d) float32 array, decoded once from float lists or little-endian base64."""
        return to_numpy([self])


def to_numpy(responses: CreateEmbeddingsResponse | Iterable[CreateEmbeddingsResponse]) -> Any:
    """The embeddings of one or more responses as one (n, d) float32 array, in order."""
    if isinstance(responses, CreateEmbeddingsResponse):
        responses = [responses]
    items = [item for res in responses for item in res.data]
    return _decode.stack((item.embedding for item in items), len(items))


_NUM = (int, float)


def _cost_details(u: dict[str, Any]) -> CostDetails | None:
    c = need(u, "cost_details", dict, "$.usage", optional=True)
    if c is None:
        return None
    p = "$.usage.cost_details"
    return CostDetails(
        upstream_inference_prompt_cost=need(c, "upstream_inference_prompt_cost", _NUM, p),
        upstream_inference_completions_cost=need(c, "upstream_inference_completions_cost",
                                                 _NUM, p),
        upstream_inference_cost=need(c, "upstream_inference_cost", _NUM, p, optional=True),
        server_tool_cost=need(c, "server_tool_cost", _NUM, p, optional=True))


def _tokens_details(u: dict[str, Any]) -> PromptTokensDetails | None:
    d = need(u, "prompt_tokens_details", dict, "$.usage", optional=True)
    if d is None:
        return None
    p = "$.usage.prompt_tokens_details"
    return PromptTokensDetails(**{f.name: need(d, f.name, int, p, optional=True)
                                  for f in fields(PromptTokensDetails)})


def _usage(obj: dict[str, Any]) -> EmbeddingsUsage | None:
    u = need(obj, "usage", dict, "$", optional=True)
    if u is None:
        return None
    return EmbeddingsUsage(
        prompt_tokens=need(u, "prompt_tokens", int, "$.usage"),
        total_tokens=need(u, "total_tokens", int, "$.usage"),
        cost=need(u, "cost", _NUM, "$.usage", optional=True),
        is_byok=need(u, "is_byok", bool, "$.usage", optional=True),
        cost_details=_cost_details(u), prompt_tokens_details=_tokens_details(u))


def parse_embeddings(body: Any) -> CreateEmbeddingsResponse:
    """A decoded JSON body into a ``CreateEmbeddingsResponse``; ShapeError names what is wrong."""
    obj = need({"body": body}, "body", dict, "$")
    if need(obj, "object", str, "$") != "list":
        raise ShapeError("$.object: expected 'list'")
    data = []
    for i, item in enumerate(need(obj, "data", list, "$")):
        path = f"$.data[{i}]"
        if need(item, "object", str, path) != "embedding":
            raise ShapeError(f"{path}.object: expected 'embedding'")
        emb = need(item, "embedding", (list, str), path)
        if isinstance(emb, list) and not all(
                isinstance(v, _NUM) and not isinstance(v, bool) for v in emb):
            raise ShapeError(f"{path}.embedding: expected numbers")
        data.append(EmbeddingData(embedding=emb,
                                  index=need(item, "index", int, path, optional=True)))
    return CreateEmbeddingsResponse(
        data=data, model=need(obj, "model", str, "$"), object="list",
        id=need(obj, "id", str, "$", optional=True), usage=_usage(obj),
        provider=need(obj, "provider", str, "$", optional=True))
