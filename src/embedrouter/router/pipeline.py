"""One request through the pipeline: resolve the model, dispatch, shape the vectors, price it."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING

from embedrouter.arrivals import Arrivals
from embedrouter.catalog import Catalog, ModelSpec
from embedrouter.catalog.endpoints import EndpointSpec
from embedrouter.errors import InvalidRequest, NotFound, UnknownModel, UnsupportedInput
from embedrouter.providers.base import Provider
from embedrouter.router.dispatch import Dispatcher
from embedrouter.router.quote import bounded_quote, remote_quote
from embedrouter.router.selection import Plan, local_endpoint, plan, split_variant
from embedrouter.router.token_ids import INLINE_DECODE_IDS, needs_decoding, translate
from embedrouter.router.vectors import shorten
from embedrouter.timing import SPANS
from embedrouter.types import (
    Computed,
    EmbeddingRequest,
    EmbeddingResult,
    Input,
    MediaPart,
    MultimodalInput,
    OnComputed,
    Quote,
    Reserve,
    TextInput,
    TokenInput,
    Usage,
)

if TYPE_CHECKING:  # built by the server and handed in; the router only calls it
    from embedrouter.cache import CacheMode, VectorCache


def _item(x: TextInput | TokenInput) -> str | Sequence[int]:
    return x.text if isinstance(x, TextInput) else x.ids


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
                 dispatcher: Dispatcher | None = None, *, deadline_s: float = 120.0,
                 cache: VectorCache | None = None, arrivals: Arrivals | None = None) -> None:
        self.catalog = catalog
        self.cache = cache
        # The count of requests on their way to a provider, which the API layer enters each
        # request in (embedrouter/arrivals.py); None: nothing counts.
        self.arrivals = arrivals
        self._providers = dict(providers)
        self.dispatcher = dispatcher or Dispatcher({})
        self._deadline_s = deadline_s
        self._rng = random.Random()  # the price-weighted draw; seeding one per request costs

    async def embed(self, request: EmbeddingRequest, *,
                    cache: CacheMode | None = None,
                    reserve: Reserve | None = None,
                    computed: OnComputed | None = None) -> EmbeddingResult:
        """``cache``: what this request may do with the vector cache (None: nothing).
        ``reserve`` (accounts' admission) is awaited once with the request's quote after the
        plan is made and before any provider is called; if it raises, nothing is sent.
        ``computed`` is called with what the request costs the moment a local model has its
        vectors, when that is its whole cost (not through the vector cache, whose hits and
        shared computations settle from the assembled result)."""
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
        local_ep = None
        if spec.is_local:
            # Filters apply as for any model (404 constraint_filtered); what is left to choose is
            # the precision, and never by chance or as a fallback.
            local_ep = local_endpoint(spec.endpoints, request.provider, slug=spec.slug,
                                      variant=variant, params=params)
            chosen = Plan((local_ep,), ())
        else:
            health = self.dispatcher.health
            chosen = plan(spec.endpoints, request.provider, slug=spec.slug, variant=variant,
                          params=params, health=health.snapshot(), now=health.now(),
                          rng=self._rng)
        width = cut_to or spec.dimensions
        if self.cache is not None and cache is not None and cache.active:
            keyed = spec
            if local_ep is not None and local_ep.quantization != "fp32":
                # Another precision is another embedding space: never served for fp32.
                keyed = replace(spec, fingerprint=f"{spec.fingerprint}|{local_ep.quantization}"
                                if spec.fingerprint else "")
            keys = self.cache.keys(keyed, inputs, width=width, input_type=request.input_type)
            if keys is not None:
                result = await self._embed_cached(spec, chosen, request, inputs, cut_to, keys,
                                                  cache, reserve)
                result.timings["total"] = time.perf_counter() - started
                return result
        result = await self._compute(spec, chosen, request, inputs, cut_to, reserve, computed)
        result.timings["total"] = time.perf_counter() - started
        return result

    async def _compute(self, spec: ModelSpec, chosen: Plan, request: EmbeddingRequest,
                       inputs: Sequence[TextInput | TokenInput],
                       cut_to: int | None, reserve: Reserve | None = None,
                       computed: OnComputed | None = None) -> EmbeddingResult:
        """Vectors for ``inputs`` from the model's provider or endpoints, priced."""
        if spec.is_local:
            endpoint = chosen.attempts[0]  # the precision chosen in embed
            before = after = None
            if reserve is not None:
                async def before(tokens: int) -> None:
                    await reserve(Quote(spec.slug, tokens, endpoint.cost(tokens)))
            if computed is not None:
                # The same figures the result below is built from.
                def after(tokens: int) -> None:
                    computed(Computed(tokens, endpoint.cost(tokens), spec.upstream_id,
                                      endpoint.display_name))
            result = await self._providers[spec.provider].embed(
                spec, inputs, input_type=request.input_type, before_compute=before,
                after_compute=after, quantization=endpoint.quantization)
            vectors, tokens = result.vectors, result.prompt_tokens
            model, provider, cost = spec.upstream_id, endpoint.display_name, endpoint.cost(tokens)
            truncated, estimated = result.truncated, False
            per_input, exact = result.input_tokens, result.input_tokens is not None
        else:
            items = [x.text if isinstance(x, TextInput) else list(x.ids) for x in inputs]
            spans = SPANS.get()  # traced requests only: the upstream round trip as "inference"
            if reserve is not None:
                await reserve(remote_quote(spec.slug, self._quotable(spec, chosen), items))
            sent_ns = time.time_ns() if spans is not None else 0
            sent = await self.dispatcher.run(chosen, items, slug=spec.slug,
                                             width=cut_to or spec.dimensions,
                                             upstream_dimensions=cut_to,
                                             input_type=request.input_type,
                                             deadline_s=self._deadline_s)
            if spans is not None:
                spans.append(("inference", sent_ns, time.time_ns()))
            vectors, tokens, cost = sent.vectors, sent.prompt_tokens, sent.cost
            model, provider = sent.served_by.upstream_model, sent.served_by.display_name
            truncated, estimated = 0, sent.estimated
            per_input, exact = sent.input_tokens, sent.input_tokens_exact
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
            input_tokens=per_input,
            input_tokens_exact=exact,
        )

    # -- the vector cache (embedrouter.cache): hits served, only the misses computed ---------

    async def _embed_cached(self, spec: ModelSpec, chosen: Plan, request: EmbeddingRequest,
                            inputs: Sequence[TextInput | TokenInput], cut_to: int | None,
                            keys: list[bytes], mode: CacheMode,
                            reserve: Reserve | None = None) -> EmbeddingResult:
        assert self.cache is not None
        fraction = self.cache.hit_price_fraction
        held = False

        async def hold(quote: Quote, computed: list[int]) -> None:
            # Admission holds once per request: with the first computation's own quote (exact
            # for a local model), plus a bound for the inputs the cache answers when hits are
            # priced. A second computation (its inputs' single-flight leader failed) is charged
            # within that hold: settling never exceeds it.
            nonlocal held
            if reserve is None or held:
                return
            held = True
            rest = sorted(set(range(len(inputs))) - set(computed))
            if fraction and rest:
                extra = bounded_quote(spec, self._quotable(spec, chosen),
                                      [_item(inputs[i]) for i in rest])
                quote = Quote(quote.model, quote.tokens + extra.tokens,
                              quote.cost + extra.cost * fraction)
            await reserve(quote)

        async def compute(positions: list[int]) -> EmbeddingResult:
            async def reserve_part(quote: Quote) -> None:
                await hold(quote, positions)
            return await self._compute(spec, chosen, request, [inputs[i] for i in positions],
                                       cut_to, reserve_part if reserve is not None else None)

        served = await self.cache.serve(keys, width=cut_to or spec.dimensions, mode=mode,
                                        compute=compute)
        if reserve is not None and not held:
            # Every input came from the cache: no provider was called; the hold (and the rate
            # limits' count) is what the hits cost.
            held = True
            await reserve(Quote(spec.slug, served.cached_tokens,
                                spec.cost(served.cached_tokens) * fraction))
        # Charged: what the computed inputs cost, plus the configured fraction of the price of
        # the cached ones (0 by default: hits are free).
        cost = sum((r.usage.cost for r in served.computed), Decimal(0))
        if self.cache.hit_price_fraction and served.cached_tokens:
            cost += spec.cost(served.cached_tokens) * self.cache.hit_price_fraction
        tokens = served.cached_tokens + sum(r.usage.prompt_tokens for r in served.computed)
        lead = served.computed[0] if served.computed else None
        return EmbeddingResult(
            vectors=served.vectors,
            model=lead.model if lead else spec.upstream_id,
            # A full hit: the provider the request was routed to (a local model's precision).
            provider=lead.provider if lead else (chosen.attempts[0].display_name
                                                 if spec.is_local else spec.provider_name),
            usage=Usage(prompt_tokens=tokens, total_tokens=tokens, cost=cost,
                        estimated=served.estimated or any(r.usage.estimated
                                                          for r in served.computed),
                        cached_tokens=served.cached_tokens),
            truncated=sum(r.truncated for r in served.computed),
            cache=served.status,
        )

    def _quotable(self, spec: ModelSpec, chosen: Plan) -> list[EndpointSpec]:
        """The endpoints a quote prices: those of the plan that this router can call."""
        return [ep for ep in chosen.attempts
                if spec.is_local or self.dispatcher.serves(ep.provider)]

    def stats(self) -> dict[str, dict[str, float]]:
        """Gauges of every provider's models, keyed by model slug."""
        out: dict[str, dict[str, float]] = {}
        for p in self._providers.values():
            out.update(p.stats())
        return out

    def histograms(self) -> dict[str, dict[str, object]]:
        """Per-forward-pass histograms of the providers that keep them, by model slug."""
        out: dict[str, dict[str, object]] = {}
        for p in self._providers.values():
            if hasattr(p, "histograms"):
                out.update(p.histograms())
        return out

    async def close(self) -> None:
        for p in self._providers.values():
            await p.close()
        await self.dispatcher.close()
