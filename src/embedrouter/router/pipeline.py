"""One request through the pipeline: resolve the model, dispatch, shape the vectors, price it."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence

from embedrouter.catalog import Catalog, ModelSpec
from embedrouter.errors import InvalidRequest, NotFound, UnknownModel, UnsupportedInput
from embedrouter.providers.base import Provider
from embedrouter.router.dispatch import Dispatcher
from embedrouter.router.selection import local_endpoint, plan, split_variant
from embedrouter.router.token_ids import INLINE_DECODE_IDS, needs_decoding, translate
from embedrouter.router.vectors import shorten
from embedrouter.types import (
    EmbeddingRequest,
    EmbeddingResult,
    Input,
    MediaPart,
    MultimodalInput,
    TextInput,
    TokenInput,
    Usage,
)


def resolve_model(catalog: Catalog, slug: str) -> ModelSpec:
    """Unknown slug: 400; a known model that has no embeddings endpoint: 404."""
    spec = catalog.get(slug)
    if spec is None:
        raise UnknownModel(slug)
    if not spec.is_embedding:
        raise NotFound(
            f"Model {slug!r} is not an embeddings model; no embeddings endpoint serves it",
            metadata={"availability": {"code": "no_endpoints", "retryable": False,
                                       "requested_models": [slug]}},
        )
    return spec


def check_dimensions(spec: ModelSpec, dimensions: int | None) -> int | None:
    """The width to cut to, or None for native; 400 where the model cannot be cut."""
    if dimensions is None or dimensions == spec.dimensions:
        return None
    if dimensions > spec.dimensions:
        raise InvalidRequest(
            f"dimensions: model {spec.slug!r} has {spec.dimensions} dimensions; "
            f"{dimensions} is more than it produces",
            metadata={"field": "dimensions"},
        )
    if not spec.matryoshka:
        raise InvalidRequest(
            f"dimensions: model {spec.slug!r} does not support shortened embeddings "
            f"(it is not Matryoshka-trained); omit dimensions or use {spec.dimensions}",
            metadata={"field": "dimensions"},
        )
    return dimensions


def flatten_inputs(spec: ModelSpec, inputs: Sequence[Input]) -> list[TextInput | TokenInput]:
    """Reduce multimodal items to what a text-only model can take, or refuse them."""
    out: list[TextInput | TokenInput] = []
    for i, item in enumerate(inputs):
        if not isinstance(item, MultimodalInput):
            out.append(item)
            continue
        media = [p for p in item.parts if isinstance(p, MediaPart)]
        if media and not set(spec.input_modalities) - {"text"}:
            raise UnsupportedInput(
                f"Unsupported input component type {media[0].kind!r} in input[{i}]: model "
                f"{spec.slug!r} embeds text only",
                metadata={"field": f"input[{i}].content"},
            )
        # All text parts of one item form one joint input, so they give one embedding.
        out.append(TextInput("\n".join(p.text for p in item.parts if isinstance(p, TextInput))))
    return out


class Router:
    """Owns the path from a validated request to priced vectors."""

    def __init__(self, catalog: Catalog, providers: Mapping[str, Provider],
                 dispatcher: Dispatcher | None = None, *, deadline_s: float = 120.0) -> None:
        self.catalog = catalog
        self._providers = dict(providers)
        self.dispatcher = dispatcher or Dispatcher({})
        self._deadline_s = deadline_s
        self._rng = random.Random()  # the price-weighted draw; seeding one per request costs

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        started = time.perf_counter()
        slug, variant = split_variant(request.model)
        spec = resolve_model(self.catalog, slug)
        cut_to = check_dimensions(spec, request.dimensions)
        inputs = flatten_inputs(spec, request.inputs)
        if needs_decoding(spec, inputs) > INLINE_DECODE_IDS:
            inputs = await asyncio.to_thread(translate, spec, inputs)
        else:
            inputs = translate(spec, inputs)
        params = frozenset(name for name, value in (("dimensions", request.dimensions),
                                                      ("input_type", request.input_type))
                           if value is not None)
        if spec.is_local:
            # Filters apply as for any model (404 constraint_filtered); what is left to choose is
            # the precision, and never by chance or as a fallback.
            endpoint = local_endpoint(spec.endpoints, request.provider, slug=spec.slug,
                                      variant=variant, params=params)
            result = await self._providers[spec.provider].embed(
                spec, inputs, input_type=request.input_type, quantization=endpoint.quantization)
            vectors, tokens = result.vectors, result.prompt_tokens
            model, provider, cost = spec.upstream_id, endpoint.display_name, endpoint.cost(tokens)
            truncated, estimated = result.truncated, False
        else:
            health = self.dispatcher.health
            chosen = plan(spec.endpoints, request.provider, slug=spec.slug, variant=variant,
                          params=params, health=health.snapshot(), now=health.now(),
                          rng=self._rng)
            items = [x.text if isinstance(x, TextInput) else list(x.ids) for x in inputs]
            sent = await self.dispatcher.run(chosen, items, slug=spec.slug,
                                             width=cut_to or spec.dimensions,
                                             upstream_dimensions=cut_to,
                                             input_type=request.input_type,
                                             deadline_s=self._deadline_s)
            vectors, tokens, cost = sent.vectors, sent.prompt_tokens, sent.cost
            model, provider = sent.served_by.upstream_model, sent.served_by.display_name
            truncated, estimated = 0, sent.estimated
        if vectors.shape[0] != len(inputs):
            # Never hand back a short or long result: clients index by position.
            raise RuntimeError(f"provider returned {vectors.shape[0]} rows for {len(inputs)}")
        if cut_to is not None and vectors.shape[1] != cut_to:
            vectors = shorten(vectors, cut_to)
        return EmbeddingResult(
            vectors=vectors,
            model=model,
            provider=provider,
            usage=Usage(prompt_tokens=tokens, total_tokens=tokens, cost=cost,
                        estimated=estimated),
            truncated=truncated,
            timings={"total": time.perf_counter() - started},
        )

    def stats(self) -> dict[str, dict[str, float]]:
        """Gauges of every provider's models, keyed by model slug."""
        out: dict[str, dict[str, float]] = {}
        for p in self._providers.values():
            out.update(p.stats())
        return out

    async def close(self) -> None:
        for p in self._providers.values():
            await p.close()
        await self.dispatcher.close()
