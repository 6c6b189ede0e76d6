"""Typed, validated ``GET /embeddings/models`` pages (the official ``ModelsListResponse``).

Fields the official SDK requires and this SDK needs are required; the rest are read when
present, so the SDK also works with leaner servers. ``Model.raw`` keeps every field as sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from embedrouter.sdk._responses import Dumpable, ShapeError, need

_PRICE_EXTRAS = ("request", "image", "audio", "image_token", "image_output", "audio_output",
                 "input_audio_cache", "input_cache_read", "input_cache_write",
                 "input_cache_write_1h", "internal_reasoning", "web_search")


@dataclass(frozen=True, slots=True)
class PublicPricing(Dumpable):
    """USD per token (or per unit), as decimal strings."""

    prompt: str
    completion: str
    request: str | None = None
    image: str | None = None
    audio: str | None = None
    image_token: str | None = None
    image_output: str | None = None
    audio_output: str | None = None
    input_audio_cache: str | None = None
    input_cache_read: str | None = None
    input_cache_write: str | None = None
    input_cache_write_1h: str | None = None
    internal_reasoning: str | None = None
    web_search: str | None = None
    discount: float | None = None


@dataclass(frozen=True, slots=True)
class ModelArchitecture(Dumpable):
    input_modalities: list[str]
    output_modalities: list[str]
    modality: str | None = None
    tokenizer: str | None = None
    instruct_type: str | None = None


@dataclass(frozen=True, slots=True)
class TopProviderInfo(Dumpable):
    is_moderated: bool
    context_length: int | None = None
    max_completion_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class PerRequestLimits(Dumpable):
    prompt_tokens: float
    completion_tokens: float


@dataclass(frozen=True, slots=True)
class ModelLinks(Dumpable):
    details: str


@dataclass(frozen=True, slots=True)
class Model(Dumpable):
    id: str
    canonical_slug: str
    name: str
    created: int
    context_length: int | None
    pricing: PublicPricing
    architecture: ModelArchitecture
    top_provider: TopProviderInfo | None = None
    per_request_limits: PerRequestLimits | None = None
    supported_parameters: list[str] = field(default_factory=list)
    default_parameters: dict[str, Any] | None = None
    supported_voices: list[str] | None = None
    links: ModelLinks | None = None
    description: str | None = None
    hugging_face_id: str | None = None
    expiration_date: str | None = None
    knowledge_cutoff: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class ModelsListResponseLinks(Dumpable):
    next: str | None = None


@dataclass(frozen=True, slots=True)
class ModelsListResponse(Dumpable):
    data: list[Model]
    total_count: int
    links: ModelsListResponseLinks

    @property
    def next_link(self) -> str | None:
        return self.links.next


def _strings(obj: dict[str, Any], key: str, path: str, *, optional: bool = False
             ) -> list[str] | None:
    value = need(obj, key, list, path, optional=optional)
    if value is not None and not all(isinstance(v, str) for v in value):
        raise ShapeError(f"{path}.{key}: expected strings")
    return value


def _pricing(m: dict[str, Any], path: str) -> PublicPricing:
    p = need(m, "pricing", dict, path)
    path += ".pricing"
    extras = {k: need(p, k, str, path, optional=True) for k in _PRICE_EXTRAS}
    return PublicPricing(prompt=need(p, "prompt", str, path),
                         completion=need(p, "completion", str, path),
                         discount=need(p, "discount", (int, float), path, optional=True),
                         **extras)


def _architecture(m: dict[str, Any], path: str) -> ModelArchitecture:
    a = need(m, "architecture", dict, path)
    path += ".architecture"
    return ModelArchitecture(
        input_modalities=_strings(a, "input_modalities", path, optional=True) or [],
        output_modalities=_strings(a, "output_modalities", path) or [],
        modality=need(a, "modality", str, path, optional=True),
        tokenizer=need(a, "tokenizer", str, path, optional=True),
        instruct_type=need(a, "instruct_type", str, path, optional=True))


def _top_provider(m: dict[str, Any], path: str) -> TopProviderInfo | None:
    t = need(m, "top_provider", dict, path, optional=True)
    if t is None:
        return None
    path += ".top_provider"
    return TopProviderInfo(
        is_moderated=need(t, "is_moderated", bool, path),
        context_length=need(t, "context_length", int, path, optional=True),
        max_completion_tokens=need(t, "max_completion_tokens", int, path, optional=True))


def _limits(m: dict[str, Any], path: str) -> PerRequestLimits | None:
    r = need(m, "per_request_limits", dict, path, optional=True)
    if r is None:
        return None
    path += ".per_request_limits"
    return PerRequestLimits(prompt_tokens=need(r, "prompt_tokens", (int, float), path),
                            completion_tokens=need(r, "completion_tokens", (int, float), path))


def _model(m: Any, path: str) -> Model:
    links = need(m, "links", dict, path, optional=True)
    return Model(
        id=need(m, "id", str, path), canonical_slug=need(m, "canonical_slug", str, path),
        name=need(m, "name", str, path), created=need(m, "created", int, path),
        context_length=need(m, "context_length", int, path, nullable=True),
        pricing=_pricing(m, path), architecture=_architecture(m, path),
        top_provider=_top_provider(m, path), per_request_limits=_limits(m, path),
        supported_parameters=_strings(m, "supported_parameters", path, optional=True) or [],
        default_parameters=need(m, "default_parameters", dict, path, optional=True),
        supported_voices=_strings(m, "supported_voices", path, optional=True),
        links=ModelLinks(need(links, "details", str, path + ".links")) if links else None,
        description=need(m, "description", str, path, optional=True),
        hugging_face_id=need(m, "hugging_face_id", str, path, optional=True),
        expiration_date=need(m, "expiration_date", str, path, optional=True),
        knowledge_cutoff=need(m, "knowledge_cutoff", str, path, optional=True),
        raw=m)


def parse_models(body: Any) -> ModelsListResponse:
    """A decoded JSON body into a ``ModelsListResponse``; ShapeError names what is wrong."""
    obj = need({"body": body}, "body", dict, "$")
    models = [_model(m, f"$.data[{i}]") for i, m in enumerate(need(obj, "data", list, "$"))]
    links = need(obj, "links", dict, "$")
    return ModelsListResponse(
        data=models, total_count=need(obj, "total_count", int, "$"),
        links=ModelsListResponseLinks(next=need(links, "next", str, "$.links", nullable=True)))
