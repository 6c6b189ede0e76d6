"""The rows the store keeps, as plain frozen values shared by every backend."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One API key as stored: never the key itself, only its SHA-256 hash.

    ``display`` is a recognisable but useless fragment (``sk-er-v1-3f9…a1c``) for lists and
    messages; ``created_at`` is unix seconds. ``limit_nanos`` is the spend limit in
    nano-dollars (None: unlimited), counted per ``limit_reset`` window (None: all time);
    ``rpm`` / ``tpm`` override the instance's default rate limits for this key.
    ``cache_policy`` is one of KEY_CACHE_POLICIES, None being ``default`` (the request's
    ``Cache-Control`` decides alone).
    """

    key_hash: str
    label: str
    is_management: bool
    disabled: bool
    created_at: int
    display: str
    limit_nanos: int | None = None
    limit_reset: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    updated_at: int | None = None
    cache_policy: str | None = None

    @property
    def can_embed(self) -> bool:
        """Whether inference endpoints may accept this key.

        OpenRouter's contract: management keys are for admin endpoints only, and inference
        endpoints do not accept them. The API layer enforces it; this only states the rule.
        """
        return not self.is_management and not self.disabled

    @property
    def can_manage(self) -> bool:
        """Whether admin endpoints (credits, key management) may accept this key."""
        return self.is_management and not self.disabled


@dataclass(slots=True)
class GenerationRecord:
    """One served embeddings request: the ledger's charge and what ``/generation`` shows.

    The charge is ``cost_nanos``; the account's spend is the sum of these rows, so a request
    is charged exactly when its row exists (the id is unique: never twice). Not frozen, unlike
    the other records: one is built per charged request, and a frozen dataclass's __init__
    costs about three times a plain one's. Nothing changes one after it is built.
    """

    id: str
    key_hash: str
    model: str  # the catalog slug asked for
    upstream_model: str  # the id the serving provider knows it by
    provider: str
    tokens: int
    cost_nanos: int
    created_ms: int  # admission time
    latency_ms: int
    # Of ``tokens``, those whose vectors came from the vector cache; None: the cache took no
    # part (off, or no-store), as in the response's usage.
    cached_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One line of a usage report: a key's requests to one model."""

    key_hash: str
    model: str
    requests: int
    tokens: int
    cost_nanos: int


# What a key may do with the vector cache; cache/policy.py says what each means. Here, beside
# the column, so that accounts (which validate it) and cache (which applies it) share one list.
KEY_CACHE_POLICIES = ("default", "no-cache", "no-store")

# Fields a key update may set (the management API's PATCH and the CLI).
KEY_UPDATE_FIELDS = ("label", "disabled", "limit_nanos", "limit_reset", "rpm", "tpm",
                     "cache_policy")
