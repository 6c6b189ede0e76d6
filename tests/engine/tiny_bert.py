"""A tiny random BERT sentence-transformers directory, and a plain numpy reference forward.

The tiny model reuses the real tokenizer (so the vocabulary matches) but has a 16-wide, 2-layer
encoder: building its ONNX graph takes milliseconds, which lets loader, cache and builder tests
cover pooling modes, key prefixes and corruptions without touching the 90 MB model.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from embedrouter.engine import default_model_dir

CONFIG = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "hidden_act": "gelu",
    "hidden_size": 16,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
    "vocab_size": 30522,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}


def random_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, f, n = CONFIG["hidden_size"], CONFIG["intermediate_size"], CONFIG["num_hidden_layers"]

    def r(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def ln() -> tuple[np.ndarray, np.ndarray]:
        return (1 + r(h, scale=0.1)), r(h, scale=0.1)

    w: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": r(CONFIG["vocab_size"], h),
        "embeddings.position_embeddings.weight": r(CONFIG["max_position_embeddings"], h),
        "embeddings.token_type_embeddings.weight": r(2, h),
    }
    w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"] = ln()
    for i in range(n):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            w[p + f"attention.self.{name}.weight"] = r(h, h)
            w[p + f"attention.self.{name}.bias"] = r(h, scale=0.1)
        w[p + "attention.output.dense.weight"] = r(h, h)
        w[p + "attention.output.dense.bias"] = r(h, scale=0.1)
        w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"] = ln()
        w[p + "intermediate.dense.weight"] = r(f, h)
        w[p + "intermediate.dense.bias"] = r(f, scale=0.1)
        w[p + "output.dense.weight"] = r(h, f)
        w[p + "output.dense.bias"] = r(h, scale=0.1)
        w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"] = ln()
    return w


def write_tiny_model(root: Path, *, pooling: str = "mean", normalize: bool = True,
                     prefix: str = "", gamma_beta: bool = False, seed: int = 0,
                     max_seq_length: int | None = 32, config: dict | None = None,
                     ) -> dict[str, np.ndarray]:
    """Writes the directory and returns the (un-prefixed) weights it holds."""
    root.mkdir(parents=True, exist_ok=True)
    weights = random_weights(seed)
    stored = {}
    for key, value in weights.items():
        if gamma_beta and key.endswith("LayerNorm.weight"):
            key = key.removesuffix("weight") + "gamma"
        elif gamma_beta and key.endswith("LayerNorm.bias"):
            key = key.removesuffix("bias") + "beta"
        stored[prefix + key] = value
    save_file(stored, str(root / "model.safetensors"), metadata={"format": "pt"})
    (root / "config.json").write_text(json.dumps({**CONFIG, **(config or {})}))
    shutil.copy(default_model_dir() / "tokenizer.json", root / "tokenizer.json")
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
    (root / "modules.json").write_text(json.dumps(modules))
    (root / "1_Pooling").mkdir(exist_ok=True)
    (root / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": CONFIG["hidden_size"],
        "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean",
        "pooling_mode_max_tokens": pooling == "max",
        "pooling_mode_mean_sqrt_len_tokens": False,
    }))
    if max_seq_length is not None:
        (root / "sentence_bert_config.json").write_text(
            json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False}))
    return weights


_erf = np.vectorize(math.erf)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def reference_embed(w: dict[str, np.ndarray], ids: list[int], *, pooling: str,
                    normalize: bool, tanh_gelu: bool = False) -> np.ndarray:
    """One unpadded sequence through BERT, in float64, as transformers computes it."""
    w64 = {k: v.astype(np.float64) for k, v in w.items()}
    h, heads = CONFIG["hidden_size"], CONFIG["num_attention_heads"]
    d = h // heads
    n = len(ids)
    x = (w64["embeddings.word_embeddings.weight"][ids]
         + w64["embeddings.position_embeddings.weight"][:n]
         + w64["embeddings.token_type_embeddings.weight"][0])
    x = _layer_norm(x, w64["embeddings.LayerNorm.weight"], w64["embeddings.LayerNorm.bias"])
    for i in range(CONFIG["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def lin(v: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return v @ w64[p + name + ".weight"].T + w64[p + name + ".bias"]

        q, k, v = (lin(x, f"attention.self.{m}").reshape(n, heads, d).transpose(1, 0, 2)
                   for m in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(n, h)
        x = _layer_norm(lin(ctx, "attention.output.dense") + x,
                        w64[p + "attention.output.LayerNorm.weight"],
                        w64[p + "attention.output.LayerNorm.bias"])
        inter = lin(x, "intermediate.dense")
        if tanh_gelu:
            inner = math.sqrt(2 / math.pi) * (inter + 0.044715 * inter**3)
            inter = 0.5 * inter * (1 + np.tanh(inner))
        else:
            inter = 0.5 * inter * (1 + _erf(inter / math.sqrt(2)))
        x = _layer_norm(lin(inter, "output.dense") + x, w64[p + "output.LayerNorm.weight"],
                        w64[p + "output.LayerNorm.bias"])
    pooled = {"mean": x.mean(0), "cls": x[0], "max": x.max(0)}[pooling]
    if normalize:
        pooled = pooled / max(np.linalg.norm(pooled), 1e-12)
    return pooled
