"""Where a job's vectors come from: a router over HTTP, or the router built in-process.

Both take a chunk of texts and give back a ``Chunk`` (vectors in input order, tokens, cost).
``Target`` is the picklable description of either, so Ray actors can build their own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from embedrouter.batch.checkpoint import Chunk
from embedrouter.batch.errors import BatchError

# A batch job outlives any blip: 429 (the server's queue is full) joins the 5XX and connection
# failures that are retried, with the server's Retry-After honoured, for up to 10 minutes.
RETRY_STATUSES = ["429", "5XX"]
RETRY_BUDGET_MS = 600_000
REQUEST_TIMEOUT_MS = 300_000


@dataclass(frozen=True, slots=True)
class Target:
    """The model and where it runs: ``url`` (any OpenRouter-compatible base URL) or, when it
    is None, this package's router in-process with the settings of ``config``/``data_dir``."""

    model: str
    url: str | None = None
    key: str | None = None
    dimensions: int | None = None
    input_type: str | None = None
    config: str | None = None
    data_dir: str | None = None

    def params(self) -> dict[str, object]:
        """What decides the vectors (not where they are computed): the checkpoint's key."""
        return {"model": self.model, "dimensions": self.dimensions,
                "input_type": self.input_type}


class Embedder(Protocol):
    async def embed(self, texts: list[str]) -> Chunk: ...

    async def aclose(self) -> None: ...


def _cost(value: float | None) -> Decimal | None:
    # JSON numbers arrive as floats; repr is the shortest string that reads back as the same
    # float, i.e. the decimal the server wrote, so the sum is exact in what was sent.
    return None if value is None else Decimal(repr(value))


class HttpEmbedder:
    """Calls ``POST {url}/embeddings`` through the SDK, asking for base64 vectors."""

    def __init__(self, target: Target) -> None:
        from embedrouter.sdk import BackoffStrategy, EmbedRouter, RetryConfig

        assert target.url is not None
        retry = RetryConfig("backoff", BackoffStrategy(max_elapsed_time=RETRY_BUDGET_MS), True,
                            RETRY_STATUSES)
        self._target = target
        self._client = EmbedRouter(api_key=target.key, server_url=target.url,
                                   retry_config=retry, timeout_ms=REQUEST_TIMEOUT_MS)

    async def embed(self, texts: list[str]) -> Chunk:
        from embedrouter.sdk import EmbedRouterError

        t = self._target
        try:
            res = await self._client.embeddings.generate_async(
                input=texts, model=t.model, encoding_format="base64", dimensions=t.dimensions,
                input_type=t.input_type)
            vectors = res.to_numpy()
        except EmbedRouterError as exc:
            if exc.status_code is not None:  # an envelope or not: the status says the most
                raise BatchError(f"the router answered {exc.status_code}: {exc.message}"
                                 ) from None
            raise BatchError(f"request to {t.url} failed: {exc.message}") from None
        n = len(texts)
        index = np.array([i if d.index is None else d.index for i, d in enumerate(res.data)],
                         dtype=np.int64)
        if vectors.shape[0] != n or not np.array_equal(np.sort(index), np.arange(n)):
            raise BatchError(f"the router sent {vectors.shape[0]} embeddings for {n} texts, or "
                             "repeated an index")
        ordered = np.empty_like(vectors)
        ordered[index] = vectors
        usage = res.usage
        return Chunk(vectors=ordered, tokens=usage.prompt_tokens if usage else 0,
                     cost=_cost(usage.cost) if usage else None)

    async def aclose(self) -> None:
        await self._client.aclose()


class LocalEmbedder:
    """The router in this process (local model, or remote providers from the config): the same
    validation and pipeline as ``POST /embeddings``, without a server."""

    def __init__(self, router: Any, settings: Any, target: Target) -> None:
        self._router, self._settings, self._target = router, settings, target

    @classmethod
    async def start(cls, target: Target) -> LocalEmbedder:
        from embedrouter.server import build_router

        settings = local_settings(target)
        return cls(await build_router(settings), settings, target)

    async def embed(self, texts: list[str]) -> Chunk:
        from embedrouter.api.parse import Limits, parse_embedding_request
        from embedrouter.errors import EmbedRouterError, Overloaded

        t = self._target
        body: dict[str, Any] = {"model": t.model, "input": texts}
        if t.dimensions is not None:
            body["dimensions"] = t.dimensions
        if t.input_type is not None:
            body["input_type"] = t.input_type
        limits = Limits(max(self._settings.max_inputs, len(texts)),
                        self._settings.max_input_chars)
        while True:
            try:
                result = await self._router.embed(parse_embedding_request(body, limits))
                break
            except Overloaded as exc:  # the shared queue is full: wait as a client would
                await asyncio.sleep(exc.retry_after or 1)
            except EmbedRouterError as exc:
                raise BatchError(exc.message) from None
        return Chunk(vectors=np.asarray(result.vectors, dtype=np.float32),
                     tokens=result.usage.prompt_tokens, cost=result.usage.cost)

    async def aclose(self) -> None:
        await self._router.close()


def local_settings(target: Target) -> Any:
    from embedrouter.settings import SettingsError, load_settings

    try:
        return load_settings(Path(target.config) if target.config else None,
                             overrides={"data_dir": target.data_dir})
    except SettingsError as exc:
        raise BatchError(f"configuration error: {exc}") from None


async def open_embedder(target: Target) -> Embedder:
    return HttpEmbedder(target) if target.url else await LocalEmbedder.start(target)
