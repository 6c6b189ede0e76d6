"""The account statements both backends run, written once with ``?`` placeholders.

PostgreSQL's driver wants ``%s``: :func:`pg` converts. Keeping one copy of each statement means
the two backends cannot drift apart in what they compute (the same suites run on both).
"""

from __future__ import annotations

import time
from typing import Any

from embedrouter.store.migrations import (
    ACCOUNT_TABLE,
    GENERATIONS_TABLE,
    GRANTS_TABLE,
    KEYS_TABLE,
)
from embedrouter.store.records import KEY_UPDATE_FIELDS, GenerationRecord, KeyRecord

KEY_COLUMNS = ("key_hash, label, is_management, disabled, created_at, display, "
               "limit_nanos, limit_reset, rpm, tpm, updated_at, cache_policy")
GEN_COLUMNS = ("id, key_hash, model, upstream_model, provider, tokens, cost_nanos, created_ms, "
               "latency_ms, cached_tokens")

INSERT_KEY = (f"INSERT INTO {KEYS_TABLE} ({KEY_COLUMNS}, inserted_ns) "
              "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
GET_KEY = f"SELECT {KEY_COLUMNS} FROM {KEYS_TABLE} WHERE key_hash = ?"
GET_KEYS = f"SELECT {KEY_COLUMNS} FROM {KEYS_TABLE} WHERE key_hash = ANY(?)"  # PostgreSQL
LIST_KEYS = (f"SELECT {KEY_COLUMNS} FROM {KEYS_TABLE} "
             "ORDER BY created_at, inserted_ns, key_hash")
DELETE_KEY = f"DELETE FROM {KEYS_TABLE} WHERE key_hash = ?"

CREDITS_TOTAL = f"SELECT credits_nanos FROM {ACCOUNT_TABLE} WHERE id = 1"
INSERT_GRANT = (f"INSERT INTO {GRANTS_TABLE} (id, amount_nanos, created_ms, note) "
                "VALUES (?, ?, ?, ?)")
ADD_CREDITS = (f"UPDATE {ACCOUNT_TABLE} SET credits_nanos = credits_nanos + ? WHERE id = 1 "
               "RETURNING credits_nanos")

GET_GENERATION = f"SELECT {GEN_COLUMNS} FROM {GENERATIONS_TABLE} WHERE id = ?"
SPENT_TOTAL = f"SELECT COALESCE(SUM(cost_nanos), 0) FROM {GENERATIONS_TABLE}"
SPENT_BY_KEY_SINCE = (f"SELECT COALESCE(SUM(cost_nanos), 0) FROM {GENERATIONS_TABLE} "
                      "WHERE key_hash = ? AND created_ms >= ?")
# All-time, day, week and month spend of one key in one pass over its rows.
KEY_USAGE = (
    "SELECT COALESCE(SUM(cost_nanos), 0), "
    "COALESCE(SUM(CASE WHEN created_ms >= ? THEN cost_nanos ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN created_ms >= ? THEN cost_nanos ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN created_ms >= ? THEN cost_nanos ELSE 0 END), 0) "
    f"FROM {GENERATIONS_TABLE} WHERE key_hash = ?"
)
USAGE_REPORT = (
    "SELECT key_hash, model, COUNT(*), COALESCE(SUM(tokens), 0), COALESCE(SUM(cost_nanos), 0) "
    f"FROM {GENERATIONS_TABLE} WHERE created_ms >= ? {{key_filter}}"
    "GROUP BY key_hash, model ORDER BY key_hash, model"
)


def update_key(fields: list[str]) -> str:
    """``UPDATE`` of the named key columns (from KEY_UPDATE_FIELDS only) and updated_at."""
    sets = ", ".join(f"{name} = ?" for name in [*fields, "updated_at"])
    return f"UPDATE {KEYS_TABLE} SET {sets} WHERE key_hash = ?"


def usage_report(by_key: bool) -> str:
    return USAGE_REPORT.format(key_filter="AND key_hash = ? " if by_key else "")


def pg(statement: str) -> str:
    """The same statement with PostgreSQL's placeholders (no statement here contains ``%``)."""
    return statement.replace("?", "%s")


def key_values(rec: KeyRecord) -> tuple[Any, ...]:
    """The INSERT_KEY parameters of a record."""
    return (rec.key_hash, rec.label, rec.is_management, rec.disabled, rec.created_at,
            rec.display, rec.limit_nanos, rec.limit_reset, rec.rpm, rec.tpm, rec.updated_at,
            rec.cache_policy, time.time_ns())


def gen_values(rec: GenerationRecord) -> tuple[Any, ...]:
    return (rec.id, rec.key_hash, rec.model, rec.upstream_model, rec.provider, rec.tokens,
            rec.cost_nanos, rec.created_ms, rec.latency_ms, rec.cached_tokens)


def gen_record(row: tuple[Any, ...]) -> GenerationRecord:
    gid, key_hash, model, upstream, provider, tokens, cost, created, latency, cached = row
    return GenerationRecord(id=gid, key_hash=key_hash, model=model, upstream_model=upstream,
                            provider=provider, tokens=int(tokens), cost_nanos=int(cost),
                            created_ms=int(created), latency_ms=int(latency),
                            cached_tokens=None if cached is None else int(cached))


def check_update(changes: dict[str, object]) -> list[str]:
    unknown = set(changes) - set(KEY_UPDATE_FIELDS)
    if unknown:
        raise ValueError(f"not key fields: {sorted(unknown)}")
    return list(changes)


def key_record(row: tuple[Any, ...]) -> KeyRecord:
    (key_hash, label, is_management, disabled, created_at, display, limit_nanos, limit_reset,
     rpm, tpm, updated_at, cache_policy) = row
    return KeyRecord(
        key_hash=str(key_hash),
        label=str(label),
        is_management=bool(is_management),  # SQLite stores booleans as 0/1
        disabled=bool(disabled),
        created_at=int(created_at),
        display=str(display),
        limit_nanos=None if limit_nanos is None else int(limit_nanos),
        limit_reset=limit_reset,
        rpm=None if rpm is None else int(rpm),
        tpm=None if tpm is None else int(tpm),
        updated_at=None if updated_at is None else int(updated_at),
        cache_policy=cache_policy,
    )
