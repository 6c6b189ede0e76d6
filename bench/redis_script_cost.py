"""Redis's own CPU per admission step: microseconds of ``EVALSHA`` per claim and per settled
hold (Redis's ``INFO commandstats``), for the Lua scripts of the tree on ``PYTHONPATH``.

    python bench/redis_script_cost.py [--claims 4000] [--batch 16] [--claim-batch 1,8]
                                      [--repeats 5]

What ``accounts_bench.py`` shows as part of "DB us": every metered request runs one claim, sent
with the other claims of its event-loop turn (``--claim-batch``: each size given is measured),
and its hold is settled in a batch of ``--batch``. Each claim carries a key limit and one rate
window, as there. Compare two trees by running it with ``PYTHONPATH=<tree>/src`` for each,
alternately (a shared VM drifts). Uses the local Redis (``EMBEDROUTER_BENCH_REDIS_URL``) under a
scratch prefix, removed afterwards; it resets Redis's command statistics.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics

import redis

from embedrouter.accounts import redis_lua

REDIS_URL = os.environ.get("EMBEDROUTER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
BIG = 10**15


def evalsha_us(r: redis.Redis) -> float:
    return float(r.info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0))


def one_round(r: redis.Redis, claims: int, batch: int, claim_batch: int) -> tuple[float, float]:
    """(us per claim, us per settled hold) for ``claims`` claims, ``claim_batch`` a call, then
    their settles."""
    p = f"erbench-lua:{secrets.token_hex(4)}:"
    claim, settle, seed = (r.script_load(redis_lua.CLAIM), r.script_load(redis_lua.SETTLE),
                           r.script_load(redis_lua.SEED))
    acct, kw, holds, window = p + "acct", p + "kw:k:1", p + "holds", p + "rl:key:k:1"
    try:
        r.evalsha(seed, 1, acct, 0, 0)
        r.evalsha(seed, 1, kw, 0, 0)
        ids = [f"gen-{i}" for i in range(claims)]
        pipe = r.pipeline(transaction=False)
        for i in range(0, claims, claim_batch):
            args: list[object] = [p]
            for hold_id in ids[i:i + claim_batch]:
                # one window; amount, enforce, credits, key limit, tokens, expires, id,
                # reset_ms, the key window, then the window's name, rpm and tpm.
                args += [1, 10, 1, BIG, BIG, 14, BIG, hold_id, 60_000, kw, window, 10**7, 10**9]
            pipe.evalsha(claim, 2, acct, holds, *args)
        start = evalsha_us(r)
        granted = [out for call in pipe.execute() for out in call]
        claimed = evalsha_us(r)
        if len(granted) != claims or any(out[0] != 1 for out in granted):
            raise RuntimeError(f"a claim was not granted: {granted[:3]}")
        pipe = r.pipeline(transaction=False)
        for i in range(0, claims, batch):
            args = [600, p]
            for hold_id in ids[i:i + batch]:
                args += [hold_id, 8, 10, kw]
            pipe.evalsha(settle, 2, acct, holds, *args)
        if sum(pipe.execute()) != claims:
            raise RuntimeError("not every hold was settled")
        settled = evalsha_us(r)
        if r.hgetall(acct) != {b"spent": str(8 * claims).encode(), b"held": b"0"}:
            raise RuntimeError(f"the account does not add up: {r.hgetall(acct)}")
        return (claimed - start) / claims, (settled - claimed) / claims
    finally:
        for key in r.scan_iter(match=f"{p}*", count=1000):
            r.delete(key)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claims", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=16, help="holds per settle call")
    ap.add_argument("--claim-batch", default="1,8", help="claims per call: comma-separated sizes")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    r = redis.Redis.from_url(REDIS_URL)
    try:
        for size in (int(x) for x in args.claim_batch.split(",")):
            runs = [one_round(r, args.claims, args.batch, size) for _ in range(args.repeats)]
            claim = [c for c, _ in runs]
            settle = [s for _, s in runs]
            print(f"Redis CPU per claim ({size} a call): min {min(claim):.1f} us, median "
                  f"{statistics.median(claim):.1f} us; per settled hold (batches of "
                  f"{args.batch}): min {min(settle):.1f} us, median "
                  f"{statistics.median(settle):.1f} us")
    finally:
        r.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
