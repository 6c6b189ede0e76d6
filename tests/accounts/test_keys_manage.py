"""Key limits and management (update, delete) over the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from embedrouter.accounts import KeyService
from embedrouter.errors import AuthenticationFailed, InvalidRequest, NotFound


async def test_create_with_limits_round_trips(keys: KeyService) -> None:
    key, rec = await keys.create("team", limit_nanos=2_500_000_000, limit_reset="monthly",
                                 rpm=60, tpm=100_000)
    got = await keys.authenticate(f"Bearer {key}")
    assert (got.limit_nanos, got.limit_reset, got.rpm, got.tpm) == (
        2_500_000_000, "monthly", 60, 100_000)
    assert got == rec


async def test_update_changes_only_what_is_given_and_clears_with_none(keys: KeyService) -> None:
    key, rec = await keys.create("team", limit_nanos=10, limit_reset="daily", rpm=5)
    updated = await keys.update(rec.key_hash, {"label": "renamed", "limit_nanos": None})
    assert (updated.label, updated.limit_nanos, updated.limit_reset, updated.rpm) == (
        "renamed", None, "daily", 5)
    assert updated.updated_at is not None
    await keys.update(rec.key_hash, {"disabled": True})
    with pytest.raises(AuthenticationFailed):
        await keys.authenticate(f"Bearer {key}")


@pytest.mark.parametrize("changes", [{"limit_reset": "yearly"}, {"rpm": -1},
                                     {"limit_nanos": 1.5}, {"tpm": True}, {"label": " "},
                                     {"cache_policy": "sometimes"}, {"cache_policy": 1},
                                     {"label": "a\x00b"}])
async def test_bad_updates_are_refused_by_field(keys: KeyService, changes: dict) -> None:  # type: ignore[type-arg]
    _, rec = await keys.create("team")
    with pytest.raises(InvalidRequest) as info:
        await keys.update(rec.key_hash, dict(changes))
    assert info.value.metadata["field"] in {*changes, "limit", "label"}


async def test_cache_policy_round_trips_and_default_is_stored_as_none(
        keys: KeyService) -> None:
    key, rec = await keys.create("cached", cache_policy="no-store")
    assert rec.cache_policy == "no-store"
    assert (await keys.authenticate(f"Bearer {key}")).cache_policy == "no-store"
    changed = await keys.update(rec.key_hash, {"cache_policy": "no-cache"})
    assert changed.cache_policy == "no-cache"
    assert (await keys.authenticate(f"Bearer {key}")).cache_policy == "no-cache"
    # "default" and null are one state: follow the request's Cache-Control.
    assert (await keys.update(rec.key_hash, {"cache_policy": "default"})).cache_policy is None
    _, plain = await keys.create("plain", cache_policy="default")
    assert plain.cache_policy is None
    assert (await keys.get(plain.key_hash)).cache_policy is None


@pytest.mark.parametrize("policy", ["sometimes", "NO-STORE", ""])
async def test_create_refuses_an_unknown_cache_policy(keys: KeyService, policy: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        await keys.create("bad", cache_policy=policy)
    assert info.value.metadata == {"field": "cache_policy"}
    assert await keys.list() == []


async def test_delete_refuses_the_key_at_once_and_then_is_not_found(keys: KeyService) -> None:
    key, rec = await keys.create("gone")
    await keys.delete(rec.key_hash)
    with pytest.raises(AuthenticationFailed):
        await keys.authenticate(f"Bearer {key}")
    with pytest.raises(NotFound):
        await keys.delete(rec.key_hash)
    with pytest.raises(NotFound):
        await keys.update(rec.key_hash, {"label": "x"})
