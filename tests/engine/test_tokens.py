"""wrap_ids / truncate / forward argument checks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedrouter.engine import LocalModel
from embedrouter.engine.model import PROBE_CHARS_PER_TOKEN


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


words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
                min_size=1, max_size=14)
texts = st.lists(words, min_size=1, max_size=400).flatmap(
    lambda ws: st.lists(st.sampled_from([" ", "\n", "\t", "", ",", "  "]), min_size=len(ws),
                        max_size=len(ws)).map(lambda seps: "".join(w + s for w, s in
                                                                    zip(ws, seps, strict=True))))


@settings(max_examples=150, deadline=None)
@given(text=texts, limit=st.integers(4, 40))
def test_tokenize_capped_is_exact_or_a_true_prefix(minilm: LocalModel, text: str,
                                                   limit: int) -> None:
    # The bounded tokenizer either gives the full ids, or (cut) a head that is exactly the full
    # ids' head and already longer than the limit, so "too long" and truncation stay exact.
    full = minilm.tokenize([text])[0]
    (got,), (cut,) = minilm.tokenize_capped([text], limit)
    if not cut:
        assert got == full
    else:
        assert len(got) > limit and len(full) >= len(got)
        assert got[:-1] == full[:len(got) - 1]  # same ids up to the head's closing [SEP]
        assert minilm.truncate(got, limit) == minilm.truncate(full, limit)


def test_tokenize_capped_only_reads_a_prefix_of_a_long_text(minilm: LocalModel) -> None:
    text = "word " * 200_000  # a million characters; the full encoding would be 200k ids
    (got,), (cut,) = minilm.tokenize_capped([text], 256)
    assert cut and 256 < len(got) < 256 * PROBE_CHARS_PER_TOKEN
