"""The hand-written ONNX graph against a plain numpy BERT, on a tiny random model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedrouter.engine import LocalModel
from embedrouter.engine.onnx_builder import FLAVOURS
from tests.engine.tiny_bert import reference_embed, write_tiny_model

# Mixed lengths so that every batch is padded, and one sequence as long as the position table.
SEQS = [[101, 102], [101, 7592, 2088, 102], [101, *range(2000, 2061), 102], [101, 5, 6, 102]]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(("pooling", "normalize"),
                         [("mean", True), ("mean", False), ("cls", True), ("max", False)])
def test_graph_matches_numpy_reference(tmp_path: Path, pooling: str, normalize: bool,
                                       flavour: str) -> None:
    weights = write_tiny_model(tmp_path / "m", pooling=pooling, normalize=normalize,
                               max_seq_length=None)
    model = LocalModel.load(tmp_path / "m", cache_dir=tmp_path / "cache", threads=1,
                            flavour=flavour)
    assert model.dim == 16 and model.max_seq_length == 64  # falls back to the position table
    got = model.forward(SEQS)
    want = np.stack([reference_embed(weights, s, pooling=pooling, normalize=normalize)
                     for s in SEQS])
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize(("prefix", "gamma_beta"), [("bert.", False), ("", True)])
def test_weight_naming_variants(tmp_path: Path, prefix: str, gamma_beta: bool) -> None:
    weights = write_tiny_model(tmp_path / "m", prefix=prefix, gamma_beta=gamma_beta)
    model = LocalModel.load(tmp_path / "m", cache_dir=tmp_path / "cache", threads=1)
    want = reference_embed(weights, SEQS[1], pooling="mean", normalize=True)
    np.testing.assert_allclose(model.forward([SEQS[1]])[0], want, atol=2e-5)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(("act", "tanh"),
                         [("gelu", False), ("gelu_python", False), ("gelu_new", True),
                          ("gelu_pytorch_tanh", True)])
def test_gelu_variants(tmp_path: Path, act: str, tanh: bool, flavour: str) -> None:
    # CLS pooling without L2: mean pooling and normalisation would shrink the gap between the two
    # GELU formulas towards the tolerance.
    weights = write_tiny_model(tmp_path / "m", config={"hidden_act": act}, pooling="cls",
                               normalize=False, max_seq_length=None)
    model = LocalModel.load(tmp_path / "m", cache_dir=tmp_path / "cache", threads=1,
                            flavour=flavour)

    def reference(tanh_gelu: bool) -> np.ndarray:
        return np.stack([reference_embed(weights, s, pooling="cls", normalize=False,
                                         tanh_gelu=tanh_gelu) for s in SEQS])

    want = reference(tanh)
    np.testing.assert_allclose(model.forward(SEQS), want, atol=2e-5)
    # The other formula must be measurably different, or this test would prove nothing.
    assert np.abs(reference(not tanh) - want).max() > 1e-4


def test_unknown_flavour(tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "m")
    with pytest.raises(ValueError, match="flavour"):
        LocalModel.load(tmp_path / "m", cache_dir=tmp_path / "cache", flavour="turbo")
