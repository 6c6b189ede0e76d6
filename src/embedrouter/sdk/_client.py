"""``EmbedRouter``: the client object, with ``.embeddings`` and ``embed_many``."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from embedrouter.sdk._bulk import embed_many, embed_many_async
from embedrouter.sdk._core import EmbedRouterCore, RequestOptions
from embedrouter.sdk._generate import Embeddings


class EmbedRouter(EmbedRouterCore):
    """Drop-in for ``openrouter.OpenRouter``'s embeddings surface (same constructor).

    ``with EmbedRouter(...) as client`` and ``async with`` close only the HTTP clients this
    object created, never ones passed in.
    """

    @cached_property
    def embeddings(self) -> Embeddings:
        return Embeddings(self)

    def __enter__(self) -> EmbedRouter:
        return self

    async def __aenter__(self) -> EmbedRouter:
        return self

    def embed_many(self, texts: Sequence[str], model: str, *, batch_size: int = 128,
                   concurrency: int = 4, progress: bool = False,
                   options: RequestOptions | None = None, **fields: Any) -> Any:
        """Embed a large list in bounded concurrent requests; one (n, d) float32 array back.

        Order is kept; 5XX, 429 and connection failures are retried per ``retry_config``
        (429 added to its statuses); extra keyword arguments (``dimensions``, ``input_type``,
        ...) go into every request. ``progress=True`` shows a bar (tqdm if installed, else a
        line on stderr). Needs numpy.
        """
        return embed_many(self, texts, model, batch_size=batch_size, concurrency=concurrency,
                          progress=progress, options=options, **fields)

    async def embed_many_async(self, texts: Sequence[str], model: str, *,
                               batch_size: int = 128, concurrency: int = 4,
                               progress: bool = False, options: RequestOptions | None = None,
                               **fields: Any) -> Any:
        """The async twin of ``embed_many``."""
        return await embed_many_async(self, texts, model, batch_size=batch_size,
                                      concurrency=concurrency, progress=progress,
                                      options=options, **fields)
