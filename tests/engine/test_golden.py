"""all-MiniLM-L6-v2 against vectors computed by sentence-transformers (tests/data golden file)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from embedrouter.engine import LocalModel
from tests.engine.util import cosine

MIN_COS = 0.9999


def test_shape_facts(minilm: LocalModel) -> None:
    assert (minilm.dim, minilm.max_seq_length, minilm.vocab_size) == (384, 256, 30522)
    assert (minilm.cls_id, minilm.sep_id, minilm.pad_id) == (101, 102, 0)
    assert len(minilm.weights_sha256) == 64


def test_tokenize_matches_golden(minilm: LocalModel, golden: list[dict[str, Any]]) -> None:
    ids = minilm.tokenize([g["input"] for g in golden])
    for got, g in zip(ids, golden, strict=True):
        assert got == g["token_ids"], g["input"]
        assert len(got) == g["tokens_with_special"]


def test_embed_matches_golden(minilm: LocalModel, golden: list[dict[str, Any]]) -> None:
    out = minilm.embed([g["input"] for g in golden], batch_size=8)
    assert out.dtype == np.float32 and out.shape == (len(golden), 384)
    cos = cosine(out, np.array([g["embedding"] for g in golden]))
    assert cos.min() >= MIN_COS, [golden[i]["input"] for i in np.flatnonzero(cos < MIN_COS)]
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_forward_mixed_length_batches(minilm: LocalModel, golden: list[dict[str, Any]]) -> None:
    # Unsorted batches: short inputs share a batch with long ones and get heavily padded.
    order = list(range(len(golden)))
    random.Random(7).shuffle(order)
    for start in range(0, len(order), 7):
        rows = order[start:start + 7]
        out = minilm.forward([golden[i]["token_ids"] for i in rows])
        cos = cosine(out, np.array([golden[i]["embedding"] for i in rows]))
        assert cos.min() >= MIN_COS


def test_batch_composition_independence(minilm: LocalModel, golden: list[dict[str, Any]]) -> None:
    longest = max(golden, key=lambda g: len(g["token_ids"]))["token_ids"]
    for g in golden[:6]:
        alone = minilm.forward([g["token_ids"]])
        padded = minilm.forward([longest, g["token_ids"], [101, 102]])[1:2]
        assert cosine(alone, padded)[0] >= 0.99999
        np.testing.assert_allclose(alone, padded, atol=1e-5)


def test_tokenize_never_truncates_and_embed_does(minilm: LocalModel) -> None:
    text = "word " * 600  # tokenizer.json itself asks for truncation at 128
    (ids,) = minilm.tokenize([text])
    assert len(ids) == 602 and ids[0] == 101 and ids[-1] == 102
    cut = minilm.truncate(ids, minilm.max_seq_length)
    assert len(cut) == 256 and cut[-1] == 102 and cut[:255] == ids[:255]
    np.testing.assert_allclose(minilm.embed([text]), minilm.forward([cut]), atol=1e-6)


def test_empty_inputs(minilm: LocalModel) -> None:
    assert minilm.tokenize([]) == []
    assert minilm.tokenize([""]) == [[101, 102]]
    assert minilm.embed([]).shape == (0, 384)
    assert minilm.forward([]).shape == (0, 384)
