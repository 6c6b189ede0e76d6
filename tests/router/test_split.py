"""Splitting to caps and reassembly by index: properties over random batches and replies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedrouter.router.split import InvalidReply, apportion, halve, place, split


@settings(max_examples=300, deadline=None)
@given(counts=st.lists(st.integers(1, 50), min_size=1, max_size=80),
       max_inputs=st.one_of(st.none(), st.integers(1, 20)),
       max_tokens=st.one_of(st.none(), st.integers(1, 200)),
       seed=st.integers(0, 2**32 - 1))
def test_parts_respect_caps_and_reassemble_exactly(counts: list[int], max_inputs: int | None,
                                                  max_tokens: int | None, seed: int) -> None:
    parts = split(counts, max_inputs=max_inputs, max_tokens=max_tokens)
    assert [i for p in parts for i in p] == list(range(len(counts)))  # every input once, in order
    for p in parts:
        assert max_inputs is None or len(p) <= max_inputs
        if max_tokens is not None and len(p) > 1:
            assert sum(counts[i] for i in p) <= max_tokens
    # Each "input" embeds to a row that encodes its own position; replies come back shuffled.
    rng = np.random.default_rng(seed)
    want = np.arange(len(counts), dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    out = np.full((len(counts), 3), np.nan, dtype=np.float32)
    for p in rng.permutation(len(parts)):
        part = parts[p]
        order = rng.permutation(len(part))
        place(out, part, order.tolist(), want[np.asarray(part)[order]])
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize(("indices", "rows", "match"), [
    ([0, 1], np.zeros((2, 3)), "for 3 inputs"),
    ([0, 1, 1], np.zeros((3, 3)), "exactly once"),
    ([0, 1, 3], np.zeros((3, 3)), "exactly once"),
    ([0, 1, 2], np.zeros((3, 4)), "4 dimensions"),
    ([0, 1, 2], np.zeros((2, 3)), "indices for 2 rows"),
    ([0, 1, 2], np.array([[0, 0, np.nan]] * 3), "non-finite"),
])
def test_bad_replies_are_invalid_never_partial(indices: list[int], rows: np.ndarray,
                                               match: str) -> None:
    out = np.zeros((5, 3), dtype=np.float32)
    with pytest.raises(InvalidReply, match=match):
        place(out, [2, 3, 4], indices, rows)
    assert not out.any()  # nothing written


def test_halve() -> None:
    assert halve([4, 5, 6]) == [[4], [5, 6]]
    with pytest.raises(ValueError):
        halve([1])


def test_oversized_single_input_gets_its_own_part() -> None:
    assert split([5, 500, 5], max_inputs=None, max_tokens=100) == [[0], [1], [2]]


@given(total=st.integers(0, 10**6), weights=st.lists(st.integers(0, 5000), min_size=1,
                                                      max_size=40))
def test_apportion_is_whole_proportional_and_exact(total: int, weights: list[int]) -> None:
    shares = apportion(total, weights)
    assert len(shares) == len(weights) and sum(shares) == total and min(shares) >= 0
    weight = sum(weights) or len(weights)
    for share, w in zip(shares, weights if sum(weights) else [1] * len(weights), strict=True):
        assert abs(share - total * w / weight) < 1  # largest remainder: off by under one
