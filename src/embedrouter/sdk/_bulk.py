"""``embed_many``: a large list in bounded concurrent requests, straight into one float32 array.

Responses are requested as base64; each response's JSON is parsed (its vectors stay strings)
and every vector is decoded from its bytes into its row of the preallocated output, so no list
of Python floats is ever built. Order is kept by the ``index`` of each item, checked to cover
its batch exactly once.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from typing import Any

from embedrouter.sdk import _decode
from embedrouter.sdk._backoff import RetryConfig
from embedrouter.sdk._core import EmbedRouterCore, RequestOptions
from embedrouter.sdk._exceptions import ResponseValidationError
from embedrouter.sdk._generate import embeddings_body, generate_request
from embedrouter.sdk._request import PreparedRequest, interpret


def bulk_retry(config: RetryConfig) -> RetryConfig:
    """A bulk job should wait out a full queue too, so 429 joins the retried statuses (with
    the server's Retry-After honoured); a policy of "none" stays "none"."""
    codes = list(config.status_codes)
    return config if "429" in codes else replace(config, status_codes_override=[*codes, "429"])


def spans(n: int, size: int) -> list[tuple[int, int]]:
    return [(i, min(i + size, n)) for i in range(0, n, size)]


class _Progress:
    """tqdm when installed, else a carriage-return line on stderr; thread-safe."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._lock = threading.Lock()
        self._bar: Any = None
        self._done, self._total, self._enabled = 0, total, enabled
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


def _raw(body: Any) -> Any:
    return body


class _Job:
    """What both twins share: checks, the retry policy, the output array and the progress."""

    def __init__(self, core: EmbedRouterCore, texts: Sequence[str], model: str,
                 batch_size: int, concurrency: int, progress: bool,
                 options: RequestOptions | None, fields: dict[str, Any]) -> None:
        if isinstance(texts, str | bytes):
            raise TypeError("texts must be a list of strings, not a single string")
        if batch_size < 1 or concurrency < 1:
            raise ValueError("batch_size and concurrency must be at least 1")
        self.np = _decode.numpy()
        self.opts = options or RequestOptions()
        self.retry = bulk_retry(core.retries(self.opts))
        self.spans = spans(len(texts), batch_size)
        self.out: Any = None
        self._n = len(texts)
        self._lock = threading.Lock()
        self._core, self._texts, self._model, self._fields = core, texts, model, fields
        # Validate once, up front: a bad field fails before any request is sent.
        embeddings_body(self._body(0, 0))
        self.bar = _Progress(len(texts), progress)

    def _body(self, start: int, stop: int) -> dict[str, Any]:
        return {"encoding_format": "base64", **self._fields,
                "input": list(self._texts[start:stop]), "model": self._model}

    def request(self, start: int, stop: int) -> PreparedRequest:
        return generate_request(self._core, embeddings_body(self._body(start, stop)), self.opts)

    def done(self, start: int, stop: int, resp: Any) -> None:
        self._write(start, stop, interpret(resp, _raw))
        self.bar.update(stop - start)

    def _write(self, start: int, stop: int, body: Any) -> None:
        n = stop - start
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != n:
            raise ResponseValidationError(f"$.data: expected {n} embeddings")
        seen = bytearray(n)
        for pos, item in enumerate(data):
            idx = item.get("index", pos) if isinstance(item, dict) else None
            if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < n or seen[idx]:
                raise ResponseValidationError(f"$.data[{pos}].index: {idx!r} is out of range "
                                              f"or repeated")
            seen[idx] = 1
            try:
                row = _decode.vector(self.np, item.get("embedding"))
            except (ValueError, TypeError) as exc:
                raise ResponseValidationError(f"$.data[{pos}].embedding: {exc}") from None
            with self._lock:
                if self.out is None:
                    self.out = self.np.empty((self._n, row.shape[0]), dtype=self.np.float32)
            if row.ndim != 1 or row.shape[0] != self.out.shape[1]:
                raise ResponseValidationError(
                    f"$.data[{pos}].embedding: {row.shape[0]} dimensions, "
                    f"expected {self.out.shape[1]}")
            self.out[start + idx] = row

    def result(self) -> Any:
        return self.out if self.out is not None else self.np.zeros((0, 0), self.np.float32)


def embed_many(core: EmbedRouterCore, texts: Sequence[str], model: str, *,
               batch_size: int = 128, concurrency: int = 4, progress: bool = False,
               options: RequestOptions | None = None, **fields: Any) -> Any:
    """Embed ``texts`` in order; returns an (n, d) float32 array. The first failure (after
    retries) cancels the batches not yet started and is raised."""
    job = _Job(core, texts, model, batch_size, concurrency, progress, options, fields)
    core.client  # noqa: B018 - create the shared client before the threads start

    def run(start: int, stop: int) -> None:
        job.done(start, stop, core.send(job.request(start, stop), job.retry))

    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            futures = [pool.submit(run, a, b) for a, b in job.spans]
            try:
                for fut in as_completed(futures):
                    fut.result()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    finally:
        job.bar.close()
    return job.result()


async def embed_many_async(core: EmbedRouterCore, texts: Sequence[str], model: str, *,
                           batch_size: int = 128, concurrency: int = 4, progress: bool = False,
                           options: RequestOptions | None = None, **fields: Any) -> Any:
    """The async twin of ``embed_many``: ``concurrency`` workers share the batches."""
    job = _Job(core, texts, model, batch_size, concurrency, progress, options, fields)
    pending = iter(job.spans)

    async def worker() -> None:
        for start, stop in pending:
            job.done(start, stop, await core.send_async(job.request(start, stop), job.retry))

    workers = [asyncio.ensure_future(worker())
               for _ in range(min(concurrency, len(job.spans)))]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    finally:
        job.bar.close()
    return job.result()
