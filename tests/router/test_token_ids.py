"""Token-id inputs per the model's token_ids setting, without a server."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from embedrouter import tokens
from embedrouter.catalog import ModelSpec
from embedrouter.errors import InvalidRequest
from embedrouter.router.token_ids import needs_decoding, translate
from embedrouter.settings import SettingsError, load_settings
from embedrouter.types import TextInput, TokenInput

SPEC = ModelSpec(slug="a/b", name="b", description="", provider="local", provider_name="Local",
                 upstream_id="b", dimensions=4, context_length=16,
                 price_per_million=Decimal(0), created=0)


@pytest.fixture(scope="module")
def tk() -> dict[str, tiktoken.Encoding]:
    return {n: tiktoken.get_encoding(f"{n}_base") for n in tokens.ENCODINGS}


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=1, max_size=200))
def test_decode_equals_tiktoken_on_any_text(tk: dict[str, tiktoken.Encoding], text: str) -> None:
    for name in tokens.ENCODINGS:
        ids = tk[name].encode(text, disallowed_special=())
        assert tokens.encoding(name).decode(ids) == tk[name].decode(ids) == text


def test_partial_utf8_decodes_like_tiktoken(tk: dict[str, tiktoken.Encoding]) -> None:
    ids = tk["cl100k"].encode("🎉")
    assert len(ids) > 1
    assert tokens.encoding("cl100k").decode(ids[:1]) == tk["cl100k"].decode(ids[:1])


def test_translate_modes() -> None:
    inputs = [TextInput("x"), TokenInput((15339, 1917))]  # cl100k "hello world"
    assert translate(SPEC, inputs) == [TextInput("x"), TextInput("hello world")]
    assert needs_decoding(SPEC, inputs) == 2
    native = replace(SPEC, token_ids="native")
    assert translate(native, inputs) == inputs and needs_decoding(native, inputs) == 0
    with pytest.raises(InvalidRequest, match=r"input\[1\].*token_ids = \"reject\""):
        translate(replace(SPEC, token_ids="reject"), inputs)
    assert translate(replace(SPEC, token_ids="reject"), [TextInput("y")]) == [TextInput("y")]


@pytest.mark.parametrize("bad", [-1, 100256, 100261, 100275, 100277, 2**31 - 1])
def test_invalid_ids_name_index_id_and_setting(bad: int) -> None:
    with pytest.raises(InvalidRequest) as exc:
        translate(SPEC, [TokenInput((1,)), TokenInput((15339, bad))])
    assert f"input[1]: token id {bad} is not a valid cl100k id" in exc.value.message
    assert exc.value.metadata == {"field": "input[1]", "token_id": bad, "token_ids": "cl100k"}


def test_special_tokens_decode_to_their_text() -> None:
    assert tokens.encoding("cl100k").decode([100257]) == "<|endoftext|>"
    assert tokens.encoding("o200k").decode([200018]) == "<|endofprompt|>"


def test_setting_is_validated(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[models]]\nslug = "a/b"\npath = "/x"\ntoken_ids = "p50k"\n')
    with pytest.raises(SettingsError, match=r"models\[0\]\.token_ids"):
        load_settings(cfg, env={})
    cfg.write_text('[default_model]\ntoken_ids = "native"\n')
    assert load_settings(cfg, env={}).all_models()[0].token_ids == "native"
    assert load_settings(None, env={}).all_models()[0].token_ids == "cl100k"
