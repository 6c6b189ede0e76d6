"""Typed, validated response objects. Unknown keys are ignored, missing required ones are not."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


class ShapeError(ValueError):
    """A body does not have the documented shape; the message names the path."""


def _need(obj: Any, key: str, kinds: type | tuple[type, ...], path: str, *,
          optional: bool = False, nullable: bool = False) -> Any:
    if not isinstance(obj, dict):
        raise ShapeError(f"{path}: expected an object")
    if key not in obj:
        if optional:
            return None
        raise ShapeError(f"{path}.{key}: missing")
    value = obj[key]
    if value is None and (nullable or optional):
        return None
    bad_bool = isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple)
                                                         else (kinds,))
    if not isinstance(value, kinds) or bad_bool:
        raise ShapeError(f"{path}.{key}: unexpected type {type(value).__name__}")
    return value


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:  # pragma: no cover - exercised in the no-numpy venv test
        raise ImportError("to_numpy needs numpy: pip install 'embedrouter[numpy]'") from exc
    return numpy


@dataclass(frozen=True, slots=True)
class EmbeddingData:
    embedding: list[float] | str
    index: int | None
    object: str = "embedding"


@dataclass(frozen=True, slots=True)
class EmbeddingsUsage:
    prompt_tokens: int
    total_tokens: int
    cost: float | None = None
    is_byok: bool | None = None
    cost_details: dict[str, Any] | None = None
    prompt_tokens_details: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CreateEmbeddingsResponse:
    data: list[EmbeddingData]
    model: str
    object: str
    id: str | None = None
    usage: EmbeddingsUsage | None = None
    provider: str | None = None

    def to_numpy(self) -> Any:
        """An (n, d) float32 array, decoded once from floats or little-endian base64."""
        return to_numpy([self])


def to_numpy(responses: Iterable[CreateEmbeddingsResponse]) -> Any:
    """Stack the embeddings of one or more responses into one (n, d) float32 array."""
    np = _numpy()
    rows: list[Any] = []
    for res in responses:
        for item in res.data:
            e = item.embedding
            if isinstance(e, str):
                rows.append(np.frombuffer(base64.b64decode(e), dtype="<f4"))
            else:
                rows.append(np.asarray(e, dtype=np.float32))
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.vstack(rows).astype(np.float32, copy=False)


def parse_embeddings(body: Any) -> CreateEmbeddingsResponse:
    obj = _need({"body": body}, "body", dict, "$")
    if _need(obj, "object", str, "$") != "list":
        raise ShapeError("$.object: expected 'list'")
    raw = _need(obj, "data", list, "$")
    data = []
    for i, item in enumerate(raw):
        path = f"$.data[{i}]"
        if _need(item, "object", str, path) != "embedding":
            raise ShapeError(f"{path}.object: expected 'embedding'")
        emb = _need(item, "embedding", (list, str), path)
        if isinstance(emb, list) and not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in emb):
            raise ShapeError(f"{path}.embedding: expected numbers")
        data.append(EmbeddingData(embedding=emb, index=_need(item, "index", int, path,
                                                             optional=True)))
    usage = None
    u = _need(obj, "usage", dict, "$", optional=True)
    if u is not None:
        usage = EmbeddingsUsage(
            prompt_tokens=_need(u, "prompt_tokens", int, "$.usage"),
            total_tokens=_need(u, "total_tokens", int, "$.usage"),
            cost=_need(u, "cost", (int, float), "$.usage", optional=True),
            is_byok=_need(u, "is_byok", bool, "$.usage", optional=True),
            cost_details=_need(u, "cost_details", dict, "$.usage", optional=True),
            prompt_tokens_details=_need(u, "prompt_tokens_details", dict, "$.usage",
                                        optional=True),
        )
    return CreateEmbeddingsResponse(
        data=data, model=_need(obj, "model", str, "$"), object="list",
        id=_need(obj, "id", str, "$", optional=True), usage=usage,
        provider=_need(obj, "provider", str, "$", optional=True),
    )


@dataclass(frozen=True, slots=True)
class Model:
    """An entry of a models list; ``raw`` keeps every field the server sent."""

    id: str
    canonical_slug: str
    name: str
    created: int
    context_length: int | None
    pricing: dict[str, Any]
    architecture: dict[str, Any]
    description: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class ModelsListResponse:
    data: list[Model]
    total_count: int
    next_link: str | None


def parse_models(body: Any) -> ModelsListResponse:
    obj = _need({"body": body}, "body", dict, "$")
    models = []
    for i, m in enumerate(_need(obj, "data", list, "$")):
        path = f"$.data[{i}]"
        pricing = _need(m, "pricing", dict, path)
        for k in ("prompt", "completion"):
            _need(pricing, k, str, f"{path}.pricing")
        arch = _need(m, "architecture", dict, path)
        _need(arch, "output_modalities", list, f"{path}.architecture")
        models.append(Model(
            id=_need(m, "id", str, path), canonical_slug=_need(m, "canonical_slug", str, path),
            name=_need(m, "name", str, path), created=_need(m, "created", int, path),
            context_length=_need(m, "context_length", int, path, nullable=True),
            pricing=pricing, architecture=arch,
            description=_need(m, "description", str, path, optional=True), raw=m,
        ))
    links = _need(obj, "links", dict, "$")
    return ModelsListResponse(data=models, total_count=_need(obj, "total_count", int, "$"),
                              next_link=_need(links, "next", str, "$.links", nullable=True))
