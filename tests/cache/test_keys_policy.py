"""Cache keys cover everything that fixes a vector and nothing else; the per-request policy
is the stricter of the key's and the header's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from embedrouter.cache.keys import input_keys, space_key
from embedrouter.cache.policy import BYPASS, REFRESH, USE, CacheMode, resolve_mode
from embedrouter.types import TextInput, TokenInput

BASE = {"fingerprint": "local:bert-abc:sha", "context_length": 256, "width": 384,
        "input_type": None, "prefix": ""}


def space(**changes: object) -> bytes:
    return space_key(**{**BASE, **changes})  # type: ignore[arg-type]


def test_every_part_of_the_space_changes_the_key() -> None:
    variants = [space(), space(fingerprint="local:bert-abd:sha"), space(context_length=512),
                space(width=256), space(input_type="query"), space(input_type="passage"),
                space(input_type="query", prefix="query: "), space(prefix="query: ")]
    assert len(set(variants)) == len(variants)


def test_fields_cannot_run_into_each_other() -> None:
    # Without length prefixes "ab" + "c" and "a" + "bc" would hash the same bytes.
    assert space(fingerprint="x:1", prefix="2") != space(fingerprint="x:", prefix="12")
    assert space(input_type="") != space(input_type=None)


def test_text_and_ids_never_share_a_key() -> None:
    s = space()
    text, ids, also_ids = input_keys(s, [TextInput("1"), TokenInput((1,)), TokenInput((1, 0))])
    assert len({text, ids, also_ids}) == 3


@given(st.lists(st.text(max_size=20) | st.lists(st.integers(0, 2**40), max_size=6),
                min_size=1, max_size=12))
def test_equal_inputs_equal_keys_and_only_those(items: list[str | list[int]]) -> None:
    inputs = [TextInput(x) if isinstance(x, str) else TokenInput(tuple(x)) for x in items]
    keys = input_keys(space(), inputs)
    assert len(keys) == len(inputs) and all(len(k) == 32 for k in keys)
    for a, ka in zip(inputs, keys, strict=True):
        for b, kb in zip(inputs, keys, strict=True):
            assert (ka == kb) == (a == b)


def test_lone_surrogates_and_huge_ids_are_exact() -> None:
    s = space()
    a, b, c = input_keys(s, [TextInput("\ud800"), TextInput("\udc00"), TextInput("?")])
    assert len({a, b, c}) == 3
    big = input_keys(s, [TokenInput((2**70,)), TokenInput((2**70 + 1,))])
    assert big[0] != big[1]


@pytest.mark.parametrize(("policy", "header", "want"), [
    (None, None, USE),
    ("default", None, USE),
    ("default", "no-cache", REFRESH),
    ("default", "no-store", BYPASS),
    ("default", "No-Store, max-age=0", BYPASS),
    ("default", "max-age=0, NO-CACHE", REFRESH),
    ("default", "no-cache, no-store", BYPASS),
    ("default", "max-age=60", USE),
    ("default", "", USE),
    ("no-cache", None, REFRESH),
    ("no-cache", "no-store", BYPASS),
    ("no-store", None, BYPASS),
    ("no-store", "no-cache", CacheMode(read=False, write=False)),
    ("something-newer", None, BYPASS),  # unknown: the choice that cannot be wrong
])
def test_resolve_mode(policy: str | None, header: str | None, want: CacheMode) -> None:
    assert resolve_mode(policy, header) == want


def test_every_policy_a_key_may_hold_has_a_mode() -> None:
    from embedrouter.cache.policy import _BY_NAME
    from embedrouter.store.records import KEY_CACHE_POLICIES
    assert set(_BY_NAME) == set(KEY_CACHE_POLICIES)
