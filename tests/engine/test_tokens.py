"""wrap_ids / truncate / forward argument checks."""

from __future__ import annotations

import pytest

from embedrouter.engine import LocalModel


@pytest.mark.parametrize(
    ("ids", "wrapped"),
    [
        ([], [101, 102]),
        ([7592], [101, 7592, 102]),
        ([101, 7592], [101, 7592, 102]),
        ([7592, 102], [101, 7592, 102]),
        ([101, 7592, 102], [101, 7592, 102]),
        ([101], [101, 102]),
        ([102], [101, 102]),
    ],
)
def test_wrap_ids(minilm: LocalModel, ids: list[int], wrapped: list[int]) -> None:
    assert minilm.wrap_ids(ids) == wrapped


def test_wrap_ids_does_not_mutate(minilm: LocalModel) -> None:
    ids = [7592]
    minilm.wrap_ids(ids)
    assert ids == [7592]


def test_truncate(minilm: LocalModel) -> None:
    ids = [101, 1, 2, 3, 4, 102]
    assert minilm.truncate(ids, 6) == ids
    assert minilm.truncate(ids, 10) == ids
    assert minilm.truncate(ids, 4) == [101, 1, 2, 102]
    assert minilm.truncate(ids, 2) == [101, 102]
    with pytest.raises(ValueError):
        minilm.truncate(ids, 1)


def test_forward_rejects_bad_sequences(minilm: LocalModel) -> None:
    with pytest.raises(ValueError, match="empty"):
        minilm.forward([[101, 102], []])
    with pytest.raises(ValueError, match="max_seq_length"):
        minilm.forward([[101] + [7592] * 300 + [102]])
    with pytest.raises(ValueError, match="token ids"):
        minilm.forward([[101, 30522, 102]])
    with pytest.raises(ValueError, match="token ids"):
        minilm.forward([[101, -1, 102]])
