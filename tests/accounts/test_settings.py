"""``[accounts]``, ``[limits]`` and the Redis settings: parsed exactly, refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedrouter.settings import SettingsError, load_settings

GOOD = """
[storage]
redis_url = "redis://127.0.0.1:6379/0"
redis_prefix = "er:"

[accounts]
enforce_credits = true
reservation_ttl_s = 60

[limits]
requests_per_minute = 600
tokens_per_minute = 1000000
[limits.models."Acme/Model"]
requests_per_minute = 30
"""


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "er.toml"
    path.write_text(text)
    return load_settings(path, env=env or {})


def test_accounts_and_limits_are_read(tmp_path: Path) -> None:
    s = load(tmp_path, GOOD)
    a = s.accounts
    assert a.enabled and a.enforce_credits and a.reservation_ttl_s == 60
    assert (a.requests_per_minute, a.tokens_per_minute) == (600, 1_000_000)
    assert a.model_limits == {"acme/model": (30, None)}
    assert (s.redis_url, s.redis_prefix) == ("redis://127.0.0.1:6379/0", "er:")


def test_defaults_are_unmetered_and_in_process(tmp_path: Path) -> None:
    s = load(tmp_path, "")
    assert s.accounts.enabled and not s.accounts.enforce_credits
    assert s.redis_url is None and s.accounts.requests_per_minute is None


def test_environment_names_redis(tmp_path: Path) -> None:
    s = load(tmp_path, "", {"EMBEDROUTER_REDIS_URL": "redis://h:1/2",
                            "EMBEDROUTER_REDIS_PREFIX": "p:"})
    assert (s.redis_url, s.redis_prefix) == ("redis://h:1/2", "p:")


@pytest.mark.parametrize(("text", "names"), [
    ("[accounts]\nenforce = true\n", "er.toml: accounts.enforce: unknown key"),
    ("[accounts]\nenforce_credits = 1\n", "er.toml: accounts.enforce_credits"),
    ("[limits]\nrpm = 5\n", "er.toml: limits.rpm: unknown key"),
    ("[limits]\nrequests_per_minute = 0\n", "er.toml: limits.requests_per_minute"),
    ('[limits.models."a/b"]\ntokens_per_minute = -1\n',
     'er.toml: limits.models."a/b".tokens_per_minute'),
])
def test_bad_values_are_refused_by_name(tmp_path: Path, text: str, names: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(tmp_path, text)
    assert names in str(info.value)
