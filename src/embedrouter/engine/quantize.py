"""Lower-precision variants of the fp32 encoder graph, made from its bytes (no weights needed).

``int8`` is ONNX Runtime's dynamic quantization with per-channel weights: the weight matrices of
the encoder's MatMuls are stored as 8-bit integers with one scale per output column, and every
activation is quantized on the fly per batch, so no calibration data is needed and outliers in
one batch cannot spoil another. What was measured against the alternatives (static QDQ,
per-tensor weights, OpenVINO) is in bench/README.md ("Precisions").

Weights are unsigned (``QUInt8``): on x86 CPUs without AVX-512 VNNI, ORT multiplies u8 x s8 with
``vpmaddubsw``, whose 16-bit sums saturate; u8 x u8 takes a path that does not (ORT's
quantization docs, "When and why do I need to try U8U8?"). With VNNI both are exact.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort

from embedrouter.settings import LOCAL_QUANTIZATIONS

# Every precision LocalModel can serve; the config accepts the same list (a test ties them).
PRECISIONS = ("fp32", "int8")
# Bump when the recipe below changes; the cache key also carries onnxruntime's version, since the
# quantizer is part of it.
RECIPE_VERSION = "int8-dynamic-pc-u8-1"

assert PRECISIONS == LOCAL_QUANTIZATIONS, "settings.LOCAL_QUANTIZATIONS out of step"


def quantizer_version(precision: str) -> str:
    """What the cache key of a ``precision`` variant must carry ("" for fp32: no quantizer)."""
    if precision == "fp32":
        return ""
    return f"{RECIPE_VERSION}+onnxruntime-{ort.__version__}"


def _excluded(model: onnx.ModelProto) -> list[str]:
    """MatMul nodes kept in fp32: see EXCLUDE_WEIGHT_SUFFIXES."""
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and len(n.input) > 1
            and n.input[1].endswith(EXCLUDE_WEIGHT_SUFFIXES)]


# Weight initializers (named by onnx_builder) whose MatMuls stay fp32.
EXCLUDE_WEIGHT_SUFFIXES: tuple[str, ...] = ()


def quantize(fp32_graph: bytes, precision: str) -> bytes:
    """The ``precision`` variant of a serialized fp32 graph, serialized. Blocking (seconds)."""
    if precision == "fp32":
        return fp32_graph
    if precision != "int8":
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    # Imported here: the quantization package pulls in modules a fp32-only server never needs.
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load_from_string(fp32_graph)
    with tempfile.TemporaryDirectory(prefix="embedrouter-quant-") as tmp:
        out = Path(tmp) / "int8.onnx"
        quantize_dynamic(model, out, op_types_to_quantize=["MatMul"], per_channel=True,
                         weight_type=QuantType.QUInt8, nodes_to_exclude=_excluded(model))
        return out.read_bytes()
