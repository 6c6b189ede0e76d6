"""Dynamic batching of concurrent embedding requests onto one LocalModel.

Every request's sequences become queue items. One loop task owns the queue and forms batches;
one worker thread runs ``model.forward`` so the event loop never blocks on compute. Up to
``max_inflight_batches`` (default 2) batches are handed to the worker at once, so the next batch is
already waiting when the current one finishes, while the loop keeps accepting new requests.
With ``forwards`` > 1 that many worker threads run forwards at once (each on a session with
fewer intra-op threads, server.py): no thread then waits at another's barrier, which under
load at high concurrency gave more throughput per core (bench/README.md, Accounts).

A short request that finds the engine idle, and idle for a moment (the lone short request), is
computed right in ``embed`` on the event loop's own thread instead: the hop to the worker thread
and back costs ~0.7 ms, a tenth of such a forward here (see ``DEFAULT_INLINE_MAX_TOKENS``).

Batch selection is FIFO-anchored: the oldest queued item is always in the next batch, so no
request starves, and the rest of the batch comes from a window of the oldest queued items, sorted
by length, growing around the anchor's length while padding stays low (see ``grow_batch``).

A batch handed to the worker while it is busy stays open until the worker starts it: a request
that arrives meanwhile, with nothing queued ahead of it, joins it if its rows fit the same bounds
(``_Batch.absorb``). Clients that come back over a few milliseconds (each after its own round
trip to a key store or a rate counter) would otherwise be split: the first arrivals form the next
batch at once, the rest wait a whole forward for the one after, and from then on the clients run
as separate cohorts of small batches, each waking the loop during the others' forwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedrouter.arrivals import Arrivals
from embedrouter.engine.model import LocalModel
from embedrouter.errors import InvalidRequest, Overloaded, PayloadTooLarge, ServiceUnavailable
from embedrouter.histogram import (
    BATCH_SIZE_BOUNDS,
    BATCH_TOKEN_BOUNDS,
    ENGINE_SECONDS_BOUNDS,
    Histogram,
)
from embedrouter.timing import SPANS

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Request:
    future: asyncio.Future[np.ndarray]
    out: np.ndarray
    remaining: int  # rows not yet filled in
    queued: int  # items still waiting in the queue
    # Set on the loop thread once the future is done (cancelled or failed); the worker thread only
    # reads it, to skip rows nobody is waiting for.
    abandoned: bool = False
    # time.time_ns() marks, set only for a traced request (enqueued_ns != 0): queued, first
    # batch started (on the worker thread), last row done.
    enqueued_ns: int = 0
    started_ns: int = 0
    finished_ns: int = 0
    # Called on the loop thread the moment the last row is filled in, before the caller is
    # woken (embed's ``on_ready``).
    on_ready: Callable[[], None] | None = None


@dataclass(eq=False, slots=True)
class _Item:
    req: _Request
    row: int
    ids: Sequence[int]


class _Batch:
    """Rows handed to the worker thread. Open until the worker starts it: ``absorb`` (loop
    thread) adds a request's rows while they fit, ``seal`` (worker thread) ends that."""

    __slots__ = ("_lock", "items", "longest", "sealed")

    def __init__(self, items: list[_Item]) -> None:
        self.items = items
        self.longest = max(len(it.ids) for it in items)
        self.sealed = False
        self._lock = threading.Lock()

    def absorb(self, items: list[_Item], batcher: Batcher) -> bool:
        """Add all of ``items`` if the batch is still open and they fit its bounds (as
        ``grow_batch`` grows one, a row at a time); otherwise add none."""
        count, longest = len(self.items), self.longest
        if count + len(items) > batcher.max_batch_size:
            return False
        for it in items:
            padding, padded, after = grow_step(count, longest, len(it.ids))
            if not step_fits(count, after, padding, padded, max_tokens=batcher.max_batch_tokens,
                             max_padding=batcher.max_padding,
                             max_attention=batcher.max_batch_attention):
                return False
            count, longest = count + 1, after
        with self._lock:
            if self.sealed:
                return False
            self.items.extend(items)
            self.longest = longest
        return True

    def seal(self) -> list[_Item]:
        with self._lock:
            self.sealed = True
        return self.items


@dataclass
class _Stats:
    batches_run: int = 0
    items_run: int = 0
    tokens_run: int = 0
    padded_tokens_run: int = 0
    dropped_cancelled: int = 0
    failed_batches: int = 0
    idle_releases: int = 0
    inline_batches: int = 0  # of batches_run, those run on the event loop's thread
    absorbed_items: int = 0  # rows that joined a batch already handed to the worker
    arrival_waits: int = 0  # batches held for requests still on their way (_wait_for_arrivals)
    # EWMA of items/s over each batch's compute time: while the queue is full the worker runs
    # batches back to back, so this is the queue's drain rate, which Retry-After is built from.
    items_per_s: float = 0.0
    batch_size: Histogram = field(default_factory=lambda: Histogram(BATCH_SIZE_BOUNDS))
    batch_tokens: Histogram = field(default_factory=lambda: Histogram(BATCH_TOKEN_BOUNDS))
    engine_seconds: Histogram = field(default_factory=lambda: Histogram(ENGINE_SECONDS_BOUNDS))


# Below this many padded tokens a batch is cheap whatever its padding, and the fixed cost of one
# more ORT run (~1 ms, worth ~15 tokens of compute) would outweigh what splitting saves.
SMALL_BATCH_TOKENS = 256


# Attention activations grow with count x longest^2; this bounds them at what 32 sequences of
# 128 tokens (or 8 of 256) need. With fp32 and int8 loaded (int8 gets half, ACTIVATION_FACTOR) the
# server peaked at 359 MB over the corpus at c = 32 in either order of precisions, against
# 467-569 MB at 64 x 128 (bench/README.md, precision_rss.py), at no cost in throughput: per token,
# 16 to 64 x 128 and 4 to 16 x 256 cost the same within 15% on CPU, the smaller batches less.
DEFAULT_MAX_BATCH_ATTENTION = 32 * 128 * 128


# After this long with nothing queued or running, the model hands its idle memory back (see
# LocalModel.release_memory). Long enough that a steady trickle of requests never pays for it,
# short enough that RSS is back to its resting size soon after a burst.
DEFAULT_IDLE_RELEASE_S = 1.0


# A request of at most this many padded tokens (count x longest) may be computed on the event
# loop's thread when it is the only work (see Batcher._lone). Through the worker thread it costs
# ~0.7 ms more than the forward alone (the queue, the loop task, two thread wake-ups, the
# future): 6.4 ms against 5.7 for a 12-token fp32 forward on the 2-core AVX2 VM, 5.9 inline
# (bench/README.md, short_path.py). The bound keeps the loop held only a few ms: 32 tokens
# took 13 ms (fp32) and 8 ms (int8) at p50 on that VM, ~3x less on a Zen 4; past that the saving
# is a shrinking share of the forward.
DEFAULT_INLINE_MAX_TOKENS = 32


# ... and only once this long has passed since the last forward ended. Requests that arrived
# while a forward held the loop (or behind one on the worker) reach the batcher within a fraction
# of a millisecond of its end; they go to the worker, where they batch together and leave the
# loop free to read the next ones, instead of running one by one on the loop.
INLINE_QUIET_S = 0.002
# ... or this long when that forward served a wave of at least INLINE_WAVE_REQUESTS requests. Their
# clients come back over the next milliseconds (the network, parsing, and with accounting on
# each response first waits for its charge's group commit); an inline forward then would hold
# up every one of them behind the loop for the sake of ~0.7 ms to one request, and leave them a
# batch apart from it from then on. Seen under load at c = 32 with accounting on: 27 inline
# forwards of one sequence and 39 of two in 2,000 requests, and ~110 us of forward compute a
# request more than with accounting off (bench/README.md, Accounts).
INLINE_WAVE_REQUESTS = 4
INLINE_AFTER_WAVE_S = 0.05


# How long a batch for an idle worker may wait for requests still in their key read or
# admission claim (embedrouter/arrivals.py); also never more than half the last forward, so a
# short forward is not held up longer than the wait it would save. A Redis claim or a shared
# PostgreSQL key read takes 0.3-1.4 ms at p50 under load here, a few ms at p99: past this the
# batch starts with what it has, and the late ones join the next. At c = 32 with PostgreSQL +
# Redis accounting this turned two cohorts of ~16 sequences a forward into one of ~30, 1.10x the
# requests a second (bench/README.md, Accounts).
ARRIVAL_WAIT_MAX_S = 0.003

# Retry-After bounds: below 1 s a refused caller would hammer a queue that cannot have drained;
# beyond 60 s the estimate is too stale to be worth more than "come back in a minute".
RETRY_AFTER_MIN_S = 1
RETRY_AFTER_MAX_S = 60


def retry_after_seconds(items_ahead: int, items_per_s: float) -> int:
    """Seconds until the ``items_ahead`` queued items drain at ``items_per_s``, rounded up and
    clamped to [RETRY_AFTER_MIN_S, RETRY_AFTER_MAX_S]; the minimum when no rate is known yet.

    Items ahead, not just the overflow: every refused caller told "the overflow's worth" (always
    ~1 s) would come back together into a queue that is still full.
    """
    if items_ahead <= 0 or not items_per_s > 0 or math.isinf(items_per_s):
        return RETRY_AFTER_MIN_S
    return max(RETRY_AFTER_MIN_S, min(RETRY_AFTER_MAX_S, math.ceil(items_ahead / items_per_s)))


def grow_step(count: int, longest: int, n: int) -> tuple[int, int, int]:
    """Adding a row of length ``n`` to ``count`` rows padded to ``longest``: the padding it
    adds, the padded tokens it adds, and the batch's longest after."""
    if n <= longest:
        return longest - n, longest, longest
    return (n - longest) * count, n + (n - longest) * count, n


def step_fits(count: int, longest: int, padding: int, padded: int, *, max_tokens: int,
              max_padding: float, max_attention: int | None) -> bool:
    """Whether a batch of ``count`` rows may take one more, becoming ``longest`` long, when
    that adds ``padding`` padded-but-empty tokens out of ``padded`` padded tokens."""
    size = count + 1
    return (longest * size <= max_tokens
            and (max_attention is None or longest * longest * size <= max_attention)
            and (longest * size <= SMALL_BATCH_TOKENS or padding <= max_padding * padded))


def grow_batch(lengths: Sequence[int], anchor: int, *, max_size: int, max_tokens: int,
               max_padding: float, max_attention: int | None = None) -> tuple[int, int]:
    """Inclusive range of the ascending ``lengths`` that forms a batch around ``anchor``.

    Grows one neighbour at a time, taking whichever side adds less padding, while the padded size
    (count x longest) stays within ``max_tokens`` and ``max_size`` and each step's padding is at
    most ``max_padding`` of the padded tokens it adds (small batches excepted). Capping every
    step caps the whole batch too, and keeps one very short item from riding on a tight batch.
    On CPU, throughput per token is nearly flat from 8 to 64 sequences per batch, so padding is
    what costs, not the number of batches.
    """
    lo = hi = anchor
    longest = lengths[anchor]
    while hi - lo + 1 < max_size:
        count = hi - lo + 1
        # (padding added, padded tokens added, longest after, takes the shorter side)
        options = []
        if lo > 0:
            options.append((*grow_step(count, longest, lengths[lo - 1]), True))
        if hi + 1 < len(lengths):
            options.append((*grow_step(count, longest, lengths[hi + 1]), False))
        feasible = [o for o in options
                    if step_fits(count, o[2], o[0], o[1], max_tokens=max_tokens,
                                 max_padding=max_padding, max_attention=max_attention)]
        if not feasible:
            break
        _, _, longest, takes_shorter = min(feasible)
        if takes_shorter:
            lo -= 1
        else:
            hi += 1
    return lo, hi


def _add_spans(spans: list[tuple[str, int, int]] | None, req: _Request) -> None:
    """A traced request's time queued and computing, for the API layer's trace."""
    if spans is not None and req.started_ns:
        spans.append(("queue", req.enqueued_ns, req.started_ns))
        spans.append(("inference", req.started_ns, req.finished_ns))


class Batcher:
    """Shares one model between concurrent asyncio callers by batching their sequences.

    ``max_batch_tokens`` bounds count x longest (padded tokens) per forward,
    ``max_batch_attention`` count x longest^2 (the attention memory), ``max_batch_size`` the
    count; ``max_queue_items`` bounds sequences waiting (not yet handed to the worker) before
    ``embed`` answers Overloaded; ``window_items`` is how many of the oldest waiting sequences a
    batch may be picked from, and ``max_padding`` the padding share each addition may bring.
    ``inline_max_tokens`` bounds the lone batch run on the event loop's thread (0: never), and
    ``inline_quiet_s`` is how long after the last forward ended that may happen.
    ``arrivals`` counts requests on their way to a provider (embedrouter/arrivals.py): while
    any is, a batch for an idle worker waits up to ``arrival_wait_s`` for them.
    """

    def __init__(self, model: LocalModel, *, max_batch_tokens: int = 16384,
                 max_batch_size: int = 64, max_queue_items: int = 4096,
                 max_inflight_batches: int = 2, window_items: int = 1024,
                 max_padding: float = 0.2,
                 max_batch_attention: int = DEFAULT_MAX_BATCH_ATTENTION,
                 idle_release_s: float | None = DEFAULT_IDLE_RELEASE_S,
                 inline_max_tokens: int = DEFAULT_INLINE_MAX_TOKENS,
                 inline_quiet_s: float = INLINE_QUIET_S, forwards: int = 1,
                 arrivals: Arrivals | None = None,
                 arrival_wait_s: float = ARRIVAL_WAIT_MAX_S) -> None:
        if max_batch_tokens < model.max_seq_length:
            raise ValueError(f"max_batch_tokens ({max_batch_tokens}) must fit one sequence of "
                             f"max_seq_length ({model.max_seq_length})")
        if min(max_batch_size, max_queue_items, max_inflight_batches, forwards) < 1:
            raise ValueError("max_batch_size, max_queue_items, max_inflight_batches, forwards "
                             "must be >= 1")
        if not 0.0 <= max_padding <= 1.0:
            raise ValueError("max_padding must lie in [0, 1]")
        if inline_max_tokens < 0:
            raise ValueError("inline_max_tokens must be >= 0")
        self.model = model
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self.max_queue_items = max_queue_items
        self.forwards = forwards
        self.max_inflight_batches = max(max_inflight_batches, forwards)
        self.window_items = max(window_items, max_batch_size)
        self.max_padding = max_padding
        # Never below one full-length sequence, or such a sequence could never run.
        self.max_batch_attention = max(max_batch_attention, model.max_seq_length ** 2)
        self._queue: deque[_Item] = deque()
        self._queued = 0  # live items in the queue (abandoned ones excluded)
        self._abandoned_in_queue = 0
        self._stats = _Stats()
        self._inflight: set[asyncio.Future[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._closed = False
        self.idle_release_s = idle_release_s
        self._dirty = False  # a batch ran since memory was last released
        self.inline_max_tokens = inline_max_tokens
        self.inline_quiet_s = inline_quiet_s
        self._last_forward_end = -math.inf  # time.perf_counter() when the last batch finished
        self._arrivals = 0  # embed calls so far: tells a lone request whether another came
        self._releasing = False  # release_memory is running on the worker thread
        self._last_batch_requests = 0  # requests served by the last forward (_inline_quiet)
        self._open: _Batch | None = None  # the last batch handed to the worker, until it ends
        self._on_way = arrivals  # requests accepted by the server, not yet at a provider
        self.arrival_wait_s = arrival_wait_s
        self._last_forward_s = 0.0  # how long the last forward took

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._closed:
            raise ServiceUnavailable("The local model is shutting down")
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(self.forwards, thread_name_prefix="embedrouter-engine")
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(self.max_inflight_batches)
        self._task = self._loop.create_task(self._run(), name="embedrouter-batcher")

    async def close(self) -> None:
        """Fails queued requests, lets batches already handed to the worker finish, stops."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fail_queued(ServiceUnavailable("The local model is shutting down"))
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    # -- public ------------------------------------------------------------------------------

    async def embed(self, seqs: list[list[int]], *,
                    on_ready: Callable[[], None] | None = None) -> np.ndarray:
        """Embeddings of wrapped, truncated id sequences, (len(seqs), dim) float32 in order.

        ``on_ready`` is called on the event loop once every row is computed, before this
        returns: a forward's callbacks all run before any of its callers wakes (the ledger's
        group commit starts there, ahead of the work each caller then does)."""
        if self._task is None:
            await self.start()
        if self._closed:
            raise ServiceUnavailable("The local model is shutting down")
        n = len(seqs)
        if n == 0:
            return np.empty((0, self.model.dim), dtype=np.float32)
        self._validate(seqs)
        if n > self.max_queue_items:
            raise PayloadTooLarge(f"{n} inputs in one request; the local model accepts at most "
                                  f"{self.max_queue_items}")
        self._arrivals += 1
        if self._lone(seqs):
            out = await self._embed_inline(seqs, on_ready)
            if out is not None:
                return out
            if self._closed:  # closed while it yielded: the queue is no longer served
                raise ServiceUnavailable("The local model is shutting down")
        if self._queued + n > self.max_queue_items:
            retry = self._retry_after()
            raise Overloaded(f"The local model queue is full ({self._queued} inputs waiting); "
                             f"retry in {retry} s", retry_after=retry)
        assert self._loop is not None and self._wakeup is not None
        fut: asyncio.Future[np.ndarray] = self._loop.create_future()
        req = _Request(fut, np.empty((n, self.model.dim), dtype=np.float32), remaining=n, queued=n,
                       on_ready=on_ready)
        spans = SPANS.get()
        if spans is not None:
            req.enqueued_ns = time.time_ns()
        fut.add_done_callback(lambda _f: self._on_done(req))
        items = [_Item(req, i, s) for i, s in enumerate(seqs)]
        # Nothing queued ahead: join the batch waiting for the worker, if it has not started.
        if not self._queue and self._open is not None and self._open.absorb(items, self):
            req.queued = 0
            self._stats.absorbed_items += n
        else:
            self._queue.extend(items)
            self._queued += n
            self._wakeup.set()
        # Cancelling the caller cancels ``fut``, which marks the request abandoned.
        out = await fut
        _add_spans(spans, req)
        return out

    def _lone(self, seqs: list[list[int]]) -> bool:
        """Whether ``seqs`` may be computed on this (the event loop's) thread: they are few
        padded tokens, nothing is queued, on the worker or being released, and no forward ended
        in the last ``inline_quiet_s``. So an inline forward never overlaps another forward or
        ``release_memory`` (the model runs one thing at a time, as with the worker alone)."""
        return (len(seqs) <= self.inline_max_tokens  # before the pass over a large request
                and 0 < len(seqs) * max(map(len, seqs)) <= self.inline_max_tokens
                and not (self._queued or self._inflight or self._releasing or self._closed)
                and time.perf_counter() - self._last_forward_end >= self._inline_quiet())

    def _inline_quiet(self) -> float:
        return (self.inline_quiet_s if self._last_batch_requests < INLINE_WAVE_REQUESTS
                else max(self.inline_quiet_s, INLINE_AFTER_WAVE_S))

    async def _embed_inline(self, seqs: list[list[int]],
                            on_ready: Callable[[], None] | None) -> np.ndarray | None:
        """The rows of a lone request computed here; None if it turned out not to be alone."""
        mark = self._arrivals
        # One loop iteration for requests that came in with this one: if any did, all of them
        # take the queue and batch together there.
        await asyncio.sleep(0)
        if self._arrivals != mark or not self._lone(seqs):
            return None
        assert self._loop is not None
        n = len(seqs)
        fut: asyncio.Future[np.ndarray] = self._loop.create_future()
        req = _Request(fut, np.empty((n, self.model.dim), dtype=np.float32), remaining=n, queued=0,
                       on_ready=on_ready)
        spans = SPANS.get()
        if spans is not None:
            req.enqueued_ns = time.time_ns()
        batch = [_Item(req, i, s) for i, s in enumerate(seqs)]
        try:
            result = self._compute(batch)
        except Exception as exc:
            self._fail(batch, exc)
        else:
            self._stats.inline_batches += 1
            self._deliver(batch, *result)
        out = fut.result()  # raises what the forward raised
        _add_spans(spans, req)
        return out

    def stats(self) -> dict[str, int | float]:
        s = self._stats
        return {
            "queue_items": self._queued,
            "inflight_batches": len(self._inflight),
            "batches_run": s.batches_run,
            "items_run": s.items_run,
            "tokens_run": s.tokens_run,
            "padded_tokens_run": s.padded_tokens_run,
            "dropped_cancelled": s.dropped_cancelled,
            "failed_batches": s.failed_batches,
            "items_per_s": round(s.items_per_s, 1),
            "idle_releases": s.idle_releases,
            "inline_batches": s.inline_batches,
            "absorbed_items": s.absorbed_items,
            "arrival_waits": s.arrival_waits,
        }

    def histograms(self) -> dict[str, Histogram]:
        """Per forward pass: sequences, real tokens, seconds of compute."""
        s = self._stats
        return {"batch_size": s.batch_size, "batch_tokens": s.batch_tokens,
                "engine_seconds": s.engine_seconds}

    # -- request bookkeeping -----------------------------------------------------------------

    def _validate(self, seqs: list[list[int]]) -> None:
        # A bad sequence would make forward fail for every request sharing its batch, so it is
        # refused here, before it can meet anyone else's items.
        lengths = list(map(len, seqs))
        if min(lengths) < 1 or max(lengths) > self.model.max_seq_length:
            raise InvalidRequest(f"Each token sequence must hold 1 to {self.model.max_seq_length} "
                                 "ids after truncation")
        lo, hi = min(map(min, seqs)), max(map(max, seqs))
        if lo < 0 or hi >= self.model.vocab_size:
            raise InvalidRequest(f"Token ids must lie in [0, {self.model.vocab_size})")

    def _on_done(self, req: _Request) -> None:
        """Future resolved: if rows are still queued, nobody wants them any more."""
        if req.remaining == 0 or req.abandoned:
            return
        req.abandoned = True
        self._queued -= req.queued
        self._abandoned_in_queue += req.queued
        if req.future.cancelled():
            self._stats.dropped_cancelled += req.queued
        req.queued = 0
        # A cancel storm must not let dead items pile up beyond the queue bound.
        if self._abandoned_in_queue > self.max_queue_items:
            self._queue = deque(it for it in self._queue if not it.req.abandoned)
            self._abandoned_in_queue = 0

    def _fail_queued(self, exc: BaseException) -> None:
        for item in self._queue:
            req = item.req
            # Marked first so that _on_done, which runs later, does not discount them again.
            req.abandoned = True
            req.queued = 0
            if not req.future.done():
                req.future.set_exception(exc)
        self._queue.clear()
        self._queued = 0
        self._abandoned_in_queue = 0

    def _retry_after(self) -> int:
        return retry_after_seconds(self._queued, self._stats.items_per_s)

    # -- batch formation ---------------------------------------------------------------------

    def _take_batch(self) -> list[_Item]:
        """Removes the next batch from the queue: the oldest item plus its nearest lengths."""
        window: list[_Item] = []
        while self._queue and len(window) < self.window_items:
            item = self._queue.popleft()
            if item.req.abandoned:
                self._abandoned_in_queue -= 1
                continue
            window.append(item)
        if not window:
            return []
        order = sorted(range(len(window)), key=lambda i: (len(window[i].ids), i))
        lo, hi = grow_batch([len(window[i].ids) for i in order], order.index(0),
                            max_size=self.max_batch_size, max_tokens=self.max_batch_tokens,
                            max_padding=self.max_padding,
                            max_attention=self.max_batch_attention)
        chosen = set(order[lo:hi + 1])
        # Whatever was not chosen goes back to the front, in arrival order.
        self._queue.extendleft(reversed([it for i, it in enumerate(window) if i not in chosen]))
        batch = [window[i] for i in order[lo:hi + 1]]
        for item in batch:
            item.req.queued -= 1
        self._queued -= len(batch)
        return batch

    # -- compute -----------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wakeup is not None and self._slots is not None
        try:
            while True:
                await self._slots.acquire()
                batch: list[_Item] = []
                while not batch:
                    while not self._queue:
                        self._wakeup.clear()
                        await self._wait_or_release()
                    if not self._inflight and self._on_way is not None and self._on_way.count:
                        await self._wait_for_arrivals(self._on_way)
                    batch = self._take_batch()
                self._submit(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here would otherwise leave every caller hanging
            log.exception("batcher loop crashed")
            self._closed = True
            self._fail_queued(exc)

    async def _wait_or_release(self) -> None:
        """Waits for new work; after an idle spell following a batch, releases memory once."""
        assert self._wakeup is not None and self._loop is not None
        if not self._dirty or self.idle_release_s is None:
            await self._wakeup.wait()
            return
        # Measured from the last forward's end, as inline forwards do not wake this task; while a
        # batch runs, a whole spell (its end does not wake this task either).
        idle_for = 0.0 if self._inflight else time.perf_counter() - self._last_forward_end
        if idle_for < self.idle_release_s:
            try:
                await asyncio.wait_for(self._wakeup.wait(), self.idle_release_s - idle_for)
                return
            except TimeoutError:
                pass
        # Another batch is still running, or an inline one ran meanwhile: not idle yet (the
        # caller waits again).
        if self._inflight or time.perf_counter() - self._last_forward_end < self.idle_release_s:
            return
        self._dirty = False
        # On the worker thread, so it never blocks the loop; while it runs, requests queue.
        self._releasing = True
        try:
            await self._loop.run_in_executor(self._executor, self.model.release_memory)
        except Exception:  # a failed clean-up must not take the batcher down with it
            log.exception("releasing idle model memory failed")
            return
        finally:
            self._releasing = False
        self._stats.idle_releases += 1

    async def _wait_for_arrivals(self, on_way: Arrivals) -> None:
        """The worker is idle and a batch could start, but requests are still on their way
        (in their key read or admission claim): give them up to ``arrival_wait_s``, and
        never more than half the last forward took, to join it (embedrouter/arrivals.py).
        Ends as soon as none is on its way or a batch is full."""
        wakeup = self._wakeup
        assert wakeup is not None
        deadline = time.perf_counter() + min(self.arrival_wait_s, self._last_forward_s / 2)
        waited = False
        try:
            while on_way.count and self._queued < self.max_batch_size:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                waited = True
                wakeup.clear()
                on_way.wake_at_zero(wakeup)  # or an arrival's own set() wakes it
                try:
                    await asyncio.wait_for(wakeup.wait(), left)
                except TimeoutError:
                    break
        finally:
            on_way.forget(wakeup)
        if waited:
            self._stats.arrival_waits += 1

    def _submit(self, items: list[_Item]) -> None:
        assert self._loop is not None
        batch = self._open = _Batch(items)
        fut = self._loop.run_in_executor(self._executor, self._start, batch)
        self._inflight.add(fut)
        fut.add_done_callback(lambda f: self._finished(batch, f))

    def _finished(self, batch: _Batch, fut: asyncio.Future[Any]) -> None:
        # Sealed again here: a future cancelled before its batch started must not take rows.
        if self._open is batch:
            self._open = None  # nothing to join, and its requests' rows are not kept alive
        self._finish(batch.seal(), fut)

    def _start(self, batch: _Batch) -> tuple[list[_Item], np.ndarray | None, float]:
        """Worker thread: close the batch to newcomers, then compute it."""
        return self._compute(batch.seal())

    def _compute(self, batch: list[_Item]) -> tuple[list[_Item], np.ndarray | None, float]:
        """Worker thread: forward for the rows someone still waits for."""
        live = [it for it in batch if not it.req.abandoned]
        if not live:
            return live, None, 0.0
        now_ns = 0
        for it in live:
            if it.req.enqueued_ns and not it.req.started_ns:
                it.req.started_ns = now_ns = now_ns or time.time_ns()
        started = time.perf_counter()
        out = self.model.forward([it.ids for it in live])
        return live, out, time.perf_counter() - started

    def _finish(self, batch: list[_Item], fut: asyncio.Future[Any]) -> None:
        """A batch came back from the worker thread."""
        self._inflight.discard(fut)
        assert self._slots is not None
        self._slots.release()
        exc = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
        if exc is not None:
            self._fail(batch, exc)
            return
        self._deliver(batch, *fut.result())

    def _fail(self, batch: list[_Item], exc: BaseException) -> None:
        self._last_forward_end = time.perf_counter()
        self._stats.failed_batches += 1
        # Only the requests in this batch see the error; the rest of the queue carries on.
        for req in {it.req for it in batch}:
            if not req.future.done():
                req.future.set_exception(exc)

    def _deliver(self, batch: list[_Item], live: list[_Item], out: np.ndarray | None,
                 seconds: float) -> None:
        """Rows of a finished forward to their requests, and its figures to the stats."""
        live_ids = {id(it) for it in live}
        for item in batch:
            if id(item) not in live_ids and item.req.future.cancelled():
                self._stats.dropped_cancelled += 1
        if out is None:
            return
        self._last_forward_end = time.perf_counter()
        self._last_batch_requests = len({id(it.req) for it in live})
        if not self._dirty:
            self._dirty = True
            # The loop may be waiting without a timeout (it was clean); wake it to start the
            # idle clock.
            assert self._wakeup is not None
            self._wakeup.set()
        stats = self._stats
        stats.batches_run += 1
        stats.items_run += len(live)
        lengths = [len(it.ids) for it in live]
        stats.tokens_run += sum(lengths)
        stats.padded_tokens_run += max(lengths) * len(live)
        stats.batch_size.observe(len(live))
        stats.batch_tokens.observe(sum(lengths))
        stats.engine_seconds.observe(seconds)
        self._last_forward_s = seconds
        if seconds > 0:
            rate = len(live) / seconds
            stats.items_per_s = rate if stats.items_per_s == 0 else \
                0.8 * stats.items_per_s + 0.2 * rate
        for row, item in enumerate(live):
            req = item.req
            if req.future.done():
                continue
            req.out[item.row] = out[row]
            req.remaining -= 1
            if req.remaining == 0:
                if req.enqueued_ns:
                    req.finished_ns = time.time_ns()
                if req.on_ready is not None:
                    try:
                        req.on_ready()
                    except Exception as exc:  # one request's hook must not strand the others
                        log.error("a computed request's callback failed: %s",
                                  type(exc).__name__)
                req.future.set_result(req.out)
