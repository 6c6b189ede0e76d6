"""Input parsing: every shape of the contract, every refusal naming its field path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedrouter.api.parse import parse_embedding_request, parse_input
from embedrouter.errors import EmptyInput, InvalidRequest
from embedrouter.types import MediaPart, MultimodalInput, TextInput, TokenInput


def body(**kw: Any) -> dict[str, Any]:
    return {"model": "sentence-transformers/all-minilm-l6-v2", "input": "hi", **kw}


def test_string_and_string_list() -> None:
    assert parse_input("hello") == (TextInput("hello"),)
    assert parse_input(["a", "b"]) == (TextInput("a"), TextInput("b"))


def test_token_array_accepts_integral_floats_as_the_openrouter_sdk_sends_them() -> None:
    assert parse_input([101, 7592.0, 102]) == (TokenInput((101, 7592, 102)),)
    assert parse_input([[1.0, 2.0], [3]]) == (TokenInput((1, 2)), TokenInput((3,)))


def test_multimodal_text_and_media_parts() -> None:
    parsed = parse_input([
        {"content": [{"type": "text", "text": "a cat"},
                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}]},
        {"content": [{"type": "input_audio",
                      "input_audio": {"data": "data:audio/wav;base64,AA==", "format": "wav"}}]},
    ])
    assert parsed[0] == MultimodalInput((TextInput("a cat"),
                                         MediaPart("image_url", "data:image/png;base64,AA==")))
    assert parsed[1] == MultimodalInput((MediaPart("input_audio", "data:audio/wav;base64,AA==",
                                                   "wav"),))


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ([], "Input must not be empty"),
        ("", "Input must not be empty"),
        (["a", ""], "input[1] is an empty string"),
        ([[1], []], "input[1] is an empty token array"),
        ([{"content": []}], "input[0].content is empty"),
    ],
)
def test_empty_inputs(raw: Any, fragment: str) -> None:
    with pytest.raises(EmptyInput, match="Input must not be empty") as info:
        parse_input(raw)
    assert fragment in info.value.message


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (5, "input"),
        ({"text": "x"}, "input"),
        (["a", 1], "input[1]"),
        ([1, "a"], "input[1]"),
        ([1, 1.5], "input[1]"),
        ([1, -1], "input[1]"),
        ([1, True], "input[1]"),
        ([True], "input[0]"),
        ([[1], 2], "input[1]"),
        ([[1], [2, "x"]], "input[1][1]"),
        ([None], "input[0]"),
        ([{"content": "x"}], "input[0].content"),
        ([{"content": [{"type": "video_url", "video_url": {}}]}], "input[0].content[0].type"),
        ([{"content": [{"type": "text", "text": ""}]}], "input[0].content[0].text"),
        ([{"content": [{"type": "input_file", "input_file": {"data": "QUJD"}}]}],
         "input[0].content[0].input_file.data"),
        ([{"content": [{"type": "image_url", "image_url": {}}]}],
         "input[0].content[0].image_url.url"),
        ([1, 2**40], "input[1]"),
    ],
)
def test_bad_inputs_name_the_path(raw: Any, path: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_input(raw)
    assert info.value.message.startswith(path + ":") or f"({path}" in info.value.message


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ({"model": None}, "model"),
        ({"model": 3}, "model"),
        ({"model": "  "}, "model"),
        ({"input": None}, "input"),
        ({"encoding_format": "int8"}, "encoding_format"),
        ({"encoding_format": 1}, "encoding_format"),
        ({"dimensions": 0}, "dimensions"),
        ({"dimensions": "64"}, "dimensions"),
        ({"dimensions": 1.5}, "dimensions"),
        ({"dimensions": True}, "dimensions"),
        ({"input_type": 3}, "input_type"),
        ({"user": ["u"]}, "user"),
        ({"session_id": "x" * 257}, "session_id"),
        ({"trace": "t"}, "trace"),
        ({"provider": "openai"}, "provider"),
        ({"provider": {"orderr": ["a"]}}, "provider.orderr"),
        ({"provider": {"order": "a"}}, "provider.order"),
        ({"provider": {"allow_fallbacks": "yes"}}, "provider.allow_fallbacks"),
        ({"provider": {"sort": "cheapest"}}, "provider.sort"),
        ({"provider": {"sort": {"by": "price", "x": 1}}}, "provider.sort.x"),
        ({"provider": {"max_price": {"tokens": 1}}}, "provider.max_price.tokens"),
        ({"provider": {"quantizations": ["int3"]}}, "provider.quantizations"),
        ({"provider": {"data_collection": "maybe"}}, "provider.data_collection"),
        ({"provider": {"preferred_max_latency": {"p42": 1}}}, "provider.preferred_max_latency.p42"),
    ],
)
def test_bad_fields_name_the_path(extra: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_embedding_request(body(**extra))
    assert info.value.message.startswith(path + ":")


def test_body_must_be_an_object() -> None:
    with pytest.raises(InvalidRequest, match=r"^body:"):
        parse_embedding_request(["input"])


def test_optional_fields_and_unknown_keys() -> None:
    req = parse_embedding_request(body(
        encoding_format="base64", dimensions=64.0, input_type="query", user="u1",
        provider={"order": ["local"], "allow_fallbacks": False, "max_price": {"prompt": 1},
                  "sort": {"by": "price", "partition": "none"}, "min_throughput": 5,
                  "preferred_max_latency": {"p50": 1.5, "p99": None}, "options": {"x": {}}},
        session_id="s", trace={"trace_id": "t"}, some_future_field=1,
    ))
    assert req.encoding_format == "base64"
    assert req.dimensions == 64
    assert req.input_type == "query"
    assert req.provider is not None and req.provider["order"] == ["local"]
    assert req.trace == {"trace_id": "t"}


def test_nulls_mean_defaults() -> None:
    req = parse_embedding_request(body(encoding_format=None, dimensions=None, provider=None,
                                       user=None, input_type=None))
    assert req.encoding_format == "float"
    assert req.dimensions is None and req.provider is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                  max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_any_json_input_parses_or_raises_invalid_request(value: Any) -> None:
    """No JSON value makes the parser fail with anything but a 400-class error."""
    try:
        parsed = parse_input(value)
    except InvalidRequest:
        return
    assert parsed and all(isinstance(p, TextInput | TokenInput | MultimodalInput)
                          for p in parsed)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["model", "input", "encoding_format", "dimensions",
                                        "provider", "user", "trace", "session_id",
                                        "input_type", "other"]), json_values, max_size=8))
def test_any_json_body_parses_or_raises_invalid_request(value: dict[str, Any]) -> None:
    """Random bodies either parse into a request or fail as a 400; nothing else escapes."""
    try:
        req = parse_embedding_request(value)
    except InvalidRequest as exc:
        assert exc.message
        return
    assert isinstance(value["model"], str) and req.model == value["model"].strip()
    assert len(req.inputs) >= 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(min_value=0, max_value=30521), min_size=1, max_size=8),
                min_size=1, max_size=6))
def test_token_batches_round_trip_as_ints_or_floats(batch: list[list[int]]) -> None:
    as_floats = [[float(t) for t in row] for row in batch]
    expected = tuple(TokenInput(tuple(row)) for row in batch)
    assert parse_input(batch) == expected
    assert parse_input(as_floats) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=10))
def test_string_lists_keep_order(texts: list[str]) -> None:
    assert [t.text for t in parse_input(texts)] == texts  # type: ignore[union-attr]
