"""The account routes in the OpenAPI document: ``/key``, ``/credits``, ``/generation`` and the
``/keys`` management API, with the shapes ``api/account_views.py`` returns.

Response objects list every field the server sends as required: the views always send them all
(tests/api/test_openapi_doc.py holds the two together). Request bodies are closed
(``additionalProperties: false``) because the server refuses unknown fields.
"""

from __future__ import annotations

from typing import Any

from embedrouter.accounts.keys import KEY_PREFIX, MAX_LABEL_LENGTH
from embedrouter.accounts.money import MAX_NANOS, NANOS_PER_USD
from embedrouter.accounts.windows import LIMIT_RESETS
from embedrouter.api.openapi_parts import error_responses, json_response, ref
from embedrouter.store.records import KEY_CACHE_POLICIES

_USD = {"type": "number", "minimum": 0, "description": "USD, an exact decimal"}
_SIGNED_USD = {"type": "number", "description": "USD, an exact decimal"}
_USD_OR_NULL = {"type": ["number", "null"], "minimum": 0, "description": "USD; null: no limit"}
_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_STR_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}
_NUM_OR_NULL = {"type": ["number", "null"]}
_BOOL_OR_NULL = {"type": ["boolean", "null"]}
_RESET = {"enum": [*LIMIT_RESETS, None],
          "description": "The window the limit counts in (UTC; weeks start on Monday); "
                         "null: all time"}
_PER_MINUTE = {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_NANOS,
               "description": "null: the server's default"}
_REGIONS = {"enum": ["global", "europe", "us"]}
_USAGE = {name: _USD for name in (
    "usage", "usage_daily", "usage_weekly", "usage_monthly",
    "byok_usage", "byok_usage_daily", "byok_usage_weekly", "byok_usage_monthly")}


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    """An object sent with every one of ``properties`` (so all are required)."""
    out: dict[str, Any] = {"type": "object", "required": list(properties),
                           "properties": properties}
    if description:
        out["description"] = description
    return out


def _data(schema: str) -> dict[str, Any]:
    return _object({"data": ref(schema)})


_BUDGET = _object({
    "budget_id": _STR_OR_NULL, "guardrail_id": _STR_OR_NULL, "include_byok": {"type": "boolean"},
    "limit_usd": _USD, "remaining_usd": _USD, "spend_usd": _USD,
    "reset_interval": _RESET, "resets_at": _TIME_OR_NULL,
    "scope": {"enum": ["workspace_default_member", "workspace_default_key", "member",
                       "api_key", "workspace", "key_limit"]},
}, "The key's own spend limit, as a budget")

_RATE_LIMITS = _object({
    "requests_per_minute": _INT_OR_NULL, "tokens_per_minute": _INT_OR_NULL,
    "own_requests_per_minute": _INT_OR_NULL, "own_tokens_per_minute": _INT_OR_NULL,
}, "This server's own field: the limits in force for the key (null: unlimited) and the key's "
   "own settings (null: the server's default)")

_CURRENT_KEY = _object({
    "label": {"type": "string"}, "limit": _USD_OR_NULL, "limit_remaining": _USD_OR_NULL,
    "limit_reset": _RESET, "include_byok_in_limit": {"type": "boolean"}, **_USAGE,
    "is_free_tier": {"type": "boolean"}, "is_management_key": {"type": "boolean"},
    "is_provisioning_key": {"type": "boolean", "deprecated": True},
    "creator_user_id": _STR_OR_NULL,
    "rate_limit": _object({"requests": {"type": "integer", "minimum": -1},
                           "interval": {"type": "string"}, "note": {"type": "string"}},
                          "Deprecated by OpenRouter; here, the key's requests per minute "
                          "(-1: unlimited)"),
    "expires_at": _TIME_OR_NULL,
    "allowed_data_regions": {"type": "array", "items": _REGIONS},
    "budgets": {"type": "array", "items": ref("KeyBudget")},
    "effective_budget": {"anyOf": [ref("KeyBudget"), {"type": "null"}]},
    "free_model_daily_requests": _object({n: {"type": "integer", "minimum": 0}
                                          for n in ("limit", "remaining", "used")}),
    "organization_id": _STR_OR_NULL, "workspace_id": _STR_OR_NULL,
    "rate_limits": ref("KeyRateLimits"),
    "cache_policy": ref("CachePolicy"),
})

_API_KEY = _object({
    "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$",
             "description": "SHA-256 of the key: its id in /keys/{hash}"},
    "name": {"type": "string"}, "label": {"type": "string"}, "disabled": {"type": "boolean"},
    "limit": _USD_OR_NULL, "limit_remaining": _USD_OR_NULL, "limit_reset": _RESET,
    "include_byok_in_limit": {"type": "boolean"}, **_USAGE,
    "created_at": _TIME, "updated_at": _TIME_OR_NULL, "creator_user_id": _STR_OR_NULL,
    "external_user": _STR_OR_NULL, "last_used_at": _TIME_OR_NULL,
    "workspace_id": {"type": "string"}, "expires_at": _TIME_OR_NULL,
    "is_management_key": {"type": "boolean"},
    "requests_per_minute": _PER_MINUTE, "tokens_per_minute": _PER_MINUTE,
    "cache_policy": ref("CachePolicy"),
})

# Fields this server has no notion of are null; they keep OpenRouter's types.
_GENERATION = _object({
    "id": {"type": "string"}, "upstream_id": _STR_OR_NULL, "total_cost": _USD,
    "cache_discount": _NUM_OR_NULL, "upstream_inference_cost": _NUM_OR_NULL,
    "created_at": _TIME, "model": {"type": "string"}, "app_id": _INT_OR_NULL,
    "streamed": {"type": "boolean"}, "cancelled": {"type": "boolean"},
    "provider_name": {"type": "string"}, "latency": {"type": "integer", "minimum": 0},
    "moderation_latency": _NUM_OR_NULL, "generation_time": {"type": "integer", "minimum": 0},
    "finish_reason": _STR_OR_NULL, "native_finish_reason": _STR_OR_NULL,
    "service_tier": _STR_OR_NULL,
    "tokens_prompt": {"type": "integer", "minimum": 0},
    "tokens_completion": {"type": "integer", "minimum": 0},
    "native_tokens_prompt": {"type": "integer", "minimum": 0},
    "native_tokens_completion": {"type": "integer", "minimum": 0},
    **{n: _INT_OR_NULL for n in (
        "native_tokens_completion_images", "native_tokens_reasoning", "native_tokens_cached",
        "num_media_prompt", "num_input_audio_prompt", "num_media_completion",
        "num_search_results", "num_fetches")},
    "web_search_engine": _STR_OR_NULL, "origin": {"type": "string"}, "usage": _USD,
    "is_byok": {"type": "boolean"}, "external_user": _STR_OR_NULL, "preset_id": _STR_OR_NULL,
    "router": _STR_OR_NULL, "provider_responses": {"type": ["array", "null"]},
    "user_agent": _STR_OR_NULL, "http_referer": _STR_OR_NULL, "workspace_id": _STR_OR_NULL,
    "api_type": {"enum": ["completions", "embeddings", "rerank", "tts", "stt", "video", "image",
                          None]},
    "data_region": _REGIONS,
    "upstream_model": {"type": "string",
                       "description": "This server's own field: the id the provider knows the "
                                      "model by"},
})

_NAME = {"type": "string", "maxLength": MAX_LABEL_LENGTH,
         # Something besides whitespace, and no NUL (PostgreSQL text cannot hold one).
         "pattern": "^[^\\u0000]*\\S[^\\u0000]*$"}
_LIMIT = {"type": ["number", "null"], "minimum": 0, "maximum": MAX_NANOS / NANOS_PER_USD,
          "description": "Spend limit in USD, at most 9 decimals (nano-dollars); null: none"}
_LIMIT_FIELDS = {
    "limit": _LIMIT, "limit_reset": _RESET,
    "include_byok_in_limit": {"type": "boolean", "description": "Accepted; BYOK usage is 0 here"},
    "requests_per_minute": _PER_MINUTE, "tokens_per_minute": _PER_MINUTE,
    "workspace_id": {"type": "string", "description": "Accepted; this server has no workspaces"},
    "cache_policy": {"anyOf": [ref("CachePolicy"), {"type": "null"}],
                     "description": "The vector cache for this key's requests; null: default"},
}

SCHEMAS: dict[str, Any] = {
    "CachePolicy": {"enum": list(KEY_CACHE_POLICIES), "description":
                    "This server's own field: default (the request's Cache-Control decides), "
                    "no-cache (never read the vector cache), no-store (neither read nor write "
                    "it); the stricter of this and Cache-Control applies"},
    "KeyBudget": _BUDGET,
    "KeyRateLimits": _RATE_LIMITS,
    "CurrentKey": _CURRENT_KEY,
    "CurrentKeyResponse": _data("CurrentKey"),
    "CreditsResponse": _object({"data": _object({"total_credits": _SIGNED_USD,
                                                 "total_usage": _USD})}),
    "Generation": _GENERATION,
    "GenerationResponse": _data("Generation"),
    "ApiKey": _API_KEY,
    "ApiKeyResponse": _data("ApiKey"),
    "ApiKeyList": _object({"data": {"type": "array", "items": ref("ApiKey")}}),
    "CreatedApiKeyResponse": _object({
        "data": ref("ApiKey"),
        "key": {"type": "string", "pattern": f"^{KEY_PREFIX}[0-9a-f]{{64}}$",
                "description": "The key itself, sent this once only (it is stored hashed)"}}),
    "DeletedApiKeyResponse": _object({"deleted": {"const": True}}),
    "CreateKeyRequest": {
        "type": "object", "required": ["name"], "additionalProperties": False,
        "properties": {
            "name": _NAME, **_LIMIT_FIELDS,
            "expires_at": {"type": "null", "description": "Keys do not expire on this server"},
            "creator_user_id": {"type": ["string", "null"], "description": "Accepted; unused"},
            "external": {"type": "object", "description": "Accepted; unused"},
        },
    },
    "UpdateKeyRequest": {
        "type": "object", "additionalProperties": False,
        "properties": {"name": _NAME, "disabled": {"type": "boolean"}, **_LIMIT_FIELDS},
    },
}

_INFERENCE = [{"apiKey": []}]
_MANAGEMENT = [{"managementKey": []}]
_HASH = {"name": "hash", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
         "description": "The key's SHA-256 hash (`data.hash` of the key)"}
_KEY_LINKS = {
    f"{verb}Key": {"operationId": op, "parameters": {"path.hash": "$response.body#/data/hash"}}
    for verb, op in (("Get", "getKey"), ("Update", "updateKeys"), ("Delete", "deleteKeys"))}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": ref(schema)}}}


PATHS: dict[str, Any] = {
    "/key": {"get": {
        "operationId": "getCurrentKey", "summary": "The calling key: limits, usage, rate limits",
        "security": [*_INFERENCE, *_MANAGEMENT],
        "responses": {"200": json_response("CurrentKeyResponse", "The key"),
                      **error_responses(400, 401, 500)},
    }},
    "/credits": {"get": {
        "operationId": "getCredits", "summary": "Credits granted and used (management key)",
        "security": _MANAGEMENT,
        "responses": {"200": json_response("CreditsResponse", "The account's balance"),
                      **error_responses(400, 401, 403, 500)},
    }},
    "/generation": {"get": {
        "operationId": "getGeneration",
        "summary": "One embeddings request: its cost, tokens and provider. A key sees its own; "
                   "a management key sees all",
        "security": [*_INFERENCE, *_MANAGEMENT],
        "parameters": [{"name": "id", "in": "query", "required": True,
                        "schema": {"type": "string", "minLength": 1},
                        "description": "The `id` of an embeddings response"}],
        "responses": {"200": json_response("GenerationResponse", "The generation"),
                      **error_responses(400, 401, 404, 500)},
    }},
    "/keys": {
        "get": {
            "operationId": "listKeys", "summary": "Keys, oldest first, 100 a page",
            "security": _MANAGEMENT,
            "parameters": [
                {"name": "offset", "in": "query",
                 "schema": {"type": ["integer", "null"], "minimum": 0}},
                {"name": "include_disabled", "in": "query",
                 "schema": {"type": "boolean", "default": False}},
            ],
            "responses": {"200": json_response("ApiKeyList", "Keys"),
                          **error_responses(400, 401, 403, 500)},
        },
        "post": {
            "operationId": "createKeys", "summary": "Create an inference key",
            "security": _MANAGEMENT, "requestBody": _body("CreateKeyRequest"),
            "responses": {
                "201": {**json_response("CreatedApiKeyResponse", "The key, and the key itself"),
                        "links": _KEY_LINKS},
                **error_responses(400, 401, 403, 413, 500)},
        },
    },
    "/keys/{hash}": {
        "parameters": [_HASH],
        "get": {
            "operationId": "getKey", "security": _MANAGEMENT,
            "responses": {"200": json_response("ApiKeyResponse", "The key"),
                          **error_responses(400, 401, 403, 404, 500)},
        },
        "patch": {
            "operationId": "updateKeys", "summary": "Change a key's name, limits or state",
            "security": _MANAGEMENT, "requestBody": _body("UpdateKeyRequest"),
            "responses": {"200": json_response("ApiKeyResponse", "The key as changed"),
                          **error_responses(400, 401, 403, 404, 413, 500)},
        },
        "delete": {
            "operationId": "deleteKeys", "summary": "Delete a key (its usage stays in the ledger)",
            "security": _MANAGEMENT,
            "responses": {"200": json_response("DeletedApiKeyResponse", "Deleted"),
                          **error_responses(400, 401, 403, 404, 500)},
        },
    },
}

SECURITY_SCHEMES: dict[str, Any] = {
    "managementKey": {"type": "http", "scheme": "bearer",
                      "description": "A management key: the admin endpoints accept only these, "
                                     "and inference endpoints refuse them"},
}
