"""``[cache]`` is validated at start with messages naming the key; the Redis URL comes from
EMBEDROUTER_REDIS_URL first and is never echoed."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from embedrouter.settings import SettingsError, load_settings


def settings_with(tmp_path: Path, text: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    config = tmp_path / "embedrouter.toml"
    config.write_text(text)
    return load_settings(config, env=env or {})


def test_defaults_memory_and_sqlite_on_redis_off(tmp_path: Path) -> None:
    cache = load_settings(env={}).cache
    assert (cache.enabled, cache.memory, cache.sqlite, cache.redis_url) == (True, True, True,
                                                                            None)
    assert cache.hit_price_fraction == 0
    assert cache.sqlite_file(tmp_path) == tmp_path / "vector-cache.sqlite3"


def test_every_key_is_read(tmp_path: Path) -> None:
    cache = settings_with(tmp_path, """
[cache]
enabled = true
ttl_s = 3600
memory = false
memory_max_bytes = 2048
sqlite = false
sqlite_path = "/tmp/x/vectors.db"
sqlite_max_bytes = 1048576
redis_url = "redis://127.0.0.1:6379/2"
redis_timeout_s = 0.25
redis_prefix = "mine:"
backend_retry_s = 2
hit_price_fraction = 0.1
""").cache
    assert cache.ttl_s == 3600 and not cache.memory and not cache.sqlite
    assert cache.sqlite_path == Path("/tmp/x/vectors.db")
    assert cache.redis_url == "redis://127.0.0.1:6379/2" and cache.redis_prefix == "mine:"
    assert cache.hit_price_fraction == Decimal("0.1")  # exactly a tenth, not its float twin


def test_the_environment_names_redis(tmp_path: Path) -> None:
    cache = settings_with(tmp_path, '[cache]\nredis_url = "redis://a:1/0"\n',
                          {"EMBEDROUTER_REDIS_URL": "redis://b:2/0"}).cache
    assert cache.redis_url == "redis://b:2/0"


@pytest.mark.parametrize(("line", "message"), [
    ("nope = 1", "cache.nope: unknown key"),
    ("enabled = 1", "cache.enabled"),
    ("ttl_s = 0", "cache.ttl_s"),
    ("memory_max_bytes = -5", "cache.memory_max_bytes"),
    ("hit_price_fraction = 1.5", "cache.hit_price_fraction"),
    ('hit_price_fraction = "a tenth"', "cache.hit_price_fraction"),
    ("redis_timeout_s = 0", "cache.redis_timeout_s"),
    ('redis_prefix = ""', "cache.redis_prefix"),
])
def test_bad_values_name_their_key(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        settings_with(tmp_path, f"[cache]\n{line}\n")


def test_a_bad_redis_url_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        settings_with(tmp_path, "", {"EMBEDROUTER_REDIS_URL": "http://user:s3cret@host"})
    assert "cache.redis_url" in str(info.value) and "s3cret" not in str(info.value)
