"""Catalog entries as the OpenRouter `Model` and endpoint objects the SDKs validate."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from embedrouter.catalog import ModelSpec
from embedrouter.catalog.endpoints import MILLION, EndpointSpec

API_PREFIX = "/api/v1"


def _prices(per_million: Decimal) -> dict[str, Any]:
    # OpenRouter prices are decimal strings in USD per token.
    per_token = per_million / MILLION
    return {
        "prompt": format(per_token.normalize(), "f") if per_token else "0",
        "completion": "0",
        "request": "0",
        "image": "0",
    }


def _pricing(spec: ModelSpec) -> dict[str, Any]:
    return _prices(spec.price_per_million)


def _architecture(spec: ModelSpec) -> dict[str, Any]:
    inputs = "+".join(spec.input_modalities)
    outputs = "+".join(spec.output_modalities)
    return {
        "input_modalities": list(spec.input_modalities),
        "output_modalities": list(spec.output_modalities),
        "modality": f"{inputs}->{outputs}",
        "tokenizer": "Other",
        "instruct_type": None,
    }


def model_view(spec: ModelSpec) -> dict[str, Any]:
    return {
        "id": spec.slug,
        "canonical_slug": spec.slug,
        "hugging_face_id": spec.hugging_face_id,
        "name": spec.name,
        "created": spec.created,
        "description": spec.description,
        "context_length": spec.context_length or None,
        "architecture": _architecture(spec),
        "pricing": _pricing(spec),
        "top_provider": {
            "is_moderated": False,
            "context_length": spec.context_length or None,
            "max_completion_tokens": None,
        },
        "per_request_limits": None,
        "supported_parameters": ["dimensions"] if spec.matryoshka else [],
        "default_parameters": None,
        "supported_voices": None,
        "links": {"details": f"{API_PREFIX}/models/{spec.slug}/endpoints"},
        "embedding_dimensions": spec.dimensions or None,
    }


def _endpoint_view(spec: ModelSpec, ep: EndpointSpec) -> dict[str, Any]:
    return {
        "name": f"{ep.display_name} | {spec.slug}",
        "model_id": spec.slug,
        "model_name": spec.name,
        "context_length": spec.context_length,
        "pricing": _prices(ep.price_per_million),
        "provider_name": ep.display_name,
        "tag": ep.provider,
        "quantization": ep.quantization,
        "service_tier": ep.tier,
        "max_completion_tokens": None,
        "max_prompt_tokens": spec.context_length or None,
        "supported_parameters": sorted(ep.supported_params),
        # Not in OpenRouter's object: the per-call caps this router splits requests to, and the
        # data policy that `provider.data_collection` / `provider.zdr` filter on.
        "max_inputs_per_call": ep.max_inputs,
        "max_tokens_per_call": ep.max_tokens,
        "data_collection": ep.data_collection,
        "zdr": ep.zdr,
        "native_tools": {},
        "supports_implicit_caching": False,
        "supports_diarization": False,
        "supports_tool_choice": {"auto": False, "function": False, "none": False,
                                 "required": False},
        "status": 0,
        "uptime_last_30m": None,
        "uptime_last_5m": None,
        "uptime_last_1d": None,
        "latency_last_30m": None,
        "throughput_last_30m": None,
    }


def endpoints_view(spec: ModelSpec) -> dict[str, Any]:
    return {
        "data": {
            "id": spec.slug,
            "name": spec.name,
            "created": spec.created,
            "description": spec.description,
            "architecture": _architecture(spec),
            "endpoints": [_endpoint_view(spec, ep) for ep in spec.endpoints],
        }
    }


def page(items: list[ModelSpec], offset: int, limit: int | None, path: str,
         keep: str = "") -> dict[str, Any]:
    """A `ModelsListResponse` page with `links.next` while more remain.

    ``keep`` is a query prefix (``name=value&``) that the next link must repeat, such as a filter.
    """
    total = len(items)
    end = total if limit is None else min(total, offset + limit)
    chunk = items[offset:end]
    next_link = None
    if limit is not None and end < total:
        next_link = f"{API_PREFIX}{path}?{keep}offset={end}&limit={limit}"
    return {"data": [model_view(m) for m in chunk], "links": {"next": next_link},
            "total_count": total}


__all__ = ["endpoints_view", "model_view", "page"]
