"""The OpenAPI 3.1 document served at /openapi.json, describing every route this app serves."""

from __future__ import annotations

from typing import Any

from embedrouter import __version__
from embedrouter.api import openapi_accounts as accounts
from embedrouter.api.openapi_parts import error_responses, json_response, ref

_TOKEN_ARRAY = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}
_PERCENTILES = {"anyOf": [{"type": "number"}, {
    "type": "object", "additionalProperties": False,
    "properties": {p: {"type": ["number", "null"]} for p in ("p50", "p75", "p90", "p99")}}]}

_SCHEMAS: dict[str, Any] = {
    "ErrorResponse": {
        "type": "object", "required": ["error"],
        "properties": {
            "error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "integer", "description": "Equals the HTTP status"},
                "message": {"type": "string"},
                "metadata": {"type": ["object", "null"]}}},
            "user_id": {"type": ["string", "null"]},
        },
    },
    "ContentPart": {"oneOf": [
        {"type": "object", "required": ["type", "text"],
         "properties": {"type": {"const": "text"}, "text": {"type": "string", "minLength": 1}}},
        {"type": "object", "required": ["type", "image_url"],
         "properties": {"type": {"const": "image_url"}, "image_url": {
             "type": "object", "required": ["url"],
             "properties": {"url": {"type": "string", "minLength": 1}}}}},
        *[{"type": "object", "required": ["type", kind],
           "properties": {"type": {"const": kind}, kind: ref("MultimodalMedia")}}
          for kind in ("input_audio", "input_video", "input_file")],
    ]},
    "MultimodalMedia": {"type": "object", "required": ["data"], "properties": {
        "data": {"type": "string", "pattern": "^data:", "description": "A data: URL"},
        "format": {"type": "string"}}},
    "ProviderPreferences": {
        "type": ["object", "null"], "additionalProperties": False,
        "properties": {
            "order": {"type": "array", "items": {"type": "string"}},
            "only": {"type": "array", "items": {"type": "string"}},
            "ignore": {"type": "array", "items": {"type": "string"}},
            "allow_fallbacks": {"type": "boolean"},
            "require_parameters": {"type": "boolean"},
            "zdr": {"type": "boolean"},
            "enforce_distillable_text": {"type": "boolean"},
            "data_collection": {"enum": ["allow", "deny"]},
            "quantizations": {"type": "array", "items": {"type": "string"}},
            "sort": {"anyOf": [{"enum": ["price", "throughput", "latency", "exacto"]},
                               {"type": "object"}]},
            "preferred_min_throughput": _PERCENTILES,
            "preferred_max_latency": _PERCENTILES,
            "max_price": {"type": "object", "additionalProperties": False, "properties": {
                k: {"type": ["string", "number"]}
                for k in ("prompt", "completion", "image", "audio", "request")}},
            "options": {"type": "object", "additionalProperties": {"type": "object"}},
        },
    },
    "CreateEmbeddingsRequest": {
        "type": "object", "required": ["input", "model"],
        "properties": {
            "model": {"type": "string", "example": "sentence-transformers/all-minilm-l6-v2"},
            "input": {"anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                _TOKEN_ARRAY,
                {"type": "array", "minItems": 1, "items": _TOKEN_ARRAY},
                {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["content"], "properties": {"content": {
                        "type": "array", "minItems": 1, "items": ref("ContentPart")}}}},
            ]},
            # null is accepted for every optional field and means "not set".
            "encoding_format": {"enum": ["float", "base64", None], "default": "float"},
            "dimensions": {"type": ["integer", "null"], "minimum": 1},
            "input_type": {"type": ["string", "null"]},
            "user": {"type": ["string", "null"]},
            "provider": ref("ProviderPreferences"),
            "session_id": {"type": ["string", "null"], "maxLength": 256},
            "trace": {"type": ["object", "null"]},
        },
    },
    "CreateEmbeddingsResponse": {
        "type": "object", "required": ["object", "data", "model"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": {
                "type": "object", "required": ["object", "embedding", "index"], "properties": {
                    "object": {"const": "embedding"},
                    "embedding": {"anyOf": [
                        {"type": "array", "items": {"type": "number"}},
                        {"type": "string", "description": "little-endian float32, base64"}]},
                    "index": {"type": "integer"}}}},
            "model": {"type": "string"},
            "id": {"type": "string"},
            "provider": {"type": "string"},
            "usage": {"type": "object", "required": ["prompt_tokens", "total_tokens"],
                      "properties": {"prompt_tokens": {"type": "integer"},
                                     "total_tokens": {"type": "integer"},
                                     "cost": {"type": "number"},
                                     "is_byok": {"type": "boolean"}}},
        },
    },
    "Model": {
        "type": "object",
        "required": ["id", "canonical_slug", "name", "created", "context_length", "pricing",
                     "architecture", "top_provider", "per_request_limits",
                     "supported_parameters", "default_parameters", "supported_voices", "links"],
        "properties": {
            "id": {"type": "string"}, "canonical_slug": {"type": "string"},
            "name": {"type": "string"}, "created": {"type": "integer"},
            "description": {"type": "string"},
            "context_length": {"type": ["integer", "null"]},
            "pricing": {"type": "object", "required": ["prompt", "completion"],
                        "properties": {"prompt": {"type": "string"},
                                       "completion": {"type": "string"}}},
            "architecture": {"type": "object"}, "top_provider": {"type": "object"},
            "per_request_limits": {"type": ["object", "null"]},
            "supported_parameters": {"type": "array", "items": {"type": "string"}},
            "default_parameters": {"type": ["object", "null"]},
            "supported_voices": {"type": ["array", "null"]},
            "links": {"type": "object", "properties": {"details": {"type": "string"}}},
        },
    },
    "ModelsListResponse": {
        "type": "object", "required": ["data", "links", "total_count"],
        "properties": {"data": {"type": "array", "items": ref("Model")},
                       "links": {"type": "object", "properties": {
                           "next": {"type": ["string", "null"]}}},
                       "total_count": {"type": "integer"}},
    },
}

_PAGING = [
    {"name": "offset", "in": "query", "schema": {"type": ["integer", "null"], "minimum": 0}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                "maximum": 1000}},
]


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "embedrouter", "version": __version__,
                 "description": "OpenRouter-compatible embeddings API"},
        "servers": [{"url": "/api/v1"}],
        "security": [{"apiKey": []}],
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer",
                           "description": "An inference key (management keys are refused)"},
                **accounts.SECURITY_SCHEMES},
            "schemas": {**_SCHEMAS, **accounts.SCHEMAS},
        },
        "paths": {
            "/embeddings": {"post": {
                "operationId": "createEmbeddings", "summary": "Create embeddings",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": ref("CreateEmbeddingsRequest")}}},
                "responses": {
                    "200": {**json_response("CreateEmbeddingsResponse", "Embeddings"),
                            "links": {"GetGeneration": {
                                "operationId": "getGeneration",
                                "parameters": {"id": "$response.body#/id"}}}},
                    **error_responses(400, 401, 402, 403, 404, 405, 413, 429, 500, 502, 503,
                                       504, 524, 529)},
            }},
            "/embeddings/models": {"get": {
                "operationId": "listEmbeddingsModels", "security": [],
                "parameters": _PAGING,
                "responses": {"200": json_response("ModelsListResponse", "Embedding models"),
                              **error_responses(400, 500)},
            }},
            "/models": {"get": {
                "operationId": "getModels", "security": [],
                "parameters": [*_PAGING, {"name": "output_modalities", "in": "query", "schema": {
                    "type": "string", "default": "all",
                    "pattern": r"^\s*(text|image|audio|embeddings|all)\s*"
                               r"(,\s*(text|image|audio|embeddings|all)\s*)*$"}}],
                "responses": {"200": json_response("ModelsListResponse", "Models"),
                              **error_responses(400, 500)},
            }},
            "/models/{author}/{slug}/endpoints": {"get": {
                "operationId": "listEndpoints", "security": [],
                "parameters": [{"name": n, "in": "path", "required": True,
                                "schema": {"type": "string"}} for n in ("author", "slug")],
                "responses": {"200": {"description": "The model's endpoints"},
                              **error_responses(404, 500)},
            }},
            "/health": {"get": {"operationId": "health", "security": [],
                                "responses": {"200": {"description": "Alive"}}}},
            "/openapi.json": {"get": {"operationId": "openapi", "security": [],
                                      "responses": {"200": {"description": "This document"}}}},
            **accounts.PATHS,
        },
    }
