"""Every table of the config file is a schema: a wrong type, an unknown key or a value out of range
stops the start with a message naming the file, the entry and the field."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from embedrouter.settings import Settings, SettingsError, load_settings

LOCAL = '[[models]]\nslug = "acme/x"\npath = "/m"\n'
REMOTE = ('[[providers]]\nname = "mine"\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
          '[[models]]\nslug = "acme/r"\ndimensions = 4\ncontext_length = 8\n'
          'endpoints = [{provider = "mine", upstream_model = "m"}]\n')

# (file text, where: the entry and field after "<file>: ", why: the start of the reason)
CASES = [
    # [server]
    ("[server]\nmax_inputs = '10'\n", "server.max_inputs", "Expected `int`, got `str`"),
    ("[server]\nmax_input = 10\n", "server.max_input", "unknown key; expected one of host, port"),
    ("[server]\nmax_body_bytes = 1023\n", "server.max_body_bytes", "Expected `int` >= 1024"),
    ("[server]\ntruncate = 'yes'\n", "server.truncate", "Expected `bool`, got `str`"),
    ("[server]\nhost = ''\n", "server.host", "Expected `str` of length >= 1"),
    # [storage]
    ("[storage]\nredis_prefix = 5\n", "storage.redis_prefix", "Expected `str`, got `int`"),
    ("[storage]\nredis = 'redis://h'\n", "storage.redis", "unknown key; expected one of"),
    ("[storage]\ndatabase_url = 'mysql://u:pw@h/db'\n", "storage.database_url",
     "Expected `str` matching regex"),
    # [engine]
    ("[engine]\nthreads = 1.5\n", "engine.threads", "Expected `int`, got `float`"),
    ("[engine]\nthread = 2\n", "engine.thread", "unknown key; expected one of threads,"),
    ("[engine]\nmax_batch_tokens = 511\n", "engine.max_batch_tokens", "Expected `int` >= 512"),
    ("[engine]\ninline_max_tokens = 129\n", "engine.inline_max_tokens", "Expected `int` <= 128"),
    ("[engine]\ninline_max_tokens = -1\n", "engine.inline_max_tokens", "Expected `int` >= 0"),
    ("[engine]\nforwards = 0\n", "engine.forwards", "Expected `int` >= 1"),
    ("[engine]\nforwards = 17\n", "engine.forwards", "Expected `int` <= 16"),
    # [default_model]
    ("[default_model]\nenabled = 'no'\n", "default_model.enabled", "Expected `bool`, got `str`"),
    ("[default_model]\nprice = 1\n", "default_model.price",
     "unknown key; expected one of enabled,"),
    ("[default_model]\nprice_per_million = -1\n", "default_model.price_per_million",
     "must be a finite, non-negative decimal"),
    ("[default_model]\nprice_per_million = 'nan'\n", "default_model.price_per_million",
     "must be a finite, non-negative decimal"),
    ("[default_model]\ntoken_ids = 'p50k'\n", "default_model.token_ids",
     "Invalid enum value 'p50k'; expected one of"),
    # local [[models]]: the entry is its place in the array and its slug
    (LOCAL + "matryoshka = 1\n", 'models[0].matryoshka (slug "acme/x")',
     "Expected `bool`, got `int`"),
    (LOCAL + "contex_length = 8\n", 'models[0].contex_length (slug "acme/x")',
     "unknown key; expected one of slug, path,"),
    (LOCAL + "context_length = 0\n", 'models[0].context_length (slug "acme/x")',
     "Expected `int` >= 1"),
    (REMOTE + LOCAL + "price_per_million = -0.5\n", 'models[1].price_per_million (slug "acme/x")',
     "must be a finite, non-negative decimal"),
    ('[[models]]\nslug = "acme"\npath = "/m"\n', 'models[0].slug (slug "acme")',
     "expected 'author/name'"),
    ("[[models]]\npath = '/m'\n", "models[0]", "Object missing required field `slug`"),
    (LOCAL + LOCAL.replace("acme/x", "ACME/x"), 'models[1].slug (slug "ACME/x")', "declared again"),
    # remote [[models]] count their place among all [[models]], local ones included
    (LOCAL + REMOTE.replace("dimensions = 4", "dimensions = 0"),
     'models[1].dimensions (slug "acme/r")', "Expected `int` >= 1"),
    ("[models]\nslug = 'a/b'\n", "models", "Expected `array`, got `table`"),
    # [accounts]
    ("[accounts]\nenabled = 'true'\n", "accounts.enabled", "Expected `bool`, got `str`"),
    ("[accounts]\nreservation_ttl = 60\n", "accounts.reservation_ttl",
     "unknown key; expected one of enabled, enforce_credits, reservation_ttl_s"),
    ("[accounts]\nreclaim_every_s = 0\n", "accounts.reclaim_every_s", "Expected `float` > 0.0"),
    ("[accounts]\nreservation_ttl_s = 86401\n", "accounts.reservation_ttl_s",
     "Expected `float` <= 86400.0"),
    # [limits] and [limits.models."slug"]
    ("[limits]\ntokens_per_minute = '1M'\n", "limits.tokens_per_minute",
     "Expected `int`, got `str`"),
    ("[limits]\nrequests_per_second = 5\n", "limits.requests_per_second",
     "unknown key; expected one of requests_per_minute, tokens_per_minute, models"),
    ("[limits]\nrequests_per_minute = 0\n", "limits.requests_per_minute", "Expected `int` >= 1"),
    ('[limits.models."acme/x"]\nrequests_per_minute = true\n',
     'limits.models."acme/x".requests_per_minute', "Expected `int`, got `bool`"),
    ('[limits.models."acme/x"]\nrpm = 5\n', 'limits.models."acme/x".rpm',
     "unknown key; expected one of requests_per_minute, tokens_per_minute"),
    ('[limits.models."acme/x"]\ntokens_per_minute = 0\n',
     'limits.models."acme/x".tokens_per_minute', "Expected `int` >= 1"),
    ('[limits.models]\n"acme/x" = 5\n', 'limits.models."acme/x"', "Expected `table`, got `int`"),
    # [telemetry]
    ("[telemetry]\notlp_endpoint = 4318\n", "telemetry.otlp_endpoint", "Expected `str`, got `int`"),
    ("[telemetry]\nendpoint = 'http://h'\n", "telemetry.endpoint",
     "unknown key; expected one of otlp_endpoint"),
    ("[telemetry]\notlp_endpoint = 'grpc://h:4317'\n", "telemetry.otlp_endpoint",
     "Expected `str` matching regex"),
    # [routing]
    ("[routing]\ndeadline_s = '2m'\n", "routing.deadline_s", "Expected `float`, got `str`"),
    ("[routing]\ndeadline = 5\n", "routing.deadline", "unknown key; expected one of deadline_s"),
    ("[routing]\ndeadline_s = -1\n", "routing.deadline_s", "Expected `float` > 0.0"),
    # [cache]
    ("[cache]\nmemory = 'off'\n", "cache.memory", "Expected `bool`, got `str`"),
    ("[cache]\nttl = 60\n", "cache.ttl", "unknown key; expected one of enabled, ttl_s,"),
    ("[cache]\nsqlite_max_bytes = 65535\n", "cache.sqlite_max_bytes", "Expected `int` >= 65536"),
    ("[cache]\nbackend_retry_s = 3601\n", "cache.backend_retry_s", "Expected `float` <= 3600.0"),
    # [[providers]]: the entry is its place and its name
    ('[[providers]]\nname = "p"\nkind = "openai"\nbase_url = "http://h"\nmax_concurrency = "8"\n',
     'providers[0].max_concurrency (name "p")', "Expected `int`, got `str`"),
    ('[[providers]]\nname = "p"\nkind = "openai"\nbase_url = "http://h"\ntimeout_s = 0\n',
     'providers[0].timeout_s (name "p")', "Expected `float` > 0.0"),
    # the file itself
    ("[servre]\nport = 1\n", "servre", "unknown key; expected one of server, storage, engine"),
    ("server = 8000\n", "server", "Expected `table`, got `int`"),
]


@pytest.mark.parametrize(("text", "where", "why"), CASES)
def test_a_bad_value_names_the_file_the_entry_and_the_field(tmp_path: Path, text: str,
                                                            where: str, why: str) -> None:
    path = tmp_path / "embedrouter.toml"
    path.write_text(text)
    with pytest.raises(SettingsError) as info:
        load_settings(path, env={})
    assert str(info.value).startswith(f"{path}: {where}: {why}"), str(info.value)


def test_an_empty_file_gives_the_dataclass_defaults(tmp_path: Path) -> None:
    path = tmp_path / "embedrouter.toml"
    path.write_text("")
    s = load_settings(path, env={})
    assert replace(s, providers=(), remote_models=()) == Settings()


def test_every_key_reaches_its_field(tmp_path: Path) -> None:
    path = tmp_path / "embedrouter.toml"
    path.write_text("""
[server]
host = "0.0.0.0"
port = 9000
max_body_bytes = 2048
max_inputs = 16
max_input_chars = 32
truncate = true
[storage]
database_url = "postgresql://127.0.0.1/test"
[engine]
threads = 2
max_batch_tokens = 1024
max_batch_size = 8
max_queue_items = 16
inline_max_tokens = 0
forwards = 2
[default_model]
enabled = false
price_per_million = 0.02
token_ids = "o200k"
quantizations = ["int8"]
[routing]
deadline_s = 7
[[models]]
slug = "Acme/X"
path = "/m"
name = "X"
description = "An x."
matryoshka = true
input_prefixes = {query = "q: "}
context_length = 128
hugging_face_id = "acme/X"
output_modalities = ["embeddings"]
token_ids = "native"
quantizations = ["int8", "fp32"]
default_quantization = "int8"
""")
    s = load_settings(path, env={})
    assert (s.host, s.port, s.max_body_bytes, s.max_inputs, s.max_input_chars, s.truncate) == (
        "0.0.0.0", 9000, 2048, 16, 32, True)
    assert s.database_url == "postgresql://127.0.0.1/test"
    assert (s.engine_threads, s.max_batch_tokens, s.max_batch_size, s.max_queue_items,
            s.inline_max_tokens, s.engine_forwards) == (2, 1024, 8, 16, 0, 2)
    assert (s.default_model, s.default_model_price, s.default_model_token_ids) == (
        False, Decimal("0.02"), "o200k")
    assert (s.default_model_quantizations, s.default_model_default_quantization) == (
        ("int8",), "int8")
    assert s.request_deadline_s == 7.0 and isinstance(s.request_deadline_s, float)
    (m,) = s.models
    assert (m.slug, m.path, m.name, m.description, m.matryoshka) == (
        "acme/x", "/m", "X", "An x.", True)
    assert (m.input_prefixes, m.context_length, m.hugging_face_id, m.token_ids) == (
        {"query": "q: "}, 128, "acme/X", "native")
    assert (m.quantizations, m.default_quantization) == (("int8", "fp32"), "int8")


def test_flags_beat_the_environment_which_beats_the_file(tmp_path: Path) -> None:
    path = tmp_path / "embedrouter.toml"
    path.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n'
                    '[storage]\ndatabase_url = "sqlite:///file.db"\nredis_prefix = "file:"\n'
                    "[default_model]\nprice_per_million = 1\n")
    env = {"EMBEDROUTER_DATABASE_URL": "sqlite:///env.db", "EMBEDROUTER_DEFAULT_MODEL_PRICE": "2"}
    s = load_settings(path, env=env, overrides={"port": 9100, "host": None})
    assert (s.port, s.host) == (9100, "0.0.0.0")  # a flag left unset keeps the file's value
    assert (s.database_url, s.redis_prefix, s.default_model_price) == (
        "sqlite:///env.db", "file:", Decimal(2))


@pytest.mark.parametrize(("env", "name"), [
    ({"EMBEDROUTER_DEFAULT_MODEL_PRICE": "-1"}, "EMBEDROUTER_DEFAULT_MODEL_PRICE"),
    ({"EMBEDROUTER_DATABASE_URL": "mysql://u:s3cret@h"}, "EMBEDROUTER_DATABASE_URL"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://h:4317"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
])
def test_a_bad_environment_value_names_its_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(None, env=env)
    assert str(info.value).startswith(f"{name}: ") and "s3cret" not in str(info.value)


def test_a_local_slug_served_remotely_too_names_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "embedrouter.toml"
    path.write_text(REMOTE + LOCAL.replace("acme/x", "acme/r"))
    with pytest.raises(SettingsError) as info:
        load_settings(path, env={})
    assert str(info.value).startswith(f"{path}: models[1].slug (slug 'acme/r'): declared both")
