"""Precision variants: built once from the fp32 graph, cached under their own key, and close
enough to fp32 to serve (issue 12's quality gates, on the golden file and the bench corpus)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from embedrouter.engine import LocalModel, ModelLoadError, onnx_cache, quantize
from embedrouter.settings import LOCAL_QUANTIZATIONS
from tests.engine.tiny_bert import write_tiny_model
from tests.engine.util import cosine, top_k_overlap

CORPUS = Path(__file__).resolve().parents[2] / "bench" / "corpus.jsonl"
# Issue 12's gates for int8 against fp32 (and against sentence-transformers' golden vectors).
INT8_COS_MEAN, INT8_COS_MIN, INT8_TOP10 = 0.99, 0.98, 0.9
IDS = [[101, 7592, 2088, 102], [101, 7, 102]]


def _int8_of_tiny(tmp_path: Path) -> tuple[LocalModel, LocalModel, Path]:
    write_tiny_model(tmp_path / "m")
    cache = tmp_path / "cache"
    fp32 = LocalModel.load(tmp_path / "m", cache_dir=cache, threads=1)
    return fp32, fp32.with_precision("int8", cache_dir=cache, threads=1), cache


def test_engine_and_config_agree_on_precisions() -> None:
    assert quantize.PRECISIONS == LOCAL_QUANTIZATIONS


def test_int8_is_built_from_the_cached_fp32_graph_once(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    write_tiny_model(tmp_path / "m")
    cache = tmp_path / "cache"
    fp32 = LocalModel.load(tmp_path / "m", cache_dir=cache, threads=1)

    def no_weights(*_a: Any, **_k: Any) -> None:
        raise AssertionError("the int8 variant must come from the fp32 graph, not the weights")

    monkeypatch.setattr(onnx_cache, "load_weights", no_weights)
    int8 = fp32.with_precision("int8", cache_dir=cache, threads=1)
    assert int8.built_onnx and int8.precision == "int8"
    assert int8.onnx_path != fp32.onnx_path and int8.onnx_path.name.endswith(".int8.onnx")
    mtime = int8.onnx_path.stat().st_mtime_ns
    builds = onnx_cache.build_count
    again = LocalModel.load(tmp_path / "m", cache_dir=cache, threads=1, precision="int8")
    assert not again.built_onnx and onnx_cache.build_count == builds
    assert again.onnx_path == int8.onnx_path and int8.onnx_path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again.forward(IDS), int8.forward(IDS))
    assert not list(cache.rglob("*.tmp"))


def test_int8_graph_quantizes_all_but_the_first_ffn_output(tmp_path: Path) -> None:
    _, int8, _ = _int8_of_tiny(tmp_path)
    graph = onnx.load(str(int8.onnx_path)).graph
    fp32_matmul_weights = {n.input[1] for n in graph.node if n.op_type == "MatMul"}
    # Weight MatMuls still in fp32: only the one the recipe keeps (the others read activations).
    assert {w for w in fp32_matmul_weights if w.endswith("_w")} == set(quantize.FP32_WEIGHTS)
    inits = {t.name: t for t in graph.initializer}
    for name in ("l0_qkv_w", "l0_i_w", "l1_f_w", "l1_o_w"):
        assert name not in inits
        assert inits[f"{name}_quantized"].data_type == (
            onnx.TensorProto.INT8 if quantize.WEIGHTS_SIGNED else onnx.TensorProto.UINT8)
        assert len(onnx.numpy_helper.to_array(inits[f"{name}_scale"]).shape) == 1  # per channel


@pytest.mark.parametrize("signed", [True, False])
def test_weight_signedness_can_be_chosen_and_both_stay_close(tmp_path: Path,
                                                             signed: bool) -> None:
    fp32, _, _ = _int8_of_tiny(tmp_path)
    dst = tmp_path / "variant.onnx"
    quantize.quantize_file(fp32.onnx_path, dst, "int8", signed=signed)
    inits = {t.name: t for t in onnx.load(str(dst)).graph.initializer}
    assert inits["l1_f_w_quantized"].data_type == (
        onnx.TensorProto.INT8 if signed else onnx.TensorProto.UINT8)


@pytest.mark.parametrize(("flags", "vnni"), [
    ("fpu sse2 avx avx2 fma", False),
    ("fpu avx2 avx512f avx512_vnni avx512_bf16", True),
    ("fpu avx2 avx_vnni", True),
])
def test_vnni_is_read_from_the_cpu_flags(tmp_path: Path, flags: str, vnni: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\n")
    assert quantize.cpu_has_vnni(cpuinfo) is vnni
    assert quantize.cpu_has_vnni(tmp_path / "missing") is False


def test_the_recipe_names_the_weight_signedness() -> None:
    assert ("-s8-" in quantize.RECIPE_VERSION) is quantize.WEIGHTS_SIGNED
    assert quantize.quantizer_version("int8").startswith(quantize.RECIPE_VERSION)


def test_quantizer_version_is_in_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fp32, int8, cache = _int8_of_tiny(tmp_path)
    monkeypatch.setattr(quantize, "RECIPE_VERSION", quantize.RECIPE_VERSION + "-next")
    newer = LocalModel.load(tmp_path / "m", cache_dir=cache, threads=1, precision="int8")
    assert newer.built_onnx and newer.onnx_path != int8.onnx_path
    # The fp32 graph's key is untouched by the quantizer's version.
    assert not LocalModel.load(tmp_path / "m", cache_dir=cache, threads=1).built_onnx
    assert sorted(p.name for p in cache.glob("*.onnx")) == sorted(
        p.name for p in (fp32.onnx_path, int8.onnx_path, newer.onnx_path))


def test_corrupted_int8_cache_file_is_rebuilt(tmp_path: Path) -> None:
    _, int8, cache = _int8_of_tiny(tmp_path)
    want = int8.forward(IDS)
    int8.onnx_path.write_bytes(b"not an onnx file")
    again = LocalModel.load(tmp_path / "m", cache_dir=cache, threads=1, precision="int8")
    assert again.built_onnx
    np.testing.assert_array_equal(again.forward(IDS), want)


def test_unknown_precision_is_refused(tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "m")
    with pytest.raises(ModelLoadError, match="bf16"):
        LocalModel.load(tmp_path / "m", cache_dir=tmp_path / "cache", precision="bf16")


def test_quantizer_failure_is_a_load_error() -> None:
    with pytest.raises(ModelLoadError, match="int8 variant failed"):
        quantize.quantize(b"not an onnx graph", "int8")


# -- quality gates on the real model -------------------------------------------------------


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def test_int8_against_golden_vectors(minilm_int8: LocalModel,
                                     golden: list[dict[str, Any]]) -> None:
    out = minilm_int8.embed([g["input"] for g in golden], batch_size=8)
    cos = cosine(out, np.array([g["embedding"] for g in golden]))
    assert cos.mean() >= INT8_COS_MEAN and cos.min() >= INT8_COS_MIN, (cos.mean(), cos.min())
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_int8_against_fp32_on_the_corpus(minilm: LocalModel, minilm_int8: LocalModel,
                                         corpus: list[str]) -> None:
    fp32 = minilm.embed(corpus)
    int8 = minilm_int8.embed(corpus)
    cos = cosine(int8, fp32)
    assert cos.mean() >= INT8_COS_MEAN and cos.min() >= INT8_COS_MIN, (cos.mean(), cos.min())
    assert top_k_overlap(fp32, int8, 10) >= INT8_TOP10
    # And it is a different computation, not fp32 under another name.
    assert float(np.abs(int8 - fp32).max()) > 1e-3
