"""Turning BERT weights into an ONNX encoder graph with pooling (and L2 normalisation) inside.

The graph is written by hand with ``onnx.helper`` so the server needs neither torch nor an export
step. Three flavours exist, all computing the same function:

- ``mha`` (the default): the attention core (heads split, scores, mask, softmax, heads merged) is
  ONNX Runtime's ``com.microsoft`` MultiHeadAttention kernel; everything else is opset-17.
  Against ``standard`` on a 2-core Zen 5 with onnxruntime 1.32, over the corpus in batches of 32
  (bench/README.md, "Precisions"): fp32 +4%, int8 +14%, because the four Transposes a layer
  (14% of an int8 forward) and the mask Add and Softmax go into one kernel.
- ``standard``: only ONNX opset-17 ops, for runtimes without Microsoft's contrib ops (the
  OpenVINO rows of bench/precision_bench.py are built from it).
- ``fused``: ORT's Attention, SkipLayerNormalization and BiasGelu kernels; no faster than
  ``standard`` (5-15% slower for batches of 32 x 16..128 tokens), kept to re-measure.

ORT's level-ALL optimiser already turns the erf GELU of ``standard`` and ``mha`` into BiasGelu.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from embedrouter.engine.model_dir import EMBEDDING_KEYS, ModelSpec, layer_keys

OPSET = 17
MS_DOMAIN = "com.microsoft"
FLAVOURS = ("mha", "standard", "fused")
# Padded keys get this added to their attention scores; exp() of it is exactly 0 in float32, and
# it is far enough from float32's limit that adding a score cannot overflow.
MASK_NEG = -1e9
# Masked positions for max pooling, as in sentence-transformers.
MAX_POOL_FILL = -1e9


class _Graph:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0
        self._shared: set[str] = set()

    def const_once(self, name: str, value: np.ndarray) -> str:
        """A small constant shared by every layer; added on first use only."""
        if name not in self._shared:
            self._shared.add(name)
            self.const(name, value)
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        # from_array serialises in C order itself; np.ascontiguousarray would turn 0-d scalars
        # into shape-[1] tensors, which changes what Gather returns.
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], *, domain: str = "", outputs: int = 1,
           **attrs: object) -> str:
        self._n += 1
        names = [f"{op_type.lower()}_{self._n}" + (f"_{i}" if i else "") for i in range(outputs)]
        self.nodes.append(
            helper.make_node(op_type, inputs, names, name=f"{op_type}_{self._n}",
                             domain=domain or None, **attrs)
        )
        return names[0]


def _i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def _f32(value: float) -> np.ndarray:
    return np.array(value, dtype=np.float32)


def _embeddings(g: _Graph, spec: ModelSpec, w: Mapping[str, np.ndarray]) -> str:
    cfg = spec.config
    word = g.const("word_embeddings", w[EMBEDDING_KEYS["word"]])
    # token_type_ids are always 0 for single sentences, so row 0 of the type table is folded into
    # the position table: one Add fewer per forward and no third input.
    pos_type = w[EMBEDDING_KEYS["pos"]] + w[EMBEDDING_KEYS["type"]][0]
    pos = g.const("position_embeddings", pos_type.astype(np.float32))
    seq_len = g.op("Slice", ["input_shape", g.const("one_i", _i64(1)), g.const("two_i", _i64(2))])
    pos_rows = g.op("Slice", [pos, g.const("zero_i", _i64(0)), seq_len,
                              g.const("axis0_i", _i64(0))])
    tokens = g.op("Gather", [word, "input_ids"], axis=0)
    summed = g.op("Add", [tokens, pos_rows])
    return g.op("LayerNormalization", [summed, g.const("emb_ln_w", w[EMBEDDING_KEYS["ln_w"]]),
                                       g.const("emb_ln_b", w[EMBEDDING_KEYS["ln_b"]])],
                axis=-1, epsilon=cfg.layer_norm_eps)


def _gelu_erf(g: _Graph, x: str) -> str:
    scaled = g.op("Div", [x, g.const_once("sqrt2", _f32(math.sqrt(2.0)))])
    erf1 = g.op("Add", [g.op("Erf", [scaled]), g.const_once("one_f", _f32(1.0))])
    return g.op("Mul", [g.op("Mul", [x, erf1]), g.const_once("half_f", _f32(0.5))])


def _gelu_tanh(g: _Graph, x: str) -> str:
    cube = g.op("Mul", [g.op("Mul", [x, x]), x])
    inner = g.op("Add", [x, g.op("Mul", [cube, g.const_once("gelu_c3", _f32(0.044715))])])
    tanh = g.op("Tanh", [g.op("Mul", [inner, g.const_once("gelu_c",
                                                              _f32(math.sqrt(2.0 / math.pi)))])])
    tanh1 = g.op("Add", [tanh, g.const_once("one_f", _f32(1.0))])
    return g.op("Mul", [g.op("Mul", [x, tanh1]), g.const_once("half_f", _f32(0.5))])


def _attention_ops(g: _Graph, spec: ModelSpec, q: str, kk: str, v: str, mask_bias: str) -> str:
    """Scaled-dot-product attention over [B,S,H] q/k/v (q already scaled) in opset-17 ops."""
    cfg = spec.config
    heads_shape = g.const_once("heads_shape", _i64(0, 0, cfg.num_heads,
                                                   cfg.hidden_size // cfg.num_heads))
    qh = g.op("Transpose", [g.op("Reshape", [q, heads_shape])], perm=[0, 2, 1, 3])
    kh = g.op("Transpose", [g.op("Reshape", [kk, heads_shape])], perm=[0, 2, 3, 1])
    vh = g.op("Transpose", [g.op("Reshape", [v, heads_shape])], perm=[0, 2, 1, 3])
    scores = g.op("Add", [g.op("MatMul", [qh, kh]), mask_bias])
    ctx = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), vh])
    return g.op("Reshape", [g.op("Transpose", [ctx], perm=[0, 2, 1, 3]),
                            g.const_once("hidden_shape", _i64(0, 0, cfg.hidden_size))])


def _attention_mha(g: _Graph, spec: ModelSpec, q: str, kk: str, v: str, mask_i32: str) -> str:
    """The same in ORT's MultiHeadAttention kernel; ``mask_i32`` is the [B,S] 1/0 key mask.
    scale=1: the 1/sqrt(d) is already folded into Q's weights."""
    return g.op("MultiHeadAttention", [q, kk, v, "", mask_i32], domain=MS_DOMAIN,
                num_heads=spec.config.num_heads, scale=1.0)


def _standard_layer(g: _Graph, spec: ModelSpec, w: Mapping[str, np.ndarray], i: int, x: str,
                    mask: str, *, mha: bool = False) -> str:
    cfg = spec.config
    k = layer_keys(i)
    scale = 1.0 / math.sqrt(cfg.hidden_size // cfg.num_heads)
    # One [H, 3H] projection instead of three, with the 1/sqrt(d) score scale folded into Q.
    qkv_w = np.concatenate([w[k["q_w"]].T * scale, w[k["k_w"]].T, w[k["v_w"]].T], axis=1)
    qkv_b = np.concatenate([w[k["q_b"]] * scale, w[k["k_b"]], w[k["v_b"]]])
    qkv = g.op("Add", [g.op("MatMul", [x, g.const(f"l{i}_qkv_w", qkv_w)]),
                      g.const(f"l{i}_qkv_b", qkv_b)])
    q, kk, v = (f"l{i}_{n}" for n in ("q", "k", "v"))
    g.nodes.append(helper.make_node("Split", [qkv, g.const_once("split3", _i64(
        cfg.hidden_size, cfg.hidden_size, cfg.hidden_size))], [q, kk, v], axis=2,
        name=f"l{i}_split"))
    ctx = (_attention_mha if mha else _attention_ops)(g, spec, q, kk, v, mask)
    attn = g.op("Add", [g.op("MatMul", [ctx, g.const(f"l{i}_o_w", w[k["o_w"]].T)]),
                        g.const(f"l{i}_o_b", w[k["o_b"]])])
    x = g.op("LayerNormalization", [g.op("Add", [attn, x]), g.const(f"l{i}_ln1_w", w[k["ln1_w"]]),
                                    g.const(f"l{i}_ln1_b", w[k["ln1_b"]])],
             axis=-1, epsilon=cfg.layer_norm_eps)
    inter = g.op("Add", [g.op("MatMul", [x, g.const(f"l{i}_i_w", w[k["i_w"]].T)]),
                         g.const(f"l{i}_i_b", w[k["i_b"]])])
    act = _gelu_erf(g, inter) if cfg.activation == "gelu" else _gelu_tanh(g, inter)
    out = g.op("Add", [g.op("MatMul", [act, g.const(f"l{i}_f_w", w[k["f_w"]].T)]),
                       g.const(f"l{i}_f_b", w[k["f_b"]])])
    return g.op("LayerNormalization", [g.op("Add", [out, x]),
                                       g.const(f"l{i}_ln2_w", w[k["ln2_w"]]),
                                       g.const(f"l{i}_ln2_b", w[k["ln2_b"]])],
                axis=-1, epsilon=cfg.layer_norm_eps)


def _fused_layer(g: _Graph, spec: ModelSpec, w: Mapping[str, np.ndarray], i: int, x: str,
                 mask_i32: str) -> str:
    cfg = spec.config
    k = layer_keys(i)
    qkv_w = np.concatenate([w[k["q_w"]].T, w[k["k_w"]].T, w[k["v_w"]].T], axis=1)
    qkv_b = np.concatenate([w[k["q_b"]], w[k["k_b"]], w[k["v_b"]]])
    # A 2-D 0/1 mask_index is the "raw mask" form: the kernel adds its own large negative bias.
    ctx = g.op("Attention", [x, g.const(f"l{i}_qkv_w", qkv_w), g.const(f"l{i}_qkv_b", qkv_b),
                             mask_i32], domain=MS_DOMAIN, num_heads=cfg.num_heads)
    attn = g.op("MatMul", [ctx, g.const(f"l{i}_o_w", w[k["o_w"]].T)])
    x = g.op("SkipLayerNormalization", [attn, x, g.const(f"l{i}_ln1_w", w[k["ln1_w"]]),
                                        g.const(f"l{i}_ln1_b", w[k["ln1_b"]]),
                                        g.const(f"l{i}_o_b", w[k["o_b"]])],
             domain=MS_DOMAIN, epsilon=cfg.layer_norm_eps)
    inter = g.op("MatMul", [x, g.const(f"l{i}_i_w", w[k["i_w"]].T)])
    # BiasGelu is the erf formula, FastGelu the tanh approximation; both add the bias themselves.
    gelu_op = "BiasGelu" if cfg.activation == "gelu" else "FastGelu"
    act = g.op(gelu_op, [inter, g.const(f"l{i}_i_b", w[k["i_b"]])], domain=MS_DOMAIN)
    out = g.op("MatMul", [act, g.const(f"l{i}_f_w", w[k["f_w"]].T)])
    return g.op("SkipLayerNormalization", [out, x, g.const(f"l{i}_ln2_w", w[k["ln2_w"]]),
                                           g.const(f"l{i}_ln2_b", w[k["ln2_b"]]),
                                           g.const(f"l{i}_f_b", w[k["f_b"]])],
                domain=MS_DOMAIN, epsilon=cfg.layer_norm_eps)


def _pool(g: _Graph, spec: ModelSpec, hidden: str, mask_f: str) -> str:
    if spec.pooling == "cls":
        return g.op("Gather", [hidden, g.const("zero_scalar", np.array(0, dtype=np.int64))],
                    axis=1)
    mask3 = g.op("Unsqueeze", [mask_f, g.const_once("axis_last", _i64(-1))])
    if spec.pooling == "max":
        keep = g.op("Cast", [mask3], to=TensorProto.BOOL)
        filled = g.op("Where", [keep, hidden, g.const("max_fill", _f32(MAX_POOL_FILL))])
        return g.op("ReduceMax", [filled], axes=[1], keepdims=0)
    # Masked mean as one batched MatMul: [B,1,S] x [B,S,H] -> [B,1,H].
    summed = g.op("MatMul", [g.op("Unsqueeze", [mask_f, g.const_once("axis1", _i64(1))]),
                             hidden])
    summed = g.op("Squeeze", [summed, g.const_once("axis1", _i64(1))])
    count = g.op("ReduceSum", [mask3, g.const_once("axis1", _i64(1))], keepdims=0)
    count = g.op("Max", [count, g.const("min_count", _f32(1e-9))])
    return g.op("Div", [summed, count])


def _normalize(g: _Graph, x: str) -> str:
    norm = g.op("ReduceL2", [x], axes=[-1], keepdims=1)
    # Same floor as torch.nn.functional.normalize, so zero vectors stay zero instead of NaN.
    return g.op("Div", [x, g.op("Max", [norm, g.const("min_norm", _f32(1e-12))])])


def build_model(spec: ModelSpec, weights: Mapping[str, np.ndarray], *,
                flavour: str = "standard") -> onnx.ModelProto:
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown graph flavour {flavour!r}; expected one of {FLAVOURS}")
    g = _Graph()
    g.nodes.append(helper.make_node("Shape", ["input_ids"], ["input_shape"], name="input_shape"))
    hidden = _embeddings(g, spec, weights)
    mask_f = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    if flavour == "standard":
        # [B,S] 0/1 -> [B,1,1,S] additive bias, 0 for real tokens and MASK_NEG for padding.
        mask = g.op("Mul", [g.op("Sub", [g.const_once("one_f", _f32(1.0)), mask_f]),
                            g.const("mask_neg", _f32(MASK_NEG))])
        mask = g.op("Unsqueeze", [mask, g.const("axes_1_2", _i64(1, 2))])
    else:  # the contrib kernels take the [B,S] key mask as it is
        mask = g.op("Cast", ["attention_mask"], to=TensorProto.INT32)
    layer = (_fused_layer if flavour == "fused"
             else functools.partial(_standard_layer, mha=flavour == "mha"))
    for i in range(spec.config.num_layers):
        hidden = layer(g, spec, weights, i, hidden, mask)
    pooled = _pool(g, spec, hidden, mask_f)
    if spec.normalize:
        pooled = _normalize(g, pooled)
    g.nodes.append(helper.make_node("Identity", [pooled], ["embeddings"], name="output"))

    graph = helper.make_graph(
        g.nodes,
        "embedrouter_bert_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT,
                                       ["batch", spec.config.hidden_size])],
        initializer=g.inits,
    )
    opsets = [helper.make_opsetid("", OPSET)]
    if flavour != "standard":
        opsets.append(helper.make_opsetid(MS_DOMAIN, 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="embedrouter")
    model.ir_version = 8  # readable by every onnxruntime >= 1.14
    return model
