"""bench/precision_bench.py: the helpers its quality columns and batching rest on."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def pb():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(BENCH))  # the script imports its sibling http_bench
    try:
        spec = importlib.util.spec_from_file_location("embedrouter_precision_bench",
                                                      BENCH / "precision_bench.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))


def test_quality_of_identical_and_perturbed_vectors(pb) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(50, 8))
    same = pb.quality(ref, ref * 2.0)  # scale does not matter: cosines
    assert same["cos_min"] == pytest.approx(1.0) and same["top10"] == 1.0
    noisy = pb.quality(ref, ref + rng.normal(scale=0.5, size=ref.shape))
    assert noisy["cos_min"] < noisy["cos_mean"] < 1.0 and noisy["top10"] < 1.0
    assert pb.quality(ref, rng.normal(size=ref.shape))["top10"] < 0.5


def test_batches_are_length_sorted_and_masked(pb) -> None:  # type: ignore[no-untyped-def]
    seqs = [[101, *range(n), 102] for n in (5, 1, 9, 3)]
    out = pb.batches(seqs, size=2)
    assert [rows for rows, _, _ in out] == [[1, 3], [0, 2]]
    _, ids, mask = out[1]
    assert ids.shape == (2, 11) and mask.sum() == 7 + 11
    assert ids[0, :7].tolist() == seqs[0] and not ids[0, 7:].any()


def test_calibration_sample_is_separate_from_the_corpus(pb) -> None:  # type: ignore[no-untyped-def]
    corpus = set(pb.load_corpus())
    calibration = pb.load_corpus(pb.CALIBRATION)
    assert len(calibration) == 300 and not corpus & set(calibration)
