"""JSON shapes of the account endpoints, as the `openrouter` SDK (1.3.84) parses them.

Fields this server has no notion of (BYOK, workspaces, guardrails, free tiers) are present with
their neutral value: the SDK requires them. Amounts are exact decimals on the wire.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from embedrouter.accounts.money import from_nanos
from embedrouter.accounts.usage import Balance, KeyUsage
from embedrouter.api.encode import decimal_number
from embedrouter.store import KeyRecord
from embedrouter.store.records import GenerationRecord


def _usd(nanos: int | None) -> Any:
    return None if nanos is None else decimal_number(from_nanos(nanos))


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _usage_fields(usage: KeyUsage) -> dict[str, Any]:
    zero = _usd(0)
    return {"usage": _usd(usage.total), "usage_daily": _usd(usage.daily),
            "usage_weekly": _usd(usage.weekly), "usage_monthly": _usd(usage.monthly),
            "byok_usage": zero, "byok_usage_daily": zero, "byok_usage_weekly": zero,
            "byok_usage_monthly": zero}


def _budget(key: KeyRecord, usage: KeyUsage) -> dict[str, Any] | None:
    if key.limit_nanos is None or usage.limit_remaining is None:
        return None
    return {"budget_id": None, "guardrail_id": None, "include_byok": False,
            "limit_usd": _usd(key.limit_nanos), "remaining_usd": _usd(usage.limit_remaining),
            "spend_usd": _usd(key.limit_nanos - usage.limit_remaining),
            "reset_interval": key.limit_reset, "resets_at": _iso(usage.resets_at_ms),
            "scope": "key_limit"}


def _cache_policy(key: KeyRecord) -> str:
    # Stored as None for the default; the wire always names it.
    return key.cache_policy or "default"


def rate_limits(key: KeyRecord, rpm: int | None, tpm: int | None) -> dict[str, Any]:
    """This server's own fields: the RPM / TPM in force for the key (None: unlimited)."""
    return {"requests_per_minute": rpm, "tokens_per_minute": tpm,
            "own_requests_per_minute": key.rpm, "own_tokens_per_minute": key.tpm}


def current_key(key: KeyRecord, usage: KeyUsage, limits: dict[str, Any]) -> dict[str, Any]:
    """``GET /key``."""
    budget = _budget(key, usage)
    rpm = limits["requests_per_minute"]
    return {"data": {
        "label": key.label, "limit": _usd(key.limit_nanos),
        "limit_remaining": _usd(usage.limit_remaining), "limit_reset": key.limit_reset,
        "include_byok_in_limit": False, **_usage_fields(usage),
        "is_free_tier": False, "is_management_key": key.is_management,
        "is_provisioning_key": key.is_management, "creator_user_id": None,
        "rate_limit": {"requests": -1 if rpm is None else rpm, "interval": "1m",
                       "note": "requests per minute for this key; -1: unlimited"},
        "expires_at": None, "allowed_data_regions": ["global"],
        "budgets": [budget] if budget else [], "effective_budget": budget,
        "free_model_daily_requests": {"limit": 0, "remaining": 0, "used": 0},
        "organization_id": None, "workspace_id": None, "rate_limits": limits,
        "cache_policy": _cache_policy(key),
    }}


def key_object(key: KeyRecord, usage: KeyUsage) -> dict[str, Any]:
    """One key in the ``/keys`` management API."""
    return {
        "hash": key.key_hash, "name": key.label, "label": key.label, "disabled": key.disabled,
        "limit": _usd(key.limit_nanos), "limit_remaining": _usd(usage.limit_remaining),
        "limit_reset": key.limit_reset, "include_byok_in_limit": False, **_usage_fields(usage),
        "created_at": _iso(key.created_at * 1000),
        "updated_at": _iso(key.updated_at * 1000 if key.updated_at else None),
        "creator_user_id": None, "external_user": None, "last_used_at": None,
        "workspace_id": "", "expires_at": None, "is_management_key": key.is_management,
        "requests_per_minute": key.rpm, "tokens_per_minute": key.tpm,
        "cache_policy": _cache_policy(key),
    }


def credits_view(b: Balance) -> dict[str, Any]:
    return {"data": {"total_credits": _usd(b.credits), "total_usage": _usd(b.spent)}}


def generation_view(g: GenerationRecord) -> dict[str, Any]:
    """``GET /generation``: the 42 fields the SDK requires; chat-only ones are null."""
    cost = _usd(g.cost_nanos)
    null_fields = ("upstream_id", "cache_discount", "upstream_inference_cost", "app_id",
                   "moderation_latency", "finish_reason", "native_finish_reason",
                   "service_tier", "native_tokens_completion_images", "native_tokens_reasoning",
                   "num_media_prompt", "num_input_audio_prompt",
                   "num_media_completion", "num_search_results", "num_fetches",
                   "web_search_engine", "external_user", "preset_id", "router",
                   "provider_responses", "user_agent", "http_referer", "workspace_id")
    return {"data": {
        **dict.fromkeys(null_fields),
        "id": g.id, "api_type": "embeddings", "model": g.model, "provider_name": g.provider,
        "total_cost": cost, "usage": cost, "is_byok": False, "created_at": _iso(g.created_ms),
        "latency": g.latency_ms, "generation_time": g.latency_ms, "streamed": False,
        "cancelled": False, "tokens_prompt": g.tokens, "tokens_completion": 0,
        "native_tokens_prompt": g.tokens, "native_tokens_completion": 0, "origin": "",
        "data_region": "global", "upstream_model": g.upstream_model,
        # Of tokens_prompt, those served from the vector cache (null: the cache took no part).
        "native_tokens_cached": g.cached_tokens,
    }}
