"""Which precision of a local model serves a request: a table of cases, no sockets."""

from __future__ import annotations

import pytest

from embedrouter.catalog.endpoints import EndpointSpec
from embedrouter.errors import NotFound
from embedrouter.router.selection import local_endpoint

SLUG = "acme/minilm"
FP32 = EndpointSpec(provider="local", display_name="Local", upstream_model="m",
                    quantization="fp32")
INT8 = EndpointSpec(provider="local/int8", display_name="Local (int8)", upstream_model="m",
                    quantization="int8")
# A pair where only the int8 endpoint promises not to keep inputs, so a filter leaves int8 alone.
FP32_KEEPS = EndpointSpec(provider="local", display_name="Local", upstream_model="m",
                          quantization="fp32", data_collection="allow")
INT8_DENY = EndpointSpec(provider="local/int8", display_name="Local (int8)", upstream_model="m",
                         quantization="int8", data_collection="deny")


def chosen(endpoints: list[EndpointSpec], prefs: dict | None) -> str:
    return local_endpoint(endpoints, prefs, slug=SLUG).provider


@pytest.mark.parametrize(("prefs", "expected"), [
    (None, "local"),
    ({}, "local"),
    ({"quantizations": ["int8"]}, "local/int8"),
    ({"quantizations": ["fp32"]}, "local"),
    # Both allowed: the model's default, not a draw between two free endpoints.
    ({"quantizations": ["int8", "fp32"]}, "local"),
    ({"quantizations": ["int8", "fp32"], "order": ["local/int8"]}, "local/int8"),
    # Naming the variant's slug allows it; the base slug matches both but allows only the default.
    ({"order": ["local/int8"]}, "local/int8"),
    ({"only": ["local/int8"]}, "local/int8"),
    ({"only": ["local"]}, "local"),
    ({"order": ["local"]}, "local"),
    ({"ignore": ["local/int8"]}, "local"),
    ({"sort": "throughput"}, "local"),
    ({"allow_fallbacks": False}, "local"),
])
def test_default_precision_unless_the_request_allows_another(prefs: dict | None,
                                                             expected: str) -> None:
    # The same answer every time: the router's draws between free endpoints never decide here.
    assert {chosen([FP32, INT8], prefs) for _ in range(64)} == {expected}


def test_operator_default_int8() -> None:
    assert chosen([INT8, FP32], None) == "local/int8"
    assert chosen([INT8, FP32], {"quantizations": ["fp32"]}) == "local"


@pytest.mark.parametrize(("prefs", "reason"), [
    ({"quantizations": ["fp16"]}, "quantization"),  # nothing left at all
    ({"ignore": ["local"]}, "allowed_providers"),  # the base slug matches every precision
    # Only int8 is left after the filters, and nothing in the request allowed it.
    ({"data_collection": "deny"}, "quantization"),
])
def test_never_a_silent_fallback_to_another_precision(prefs: dict, reason: str) -> None:
    with pytest.raises(NotFound) as info:
        chosen([FP32_KEEPS, INT8_DENY], prefs)
    availability = info.value.metadata["availability"]
    assert availability["code"] == "constraint_filtered"
    assert availability["excluded_by"] == [reason]


def test_the_same_filters_with_int8_allowed() -> None:
    prefs = {"data_collection": "deny", "quantizations": ["fp32", "int8"]}
    assert chosen([FP32_KEEPS, INT8_DENY], prefs) == "local/int8"
