"""Numbered schema migrations, shared by SQLite and PostgreSQL.

Each migration runs once, inside one transaction together with the row that records it, so a
crash leaves the schema either before or after it. Statements also say ``IF NOT EXISTS`` so that
re-running one by hand is harmless. Append new migrations; never edit or renumber old ones.

The DDL is portable on purpose: BOOLEAN and BIGINT are native in PostgreSQL and map to
INTEGER affinity in SQLite, so both backends read the same columns with the same code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Every table starts with ``embedrouter_`` so that pointing the server at a shared database
# (PostgreSQL ``public`` schema, say) cannot collide with someone else's ``keys`` table.
VERSION_TABLE = "embedrouter_schema_version"
KEYS_TABLE = "embedrouter_keys"
MARKERS_TABLE = "embedrouter_markers"
ACCOUNT_TABLE = "embedrouter_account"
GRANTS_TABLE = "embedrouter_credit_grants"
GENERATIONS_TABLE = "embedrouter_generations"

CREATE_VERSION_TABLE = f"""
CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: its number, what it does, and the statements that do it."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "api keys, one-time markers",
        (
            f"""
            CREATE TABLE IF NOT EXISTS {KEYS_TABLE} (
                key_hash TEXT PRIMARY KEY,
                label TEXT NOT NULL,
                is_management BOOLEAN NOT NULL,
                disabled BOOLEAN NOT NULL DEFAULT FALSE,
                created_at BIGINT NOT NULL,
                display TEXT NOT NULL,
                -- Breaks the one-second ties of created_at, so listings keep insertion order.
                inserted_ns BIGINT NOT NULL DEFAULT 0
            )""",
            # One row per thing that must happen at most once per database (the bootstrap
            # key): the primary key makes concurrent "first" inserts collide instead of racing.
            f"""
            CREATE TABLE IF NOT EXISTS {MARKERS_TABLE} (
                name TEXT PRIMARY KEY,
                created_at BIGINT NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "key limits, credit ledger, generation records",
        (
            f"ALTER TABLE {KEYS_TABLE} ADD COLUMN limit_nanos BIGINT",
            f"ALTER TABLE {KEYS_TABLE} ADD COLUMN limit_reset TEXT",
            f"ALTER TABLE {KEYS_TABLE} ADD COLUMN rpm BIGINT",
            f"ALTER TABLE {KEYS_TABLE} ADD COLUMN tpm BIGINT",
            f"ALTER TABLE {KEYS_TABLE} ADD COLUMN updated_at BIGINT",
            # One row: the running total of every grant, updated in the grant's transaction,
            # so admission reads the balance's credit side with one primary-key lookup.
            f"""
            CREATE TABLE IF NOT EXISTS {ACCOUNT_TABLE} (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                credits_nanos BIGINT NOT NULL
            )""",
            f"INSERT INTO {ACCOUNT_TABLE} (id, credits_nanos) VALUES (1, 0)",
            f"""
            CREATE TABLE IF NOT EXISTS {GRANTS_TABLE} (
                id TEXT PRIMARY KEY,
                amount_nanos BIGINT NOT NULL,
                created_ms BIGINT NOT NULL,
                note TEXT NOT NULL DEFAULT ''
            )""",
            # A charge is a generation row: the primary key makes charging one request twice
            # impossible, and the account's spend is the sum of cost_nanos.
            f"""
            CREATE TABLE IF NOT EXISTS {GENERATIONS_TABLE} (
                id TEXT PRIMARY KEY,
                key_hash TEXT NOT NULL,
                model TEXT NOT NULL,
                upstream_model TEXT NOT NULL,
                provider TEXT NOT NULL,
                tokens BIGINT NOT NULL,
                cost_nanos BIGINT NOT NULL,
                created_ms BIGINT NOT NULL,
                latency_ms BIGINT NOT NULL
            )""",
            f"CREATE INDEX IF NOT EXISTS {GENERATIONS_TABLE}_key_time "
            f"ON {GENERATIONS_TABLE} (key_hash, created_ms)",
            f"CREATE INDEX IF NOT EXISTS {GENERATIONS_TABLE}_time "
            f"ON {GENERATIONS_TABLE} (created_ms)",
        ),
    ),
    Migration(
        3,
        "per-key vector cache policy",
        (
            # NULL: the default policy (follow the request's Cache-Control). No CHECK: the
            # values are validated on the way in, and a value this version does not know is
            # read as the strictest policy (cache/policy.py), never as an error.
            f"ALTER TABLE {KEYS_TABLE} ADD COLUMN cache_policy TEXT",
        ),
    ),
    Migration(
        4,
        "tokens served from the vector cache, per generation",
        # NULL: the cache took no part in that request (and every row from before this step).
        (f"ALTER TABLE {GENERATIONS_TABLE} ADD COLUMN cached_tokens BIGINT",),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer embedrouter than this one."""


def pending(applied: Iterable[int]) -> list[Migration]:
    """The migrations still to run, in order; refuses a database newer than this code."""
    done = set(applied)
    if done and max(done) > LATEST_VERSION:
        raise SchemaTooNew(
            f"the database schema is at version {max(done)}, newer than this embedrouter "
            f"understands ({LATEST_VERSION}); upgrade embedrouter"
        )
    return [m for m in MIGRATIONS if m.version not in done]
