"""The two body decoders (orjson inline, simdjson off the loop) agree on every body.

Large bodies take the simdjson path; a body that meant one thing to one decoder and another
thing to the other would be a silent wrong answer, so random bodies, valid and not, go through
both and must give the same request or the same error.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedrouter.api.body import INLINE_BODY_BYTES, BodyDecoder, decode_large
from embedrouter.api.parse import Limits, parse_embedding_request
from embedrouter.errors import EmbedRouterError, InvalidRequest, PayloadTooLarge

LIMITS = Limits(max_inputs=8, max_input_chars=40)
MODEL = "a/b"

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**31 + 5),
                    st.floats(allow_nan=False, allow_infinity=False, width=32),
                    st.text(max_size=12))
ids = st.lists(st.one_of(st.integers(0, 2**31 - 1), st.integers(-3, 3).map(float)),
               min_size=0, max_size=50)
inputs = st.one_of(
    st.text(max_size=60),
    st.lists(st.text(max_size=50), max_size=10),
    ids,
    st.lists(ids, max_size=10),
    st.lists(st.fixed_dictionaries({"content": st.lists(st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "image_url", "bogus"]), "text": st.text(max_size=20)}),
        max_size=3)}), max_size=3),
    st.lists(scalars, max_size=5),
    scalars,
)


def _outcome(decode: Any, raw: bytes) -> Any:
    try:
        return decode(raw)
    except EmbedRouterError as exc:
        return (type(exc).__name__, exc.message)


def _inline(raw: bytes) -> Any:
    return parse_embedding_request(orjson.loads(raw), LIMITS)


@pytest.mark.parametrize("inp", [["", "x" * 50], ["ok", 5, "x" * 50], ["x" * 50, ""], "x" * 50,
                                 [["x" * 50]], [{"content": [{"type": "text", "text": "x" * 50}]}]])
def test_both_decoders_agree_on_order_of_errors(inp: Any) -> None:
    raw = orjson.dumps({"model": MODEL, "input": inp})
    assert _outcome(lambda r: decode_large(r, LIMITS), raw) == _outcome(_inline, raw)


@settings(max_examples=400, deadline=None)
@given(inp=inputs, dims=st.one_of(st.none(), st.integers(-1, 500)),
       enc=st.sampled_from([None, "float", "base64", "hex"]))
def test_both_decoders_agree(inp: Any, dims: Any, enc: Any) -> None:
    body: dict[str, Any] = {"model": MODEL, "input": inp}
    if dims is not None:
        body["dimensions"] = dims
    if enc is not None:
        body["encoding_format"] = enc
    raw = orjson.dumps(body)
    assert _outcome(lambda r: decode_large(r, LIMITS), raw) == _outcome(_inline, raw)


@pytest.mark.parametrize("raw", [b"{", b"[1,2", b'{"a": NaN}', b"\xff", b'{"input": [1e999]}',
                                 b'{"model":"a/b","input":[-9223372036854775809]}'])
def test_malformed_json_is_a_400_on_both_paths(raw: bytes) -> None:
    with pytest.raises(InvalidRequest, match="Malformed JSON body"):
        decode_large(raw, LIMITS)
    decoder = BodyDecoder()
    with pytest.raises(InvalidRequest):
        asyncio.run(decoder.decode(raw, LIMITS))
    decoder.close()


def test_lengths_are_refused_before_elements_exist() -> None:
    # Far past both caps: the refusal must name the count, without building 10^6 objects.
    many = orjson.dumps({"model": MODEL, "input": ["x"] * 1_000_000})
    with pytest.raises(PayloadTooLarge, match="1000000 inputs"):
        decode_large(many, LIMITS)
    long_ids = orjson.dumps({"model": MODEL, "input": [[1, 2], list(range(100_000))]})
    with pytest.raises(InvalidRequest, match=r"input\[1\] has 100000 token ids"):
        decode_large(long_ids, LIMITS)


async def test_large_bodies_go_through_the_parser_process() -> None:
    decoder = BodyDecoder()
    try:
        pad = "p" * INLINE_BODY_BYTES
        raw = orjson.dumps({"model": MODEL, "input": [[1, 2]] * 8, "pad": pad})
        req = await decoder.decode(raw, LIMITS)
        assert len(req.inputs) == 8 and req.inputs[0].ids == (1, 2)  # type: ignore[union-attr]
        assert decoder._pool is not None  # the worker process did it
        too_long = orjson.dumps({"model": MODEL, "input": [[1, 2], list(range(50))], "pad": pad})
        with pytest.raises(InvalidRequest, match=r"input\[1\] has 50 token ids") as info:
            await decoder.decode(too_long, LIMITS)
        assert info.value.metadata["error_type"] == "input_too_long"
        with pytest.raises(PayloadTooLarge):
            await decoder.decode(orjson.dumps({"model": MODEL, "input": ["x"] * 9, "pad": pad}),
                                 LIMITS)
        with pytest.raises(InvalidRequest, match="Malformed"):
            await decoder.decode(b"[" * (INLINE_BODY_BYTES + 1), LIMITS)
    finally:
        decoder.close()
