"""The model catalog: slug -> what the model is, what it costs and what it can do."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from embedrouter.catalog.config import RemoteModel
from embedrouter.catalog.endpoints import EndpointSpec
from embedrouter.settings import ModelConfig

MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    slug: str
    name: str
    description: str
    provider: str  # adapter key, e.g. "local"
    provider_name: str  # display name sent in responses' `provider`
    upstream_id: str  # the id the serving provider knows the model by (response `model`)
    dimensions: int
    context_length: int
    price_per_million: Decimal
    created: int
    matryoshka: bool = False
    input_prefixes: Mapping[str, str] = field(default_factory=dict)
    input_modalities: tuple[str, ...] = ("text",)
    output_modalities: tuple[str, ...] = ("embeddings",)
    hugging_face_id: str | None = None
    path: str | None = None
    token_ids: str = "cl100k"  # settings.TOKEN_ID_MODES
    # Who serves it: a local model has one endpoint per precision it is served at, the default
    # precision first; a remote one the enabled providers' endpoints. All of them serve the same
    # model (for precisions, the same space up to rounding: see router.selection.local_endpoint).
    endpoints: tuple[EndpointSpec, ...] = ()
    # What fixes its output, for the vector cache's keys: a local model's graph, weights,
    # tokenizer and truncation policy; a remote model's upstream id. "" = never cached.
    fingerprint: str = ""

    @property
    def is_local(self) -> bool:
        return self.provider == "local"

    @property
    def is_embedding(self) -> bool:
        return "embeddings" in self.output_modalities

    @property
    def price_per_token(self) -> Decimal:
        return self.price_per_million / MILLION

    def cost(self, tokens: int) -> Decimal:
        """Exact cost in USD of ``tokens`` input tokens."""
        return self.price_per_million * tokens / MILLION


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What only the loaded model can tell: its width and its context."""

    dimensions: int
    context_length: int
    upstream_id: str
    created: int
    fingerprint: str = ""


class Catalog:
    """An immutable, ordered view of the models this instance serves."""

    def __init__(self, models: Iterable[ModelSpec]) -> None:
        self._by_slug = {m.slug: m for m in models}

    def get(self, slug: str) -> ModelSpec | None:
        # Slugs are case-insensitive on OpenRouter (`all-MiniLM-L6-v2` == `all-minilm-l6-v2`).
        return self._by_slug.get(slug.lower())

    def all(self) -> list[ModelSpec]:
        return list(self._by_slug.values())

    def embedding_models(self) -> list[ModelSpec]:
        return [m for m in self._by_slug.values() if m.is_embedding]

    def __len__(self) -> int:
        return len(self._by_slug)


def _local_params(m: ModelConfig) -> frozenset[str]:
    params = {"dimensions"} if m.matryoshka else set()
    if m.input_prefixes:
        params.add("input_type")
    return frozenset(params)


def local_provider_slug(precision: str) -> str:
    """``local`` for fp32 (as before precisions existed), ``local/int8`` for a variant: a base
    slug matches every variant, so ``only: ["local"]`` keeps them all."""
    return "local" if precision == "fp32" else f"local/{precision}"


def _local_endpoint(m: ModelConfig, f: ModelFacts, precision: str) -> EndpointSpec:
    return EndpointSpec(provider=local_provider_slug(precision),
                        display_name="Local" if precision == "fp32" else f"Local ({precision})",
                        upstream_model=f.upstream_id, price_per_million=m.price_per_million,
                        supports_dimensions=m.matryoshka, quantization=precision,
                        data_collection="deny", zdr=True, supported_params=_local_params(m))


def _remote_spec(m: RemoteModel) -> ModelSpec:
    cheapest = min(ep.price_per_million for ep in m.endpoints)
    return ModelSpec(slug=m.slug, name=m.name, description=m.description, provider="remote",
                     provider_name=m.endpoints[0].display_name,
                     upstream_id=m.endpoints[0].upstream_model, dimensions=m.dimensions,
                     context_length=m.context_length, price_per_million=cheapest, created=0,
                     matryoshka=m.matryoshka, hugging_face_id=m.hugging_face_id,
                     token_ids=m.token_ids, endpoints=m.endpoints,
                     # The endpoints serve one embedding space, named by the first's upstream id.
                     fingerprint=f"remote:{m.slug}:{m.endpoints[0].upstream_model}")


def build_catalog(models: Iterable[ModelConfig], facts: Mapping[str, ModelFacts],
                  remote: Iterable[RemoteModel] = ()) -> Catalog:
    """Join the declared models with the facts read from their loaded weights, then add the
    remote models the enabled providers serve."""
    specs = []
    for m in models:
        f = facts.get(m.slug)
        if f is None:  # declared but not served locally (e.g. a non-embeddings model)
            f = ModelFacts(dimensions=0, context_length=m.context_length or 0,
                           upstream_id=m.slug, created=0)
        specs.append(
            ModelSpec(
                slug=m.slug,
                name=m.name or m.slug,
                description=m.description or "",
                provider="local",
                provider_name="Local",
                upstream_id=f.upstream_id,
                dimensions=f.dimensions,
                context_length=min(m.context_length, f.context_length)
                if m.context_length and f.context_length else f.context_length,
                price_per_million=m.price_per_million,
                created=f.created,
                matryoshka=m.matryoshka,
                input_prefixes=dict(m.input_prefixes),
                output_modalities=m.output_modalities,
                hugging_face_id=m.hugging_face_id,
                path=m.path,
                token_ids=m.token_ids,
                fingerprint=f.fingerprint,
                endpoints=tuple(_local_endpoint(m, f, q) for q in m.quantizations)
                if "embeddings" in m.output_modalities else (),
            )
        )
    specs.extend(_remote_spec(r) for r in remote)
    return Catalog(specs)
