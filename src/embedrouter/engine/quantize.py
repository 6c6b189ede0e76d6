"""Lower-precision variants of the fp32 encoder graph, made from its bytes (no weights needed).

``int8`` is ONNX Runtime's dynamic quantization with per-channel weights: the weight matrices of
the encoder's MatMuls are stored as 8-bit integers with one scale per output column, and every
activation is quantized on the fly per batch, so no calibration data is needed and an outlier in
one batch cannot spoil another. Measured against the alternatives (static QDQ, per-tensor
weights, s8 weights, OpenVINO) in bench/README.md, "Precisions".

- Weight signedness follows the CPU. Without VNNI, ORT multiplies u8 x s8 with ``vpmaddubsw``,
  whose 16-bit sums can saturate (ORT's quantization docs, "When and why do I need to try
  U8U8?"): weights are unsigned there (``QUInt8``), a u8 x u8 path that cannot. With VNNI
  (AVX-512 VNNI or AVX-VNNI) ``vpdpbusd`` sums u8 x s8 exactly in 32 bits, and signed weights
  (``QInt8``) take that fast path: 2.0x fp32 where u8 weights gave 1.1x on a Zen 4
  (bench/README.md).
- Layer 0's FFN output MatMul stays fp32. Its input (the first GELU's output) has the widest range
  of any activation, and one scale per tensor for it cost the most: all-int8 gave cosine to fp32
  min 0.978 on the corpus (gate: 0.98); keeping that one of the 24 MatMuls (5.6% of their FLOPs)
  in fp32 gave 0.985, more than any other single MatMul or any whole kind of MatMul but the six
  FFN outputs together (bench/README.md has the table).

Quantizing runs in a child process: ORT's quantizer logs on the root logger and peaks at several
hundred MB above the server's own footprint, and neither should land in a serving process.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import onnxruntime as ort

from embedrouter.engine.errors import ModelLoadError
from embedrouter.settings import LOCAL_QUANTIZATIONS

log = logging.getLogger(__name__)

# Every precision LocalModel can serve; the config accepts the same list (a test ties them).
PRECISIONS = ("fp32", "int8")


def cpu_has_vnni(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this x86 CPU has an 8-bit dot product (AVX-512 VNNI or AVX-VNNI); False where
    that cannot be read (not Linux, not x86), which keeps the recipe that is safe everywhere."""
    try:
        with cpuinfo.open() as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return "avx512_vnni" in flags or "avx_vnni" in flags
    except OSError:
        pass
    return False


WEIGHTS_SIGNED = cpu_has_vnni()
# Bump when the recipe changes; the cache key carries onnxruntime's version too, since the
# quantizer is part of it, and the weights' signedness, since it follows the CPU.
RECIPE_VERSION = f"int8-dynamic-pc-{'s8' if WEIGHTS_SIGNED else 'u8'}-l0f-1"
# Weight initializers (named by onnx_builder) whose MatMuls stay fp32 (see above).
FP32_WEIGHTS = ("l0_f_w",)
QUANTIZE_TIMEOUT_S = 600
# Activation memory per padded token relative to fp32. An int8 forward keeps quantized copies and
# int32 accumulators beside the fp32 tensors: over the corpus in batches of 32 an int8-only
# process peaked ~80 MB above an fp32-only one although its weights are ~30 MB smaller. The
# Batcher divides its per-batch budgets by this, so either precision's largest batch needs about
# the same arena (they share one: model._ensure_shared_arena).
ACTIVATION_FACTOR = {"fp32": 1, "int8": 2}
# ORT optimisers a precision's session runs without. Once the int8 graph's MatMuls carry their bias
# (DynamicQuantizeMatMul), ORT fuses each residual Add + LayerNormalization into
# SkipLayerNormalization, whose CPU kernel took 23% of an int8 forward on a 2-core Zen 5
# (onnxruntime 1.32); unfused, the corpus ran 25% faster with the same vectors to 1e-3 of cosine.
# The fp32 graph never matches the pattern (its bias Add sits between).
DISABLED_OPTIMIZERS: dict[str, list[str]] = {"int8": ["SkipLayerNormFusion"]}

assert PRECISIONS == LOCAL_QUANTIZATIONS, "settings.LOCAL_QUANTIZATIONS out of step"


def quantizer_version(precision: str) -> str:
    """What the cache key of a ``precision`` variant must carry ("" for fp32: no quantizer)."""
    if precision == "fp32":
        return ""
    return f"{RECIPE_VERSION}+onnxruntime-{ort.__version__}"


def quantize_file(src: Path, dst: Path, precision: str, *, signed: bool | None = None) -> None:
    """Writes the ``precision`` variant of the fp32 graph ``src`` to ``dst``, in this process.
    ``signed``: s8 (True) or u8 (False) weights; None follows this CPU (``WEIGHTS_SIGNED``)."""
    if precision != "int8":
        raise ValueError(f"cannot quantize to {precision!r}; expected one of {PRECISIONS[1:]}")
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if signed is None:
        signed = WEIGHTS_SIGNED
    model = onnx.load(str(src))
    keep = [n.name for n in model.graph.node
            if n.op_type == "MatMul" and len(n.input) > 1 and n.input[1] in FP32_WEIGHTS]
    # DefaultTensorType: ONNX shape inference knows no com.microsoft op (the mha flavour's
    # MultiHeadAttention), so the quantizer is told the untyped tensors after it are float.
    quantize_dynamic(model, dst, op_types_to_quantize=["MatMul"], per_channel=True,
                     weight_type=QuantType.QInt8 if signed else QuantType.QUInt8,
                     nodes_to_exclude=keep,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def quantize(fp32_graph: bytes, precision: str) -> bytes:
    """The ``precision`` variant of a serialized fp32 graph, serialized. Blocking (seconds)."""
    if precision == "fp32":
        return fp32_graph
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    with tempfile.TemporaryDirectory(prefix="embedrouter-quant-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / f"{precision}.onnx"
        src.write_bytes(fp32_graph)
        # -c, not -m: running this module as __main__ after the package imported it warns.
        cmd = [sys.executable, "-c", "import sys; from embedrouter.engine.quantize import _main; "
               "sys.exit(_main(sys.argv[1:]))", str(src), str(dst), precision]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=QUANTIZE_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as exc:
            # No usable interpreter to spawn (an embedding host): do it here instead.
            log.warning("cannot quantize in a child process (%s); quantizing in this one", exc)
            quantize_file(src, dst, precision)
        else:
            if done.returncode != 0:
                tail = "\n".join(done.stderr.strip().splitlines()[-5:])
                raise ModelLoadError(f"building the {precision} variant failed: {tail}")
        return dst.read_bytes()


def _main(argv: list[str]) -> int:
    """The child process: SRC DST PRECISION."""
    if len(argv) != 3:
        print("usage: _main SRC DST PRECISION", file=sys.stderr)
        return 2
    # The quantizer logs every tensor at INFO on the root logger; only its errors matter here.
    logging.basicConfig(level=logging.ERROR)
    quantize_file(Path(argv[0]), Path(argv[1]), argv[2])
    return 0
