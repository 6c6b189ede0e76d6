"""``embed_many``: a large list in bounded concurrent requests, straight into one float32 array.

Responses are requested as base64 and each vector is decoded from its bytes into its row of the
preallocated output: no list of Python floats is ever built for a whole response.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from embedrouter.sdk._backoff import RetryConfig
from embedrouter.sdk._core import EmbedRouterCore, RequestOptions
from embedrouter.sdk._exceptions import ResponseValidationError
from embedrouter.sdk._generate import embeddings_body, generate_request
from embedrouter.sdk._request import interpret
from embedrouter.sdk._responses import _numpy


def _bulk_retry(config: RetryConfig) -> RetryConfig:
    """A bulk job should wait out a full queue too, so 429 joins the retried statuses."""
    codes = list(config.status_codes)
    return config if "429" in codes else replace(config, status_codes_override=[*codes, "429"])


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(i, min(i + size, n)) for i in range(0, n, size)]


class _Progress:
    """tqdm when installed, else a carriage-return line on stderr; thread-safe."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._lock = threading.Lock()
        self._bar: Any = None
        self._done = 0
        self._total = total
        self._enabled = enabled
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, unit="text", desc="embedding")

    def update(self, n: int) -> None:
        if not self._enabled:
            return
        with self._lock:
            self._done += n
            if self._bar is not None:
                self._bar.update(n)
            else:
                sys.stderr.write(f"\rembedding {self._done}/{self._total}")
                sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._enabled:
            sys.stderr.write("\n")


def _writer(out_holder: list[Any], lock: threading.Lock) -> Callable[[int, int, Any], None]:
    np = _numpy()

    def write(start: int, stop: int, body: Any) -> None:
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != stop - start:
            raise ResponseValidationError(f"$.data: expected {stop - start} embeddings")
        for pos, item in enumerate(data):
            idx = item.get("index", pos) if isinstance(item, dict) else None
            emb = item.get("embedding") if isinstance(item, dict) else None
            if not isinstance(idx, int) or not 0 <= idx < stop - start:
                raise ResponseValidationError(f"$.data[{pos}].index: out of range")
            row = (np.frombuffer(base64.b64decode(emb), dtype="<f4") if isinstance(emb, str)
                   else np.asarray(emb, dtype=np.float32))
            with lock:
                if out_holder[0] is None:
                    out_holder[0] = np.empty((out_holder[1], row.shape[0]), dtype=np.float32)
            out = out_holder[0]
            if row.shape[0] != out.shape[1]:
                raise ResponseValidationError(
                    f"$.data[{pos}].embedding: {row.shape[0]} dimensions, "
                    f"expected {out.shape[1]}")
            out[start + idx] = row

    return write


def _body(texts: Sequence[str], model: str, extra: dict[str, Any]) -> dict[str, Any]:
    return embeddings_body({"input": list(texts), "model": model, "encoding_format": "base64",
                            **extra})


def _parse_raw(body: Any) -> Any:
    return body


class _Job:
    """What both twins share: checks, the retry policy, the output and the progress bar."""

    def __init__(self, core: EmbedRouterCore, texts: Sequence[str], model: str,
                 batch_size: int, concurrency: int, progress: bool,
                 options: RequestOptions | None, fields: dict[str, Any]) -> None:
        if batch_size < 1 or concurrency < 1:
            raise ValueError("batch_size and concurrency must be at least 1")
        self.np = _numpy()
        self.opts = options or RequestOptions()
        self.retry = _bulk_retry(core.retries(self.opts))
        self.spans = _chunks(len(texts), batch_size)
        self._holder: list[Any] = [None, len(texts)]
        self.write = _writer(self._holder, threading.Lock())
        self.bar = _Progress(len(texts), progress)
        self._core, self._texts, self._model, self._fields = core, texts, model, fields

    def request(self, start: int, stop: int) -> Any:
        return generate_request(self._core, _body(self._texts[start:stop], self._model,
                                                  self._fields), self.opts)

    def done(self, start: int, stop: int, resp: Any) -> None:
        self.write(start, stop, interpret(resp, _parse_raw))
        self.bar.update(stop - start)

    def result(self) -> Any:
        out = self._holder[0]
        return out if out is not None else self.np.zeros((0, 0), dtype=self.np.float32)


def embed_many(core: EmbedRouterCore, texts: Sequence[str], model: str, *,
               batch_size: int = 128, concurrency: int = 4, progress: bool = False,
               options: RequestOptions | None = None, **fields: Any) -> Any:
    """Embed ``texts`` in order; returns an (n, d) float32 array."""
    job = _Job(core, texts, model, batch_size, concurrency, progress, options, fields)

    def run(span: tuple[int, int]) -> None:
        job.done(*span, core.send(job.request(*span), job.retry))

    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            # list() re-raises the first failure; the pool then finishes what is in flight.
            list(pool.map(run, job.spans))
    finally:
        job.bar.close()
    return job.result()


async def embed_many_async(core: EmbedRouterCore, texts: Sequence[str], model: str, *,
                           batch_size: int = 128, concurrency: int = 4, progress: bool = False,
                           options: RequestOptions | None = None, **fields: Any) -> Any:
    job = _Job(core, texts, model, batch_size, concurrency, progress, options, fields)
    gate = asyncio.Semaphore(concurrency)

    async def run(start: int, stop: int) -> None:
        async with gate:
            resp = await core.send_async(job.request(start, stop), job.retry)
        job.done(start, stop, resp)

    try:
        tasks = [asyncio.ensure_future(run(a, b)) for a, b in job.spans]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            raise
    finally:
        job.bar.close()
    return job.result()
