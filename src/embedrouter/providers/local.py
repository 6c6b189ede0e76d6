"""The built-in local provider: models computed in-process by the ONNX engine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from embedrouter.arrivals import arrived
from embedrouter.catalog import ModelSpec
from embedrouter.engine import Batcher, LocalModel
from embedrouter.errors import ContextLengthExceeded, InvalidRequest
from embedrouter.providers.base import ProviderResult
from embedrouter.types import TextInput, TokenInput

# Tokenizing a few short strings costs less than a hop to a worker thread; past this many
# characters the hop is cheaper than stalling every other connection on the event loop.
_INLINE_TOKENIZE_CHARS = 8_000


@dataclass(slots=True)
class LoadedModel:
    model: LocalModel
    batcher: Batcher


class LocalProvider:
    """Routes each catalog slug and precision to its loaded model and the batcher that all
    requests for that pair share."""

    name = "local"

    def __init__(self, models: Mapping[str, Mapping[str, LoadedModel]], *,
                 truncate: bool = False) -> None:
        """``models``: slug -> precision -> loaded model."""
        self._models = {slug: dict(by_precision) for slug, by_precision in models.items()}
        self._truncate = truncate

    def loaded(self, slug: str, quantization: str) -> LoadedModel:
        return self._models[slug][quantization]

    def _prefix(self, spec: ModelSpec, input_type: str | None) -> str:
        if input_type is None or not spec.input_prefixes:
            return ""
        prefix = spec.input_prefixes.get(input_type)
        if prefix is None:
            accepted = ", ".join(sorted(spec.input_prefixes))
            raise InvalidRequest(
                f"input_type: {input_type!r} is not supported by model {spec.slug!r}; "
                f"use one of {accepted}",
                metadata={"field": "input_type"},
            )
        return prefix

    async def embed(
        self,
        model: ModelSpec,
        inputs: Sequence[TextInput | TokenInput],
        *,
        input_type: str | None,
        before_compute: Callable[[int], Awaitable[None]] | None = None,
        after_compute: Callable[[int], None] | None = None,
        quantization: str | None = None,
    ) -> ProviderResult:
        """``before_compute`` gets the exact token count once the inputs are tokenized and
        before any inference: admission reserves the exact cost there. ``after_compute`` gets
        the same count on the event loop the moment the vectors exist, before this returns
        (admission queues the charge there; see ``embedrouter.types.OnComputed``).
        ``quantization``: the precision to compute at (None: the model's default, its first
        endpoint)."""
        by_precision = self._models[model.slug]
        loaded = by_precision[quantization or model.endpoints[0].quantization]
        engine = loaded.model
        prefix = self._prefix(model, input_type)

        text_pos = [i for i, x in enumerate(inputs) if isinstance(x, TextInput)]
        texts = [prefix + inputs[i].text for i in text_pos]  # type: ignore[union-attr]
        seqs: list[list[int]] = [[] for _ in inputs]
        limit = model.context_length
        cut = [False] * len(inputs)
        if texts:
            if sum(map(len, texts)) > _INLINE_TOKENIZE_CHARS:
                ids, was_cut = await asyncio.to_thread(engine.tokenize_capped, texts, limit)
            else:
                ids, was_cut = engine.tokenize_capped(texts, limit)
            for pos, seq, c in zip(text_pos, ids, was_cut, strict=True):
                seqs[pos], cut[pos] = seq, c
        for i, x in enumerate(inputs):
            if isinstance(x, TokenInput):
                ids = x.ids
                if len(ids) > limit + 2:
                    # Surely too long whatever [CLS]/[SEP] wrapping adds: cut (or refuse) before
                    # any per-id work, so a 100k-id array costs a slice, not a loop.
                    if not self._truncate:
                        raise ContextLengthExceeded(index=i, tokens=len(engine.wrap_ids(ids)),
                                                    limit=limit, model=model.slug)
                    ids = ids[:limit]
                bad = next((t for t in ids if t >= engine.vocab_size), None)
                if bad is not None:
                    raise InvalidRequest(
                        f"input[{i}]: token id {bad} is outside the vocabulary of model "
                        f"{model.slug!r} (size {engine.vocab_size})",
                        metadata={"field": f"input[{i}]"},
                    )
                seqs[i] = engine.wrap_ids(list(ids))

        truncated = 0
        for i, seq in enumerate(seqs):
            if len(seq) > limit:
                if not self._truncate:
                    raise ContextLengthExceeded(index=i, tokens=len(seq), limit=limit,
                                                model=model.slug, at_least=cut[i])
                seqs[i] = engine.truncate(seq, limit)
                truncated += 1
        counts = list(map(len, seqs))
        total = sum(counts)
        if before_compute is not None:
            await before_compute(total)
        arrived()  # at the queue: a batch waiting for this request can start (arrivals.py)
        on_ready = None if after_compute is None else lambda: after_compute(total)
        vectors = await loaded.batcher.embed(seqs, on_ready=on_ready)
        return ProviderResult(vectors=vectors, prompt_tokens=total, truncated=truncated,
                              input_tokens=counts)

    def _labelled(self) -> Iterator[tuple[str, LoadedModel]]:
        """Every loaded model with its metrics label: the slug, or ``slug:int8`` for a
        precision other than fp32."""
        for slug, by_precision in self._models.items():
            for precision, loaded in by_precision.items():
                yield (slug if precision == "fp32" else f"{slug}:{precision}"), loaded

    def stats(self) -> dict[str, dict[str, float]]:
        """Batcher gauges by model label."""
        return {label: loaded.batcher.stats() for label, loaded in self._labelled()}

    def histograms(self) -> dict[str, dict[str, object]]:
        """Per-forward-pass histograms, keyed like ``stats``."""
        return {label: dict(loaded.batcher.histograms()) for label, loaded in self._labelled()}

    async def close(self) -> None:
        for _, loaded in self._labelled():
            await loaded.batcher.close()
