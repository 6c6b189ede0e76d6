"""`quantizations` / `default_quantization` in the config, and the local endpoints they give."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from embedrouter.catalog import build_catalog
from embedrouter.catalog.models import ModelFacts
from embedrouter.settings import DEFAULT_MODEL_SLUG, SettingsError, load_settings

FACTS = ModelFacts(dimensions=384, context_length=256, upstream_id="up", created=0)


def settings(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "embedrouter.toml"
    path.write_text(text)
    return load_settings(path, env={})


def endpoints(tmp_path: Path, text: str) -> dict[str, list[tuple[str, str, str]]]:
    s = settings(tmp_path, text)
    catalog = build_catalog(s.all_models(), {m.slug: FACTS for m in s.all_models()})
    return {m.slug: [(e.provider, e.display_name, e.quantization) for e in m.endpoints]
            for m in catalog.all()}


def test_builtin_model_serves_fp32_and_int8_with_no_config(tmp_path: Path) -> None:
    assert endpoints(tmp_path, "") == {DEFAULT_MODEL_SLUG: [
        ("local", "Local", "fp32"), ("local/int8", "Local (int8)", "int8")]}


def test_declared_model_serves_fp32_unless_it_lists_more(tmp_path: Path) -> None:
    got = endpoints(tmp_path, """
[default_model]
enabled = false
[[models]]
slug = "acme/plain"
path = "/m"
[[models]]
slug = "acme/both"
path = "/m"
quantizations = ["int8", "fp32"]
price_per_million = "0.5"
""")
    assert got["acme/plain"] == [("local", "Local", "fp32")]
    # fp32 stays the default (first) even when listed second.
    assert got["acme/both"] == [("local", "Local", "fp32"),
                                ("local/int8", "Local (int8)", "int8")]
    s = settings(tmp_path, '[[models]]\nslug = "acme/both"\npath = "/m"\n'
                           'quantizations = ["int8", "fp32"]\nprice_per_million = "0.5"\n')
    spec = build_catalog(s.all_models(), {"acme/both": FACTS}).get("acme/both")
    assert spec is not None
    assert [e.price_per_million for e in spec.endpoints] == [Decimal("0.5")] * 2


def test_default_quantization_goes_first(tmp_path: Path) -> None:
    got = endpoints(tmp_path, """
[default_model]
default_quantization = "int8"
[[models]]
slug = "acme/only-int8"
path = "/m"
quantizations = ["int8"]
""")
    assert [q for *_, q in got[DEFAULT_MODEL_SLUG]] == ["int8", "fp32"]
    assert got["acme/only-int8"] == [("local/int8", "Local (int8)", "int8")]


def test_default_model_quantizations_can_be_narrowed(tmp_path: Path) -> None:
    got = endpoints(tmp_path, '[default_model]\nquantizations = ["fp32"]\n')
    assert got[DEFAULT_MODEL_SLUG] == [("local", "Local", "fp32")]


@pytest.mark.parametrize(("text", "fragment"), [
    ('[default_model]\nquantizations = ["fp16"]\n',
     r"default_model\.quantizations\[0\]: Invalid enum value 'fp16'; "
     r"expected one of 'fp32', 'int8'"),
    ('[default_model]\nquantizations = []\n',
     "default_model.quantizations: Expected `array` of length >= 1"),
    ('[default_model]\nquantizations = "int8"\n',
     "default_model.quantizations: Expected `array`, got `str`"),
    ('[default_model]\nquantizations = ["int8", "int8"]\n',
     "default_model.quantizations: each precision may be listed once"),
    ('[default_model]\nquantizations = ["fp32"]\ndefault_quantization = "int8"\n',
     "default_model.default_quantization: 'int8' is not in"),
    ('[[models]]\nslug = "a/b"\npath = "/m"\ndefault_quantization = "int8"\n',
     r'models\[0\]\.default_quantization \(slug "a/b"\): \'int8\' is not in'),
    ('[[models]]\nslug = "a/b"\npath = "/m"\nquantizations = ["bf16"]\n',
     r'models\[0\]\.quantizations\[0\] \(slug "a/b"\): Invalid enum value \'bf16\''),
])
def test_bad_quantizations_are_refused_at_start(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(SettingsError, match="embedrouter.toml: " + fragment):
        settings(tmp_path, text)
