"""Counters shared by every instance through Redis: one Lua script per step, one round trip.

Several ``embedrouter serve`` processes pointed at the same Redis (and the same database)
enforce one balance, one limit per key and one rate window per scope between them: a claim is
checked and applied inside Redis, atomically, so limits never multiply by the instance count.

If Redis cannot be reached, claims fail with a 503 (nothing is served unmetered) and the error
is logged and counted; a settle that fails after its charge was committed leaves the hold in
Redis, and the reclaimer (any instance, every ``reclaim_every_s``) applies it from the ledger
later: nothing is lost or charged twice.

Settles run behind the response, gathered into one script call per batch
(``settle_behind``): the charge is already durable in the ledger, and until its settle lands
the hold keeps its whole amount counted, so a late settle can only refuse early, never let a
budget be overspent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from embedrouter.accounts import redis_lua
from embedrouter.accounts.counters import Claim, Hold, Ledger, Refused, rate_name
from embedrouter.accounts.redis_wire import Script, ScriptClient
from embedrouter.errors import ServiceUnavailable

log = logging.getLogger("embedrouter.accounts")

# How long a settled hold's done marker lives. It stops a second settle of the same hold by
# someone who learned of it before the first landed: a reclaimer that read the hold from the
# holds set (it then spends one database read and one script call on it), or the instance's
# own settle right behind a reclaim (sent as its commit returns, at most a Redis timeout
# late). Both take seconds; a marker outliving that is memory only, one key (~120 bytes) per
# request: at a week (this once was) 100 requests a second kept ~7 GB in Redis. Should an
# actor ever come later than this, its settle counts a charge twice in the counters, never in
# the ledger: they then refuse early by that amount, never overspend.
DONE_TTL_S = 900
KEY_WINDOW_GRACE_S = 86400  # a key window's counter outlives its window by this much
RECLAIM_BATCH = 100
# Claims a script call carries at most (a larger turn's claims go in several calls).
CLAIM_BATCH = 256
UNAVAILABLE = "The credit and rate-limit counters are unavailable; try again shortly"


class GenerationLookup(Protocol):
    async def get_generation(self, generation_id: str) -> Any: ...


class CountersUnavailable(ServiceUnavailable):
    """Redis did not answer: refuse rather than serve unmetered (503)."""

    def __init__(self) -> None:
        super().__init__(UNAVAILABLE)


class RedisCounters:
    def __init__(self, url: str, ledger: Ledger, generations: GenerationLookup, *,
                 prefix: str = "embedrouter:", on_error: Callable[[], None] | None = None,
                 socket_timeout_s: float = 2.0, max_connections: int = 64) -> None:
        # Blocking: a burst waits (bounded) for a pooled connection instead of failing with
        # "too many connections" while Redis itself is fine.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=socket_timeout_s,
            socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s,
            decode_responses=True)
        self._redis = aioredis.Redis(connection_pool=pool)
        self._ledger = ledger
        self._generations = generations
        self._p = prefix
        # Names used by every claim and settle, built once.
        self._acct = f"{prefix}acct"
        self._holds = f"{prefix}holds"
        self._on_error = on_error
        # The per-request calls (claim, settle) go through the lean client: redis.asyncio costs
        # several times its CPU per call (bench/redis_client_bench.py).
        self._wire = ScriptClient(url, timeout_s=socket_timeout_s)
        self._claim = Script(redis_lua.CLAIM)
        self._settle = Script(redis_lua.SETTLE)
        self._seed = self._redis.register_script(redis_lua.SEED)
        self._release = self._redis.register_script(redis_lua.RELEASE)
        self._confirm = self._redis.register_script(redis_lua.CONFIRM)
        self._last_logged = 0.0
        self.errors = 0  # for /metrics
        self._settles: list[tuple[str, int, int, str]] = []
        self._claims: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._claim_calls: set[asyncio.Task[None]] = set()
        self.claim_calls = 0  # script calls that carried claims, and the claims they carried
        self.claims = 0
        self._settler: asyncio.Task[None] | None = None

    def _failed(self, exc: BaseException, what: str) -> CountersUnavailable:
        self.errors += 1
        if self._on_error is not None:
            self._on_error()
        now = time.monotonic()
        if now - self._last_logged > 5.0:  # one line per burst, not one per request
            self._last_logged = now
            log.error("Redis unavailable (%s failed: %s); metered requests get 503 until it "
                      "answers again", what, type(exc).__name__)
        return CountersUnavailable()

    async def _call(self, what: str, work: Awaitable[Any]) -> Any:
        try:
            return await work
        except (RedisError, OSError) as exc:
            raise self._failed(exc, what) from exc

    def _kw(self, key_hash: str, window_id: str) -> str:
        return f"{self._p}kw:{key_hash}:{window_id}"

    async def start(self) -> None:
        await self._call("ping", self._redis.ping())

    async def _seed_acct(self) -> None:
        spent = await self._ledger.spent_total()
        await self._call("seed", self._seed(keys=[self._acct], args=[spent, 0]))

    async def _seed_kw(self, claim: Claim) -> None:
        window = claim.key_window
        assert window is not None
        spent = await self._ledger.spent_since(claim.key_hash, window.start_ms)
        ttl = 0 if window.end_ms is None else \
            max(1, (window.end_ms - int(time.time() * 1000)) // 1000 + KEY_WINDOW_GRACE_S)
        await self._call("seed", self._seed(keys=[self._kw(claim.key_hash, window.id)],
                                            args=[spent, ttl]))

    async def claim(self, claim: Claim) -> Hold:
        limited = claim.key_limit is not None and claim.key_window is not None
        kw = self._kw(claim.key_hash, claim.key_window.id) if limited and claim.key_window \
            else ""
        names = tuple(f"{self._p}rl:{rate_name(s, claim.minute)}" for s in claim.scopes)
        args: list[Any] = [len(names), claim.amount, 1 if claim.credits is not None else 0,
                           claim.credits or 0, claim.key_limit if limited else -1,
                           claim.tokens, claim.expires_ms, claim.hold_id, claim.reset_ms, kw]
        for name, s in zip(names, claim.scopes, strict=True):
            args += [name, -1 if s.rpm is None else s.rpm, -1 if s.tpm is None else s.tpm]
        for _ in range(3):  # at most: seed the account, seed the key window, claim
            out = await self._claim_in_batch(args)
            if out[0] == 1:
                return Hold(claim.hold_id, claim.amount, claim.tokens, claim.key_hash,
                            claim.key_window.id if limited and claim.key_window else None,
                            names)
            if out[0] == 0:
                raise Refused(str(out[1]), int(out[2]), int(out[3]), int(out[4]))
            if out[0] == -1:
                await self._seed_acct()
            else:
                await self._seed_kw(claim)
        raise CountersUnavailable()

    def _claim_in_batch(self, args: list[Any]) -> asyncio.Future[Any]:
        """Queue one claim's arguments; the claims queued in this turn of the event loop go to
        Redis as one script call, sent after the turn (the way PostgresStore.get_key shares
        its reads): one round trip, one reply and one script run for all of them."""
        fut = asyncio.get_running_loop().create_future()
        if not self._claims:
            asyncio.get_running_loop().call_soon(self._send_claims)
        self._claims.append((args, fut))
        return fut

    def _send_claims(self) -> None:
        batch, self._claims = self._claims, []
        for start in range(0, len(batch), CLAIM_BATCH):
            task = asyncio.ensure_future(self._run_claims(batch[start:start + CLAIM_BATCH]))
            self._claim_calls.add(task)
            task.add_done_callback(self._claim_calls.discard)

    async def _run_claims(self, batch: list[tuple[list[Any], asyncio.Future[Any]]]) -> None:
        args: list[Any] = [self._p]
        for claim_args, _ in batch:
            args += claim_args
        try:
            outs = await self._wire.evalsha(self._claim, [self._acct, self._holds], args)
            self.claim_calls += 1
            self.claims += len(batch)
            for (_, fut), out in zip(batch, outs, strict=True):
                if not fut.done():  # its request was cancelled meanwhile
                    fut.set_result(out)
        except (RedisError, OSError) as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(self._failed(exc, "claim"))
        finally:
            # Cancelled (shutdown), or a reply of another shape: nobody may wait forever.
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(CountersUnavailable())

    async def confirm(self, hold: Hold, expires_ms: int) -> bool:
        return bool(await self._call("confirm", self._confirm(
            keys=[self._holds, f"{self._p}hold:{hold.id}"], args=[hold.id, expires_ms])))

    def _settle_args(self, settles: list[tuple[str, int, int, str]]) -> list[Any]:
        args: list[Any] = [DONE_TTL_S, self._p]
        for hold_id, cost, tokens, kw in settles:
            args += [hold_id, cost, tokens, kw]
        return args

    async def _settle_script(self, hold_id: str, cost: int, tokens: int, kw: str) -> None:
        await self._call("settle", self._wire.evalsha(
            self._settle, [self._acct, self._holds],
            self._settle_args([(hold_id, cost, tokens, kw)])))

    async def settle(self, hold: Hold, cost: int, tokens: int) -> None:
        kw = self._kw(hold.key_hash, hold.window_id) if hold.window_id else ""
        await self._settle_script(hold.id, cost, tokens, kw)

    def settle_behind(self, hold: Hold, cost: int, tokens: int) -> None:
        """``settle`` without waiting: queued, and sent with the others queued meanwhile in one
        script call."""
        kw = self._kw(hold.key_hash, hold.window_id) if hold.window_id else ""
        self._settles.append((hold.id, cost, tokens, kw))
        if self._settler is None or self._settler.done():
            self._settler = asyncio.create_task(self._flush_settles())

    async def _flush_settles(self) -> None:
        while self._settles:
            batch, self._settles = self._settles[:RECLAIM_BATCH], self._settles[RECLAIM_BATCH:]
            try:
                await self._wire.evalsha(self._settle, [self._acct, self._holds],
                                         self._settle_args(batch))
            except (RedisError, OSError) as exc:
                # The charges are in the ledger: the reclaimer settles these holds from it once
                # they expire. Counting and logging is all that is left to do here.
                self._failed(exc, "settle")

    async def settled(self) -> None:
        """Return once every settle queued so far has been sent."""
        while self._settler is not None and not self._settler.done():
            await asyncio.shield(self._settler)

    async def release(self, hold: Hold) -> None:
        await self._call("release", self._release(
            keys=[self._acct, self._holds, f"{self._p}hold:{hold.id}"], args=[hold.id]))

    async def reclaim(self, now_ms: int | None = None) -> int:
        """Undo the holds past their expiry (their instance died mid-request).

        A hold whose charge reached the ledger is settled from it; one without a charge is
        released. Returns how many holds were reclaimed.
        """
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        ids = await self._call("reclaim", self._redis.zrangebyscore(
            self._holds, "-inf", now_ms, start=0, num=RECLAIM_BATCH))
        for hold_id in ids:
            charged = await self._generations.get_generation(hold_id)
            if charged is not None:
                await self._settle_script(hold_id, charged.cost_nanos, -1, "")
            else:
                await self._call("release", self._release(
                    keys=[self._acct, self._holds, f"{self._p}hold:{hold_id}"],
                    args=[hold_id]))
        if ids:
            log.warning("reclaimed %d expired reservations", len(ids))
        return len(ids)

    async def run_reclaimer(self, every_s: float) -> None:
        """Reclaim forever (a background task of each instance); failures are logged."""
        while True:
            with contextlib.suppress(ServiceUnavailable):
                await self.reclaim()
            await asyncio.sleep(every_s)

    async def snapshot(self) -> dict[str, int]:
        """The account counter as Redis holds it (for tests and ``/metrics``)."""
        raw = await self._call("read", self._redis.hgetall(self._acct))
        return {k: int(v) for k, v in raw.items()}

    async def close(self) -> None:
        await self.settled()
        await self._wire.close()
        await self._redis.aclose()
        await self._redis.connection_pool.disconnect()
