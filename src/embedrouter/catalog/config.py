"""``[[providers]]`` and remote ``[[models]]`` tables: a typed schema, decoded with msgspec.

Errors name the file, the entry and the field (``embedrouter.toml: providers[2].timeout_s
(name "x"): Expected `float`, got `str```; see configschema.py). The package's built-in catalog
(``builtin.toml``) is read the same way; the user's file overrides it entry by entry (a provider
by ``name``, a model by ``slug``).
A provider is enabled at start when its ``api_key_env`` variable is set, or when the user's own
file declares it without one (a keyless local server such as Ollama or TEI).
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

from embedrouter.catalog.endpoints import EndpointSpec, ProviderConfig
from embedrouter.configschema import (
    FieldError,
    HttpUrl,
    Positive,
    check_price,
    decode,
    entry_note,
    where,
)

Kind = Literal["openai", "azure", "cohere", "voyage", "gemini", "vertex", "ollama", "tei"]
KINDS: tuple[str, ...] = get_args(Kind)
# Keys an adapter reads from its [[providers]] table beyond the common ones (a test checks these
# against what each adapter really reads).
_OPENAI_OPTIONS = frozenset({"path", "base64", "dimensions_field", "input_type_field",
                             "input_type_values"})
KIND_OPTIONS: dict[str, frozenset[str]] = {
    "openai": _OPENAI_OPTIONS,
    "azure": _OPENAI_OPTIONS | {"api_version", "deployments", "auth"},
    "cohere": frozenset({"path", "base64", "input_type_values", "default_input_type"}),
    "voyage": _OPENAI_OPTIONS,
    "gemini": frozenset({"task_types"}),
    "vertex": frozenset({"task_types", "auto_truncate"}),
    "ollama": frozenset({"path", "truncate", "keep_alive"}),
    "tei": frozenset({"path", "prompt_names", "normalize", "truncate", "truncation_direction"}),
}


class ConfigError(ValueError):
    """A bad catalog entry; the message names the file, the entry and the field."""


class _Provider(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    kind: Kind
    base_url: HttpUrl
    api_key_env: str | None = None
    display_name: str | None = None
    timeout_s: Annotated[float, Meta(gt=0)] = 30.0
    max_concurrency: Positive = 16

    def __post_init__(self) -> None:
        if self.name != self.name.lower() or not self.name:
            raise FieldError("name", f"a lowercase slug, got {self.name!r}")


class _Endpoint(msgspec.Struct, forbid_unknown_fields=True):
    provider: str
    upstream_model: str
    price_per_million: Decimal = Decimal(0)
    max_inputs: Positive | None = None
    max_tokens: Positive | None = None
    supports_dimensions: bool = False
    quantization: str = "unknown"
    data_collection: Literal["allow", "deny"] = "allow"
    zdr: bool = False
    tier: Literal["priority", "flex"] | None = None
    supports_input_type: bool = False

    def __post_init__(self) -> None:
        check_price(self.price_per_million)


class _RemoteModel(msgspec.Struct, forbid_unknown_fields=True):
    slug: str
    dimensions: Positive
    context_length: Positive
    endpoints: Annotated[list[_Endpoint], Meta(min_length=1)]
    name: str | None = None
    description: str | None = None
    matryoshka: bool = False
    token_ids: Literal["cl100k", "o200k", "native", "reject"] = "cl100k"
    hugging_face_id: str | None = None

    def __post_init__(self) -> None:
        if self.slug.count("/") != 1 or not all(self.slug.split("/")):
            raise FieldError("slug", f"expected 'author/name', got {self.slug!r}")


@dataclass(frozen=True, slots=True)
class ProviderState:
    """A declared provider, whether it is enabled, and why not."""

    config: ProviderConfig
    enabled: bool
    reason: str  # "OPENAI_API_KEY is set" / "OPENAI_API_KEY is not set" / ...
    builtin: bool


@dataclass(frozen=True, slots=True)
class RemoteModel:
    slug: str
    name: str
    description: str
    dimensions: int
    context_length: int
    matryoshka: bool
    token_ids: str
    hugging_face_id: str | None
    endpoints: tuple[EndpointSpec, ...]  # enabled providers' endpoints only


def parse_providers(raw: Sequence[Any], source: str) -> dict[str, tuple[_Provider, dict]]:
    out: dict[str, tuple[_Provider, dict]] = {}
    for i, table in enumerate(raw):
        entry, note = f"providers[{i}]", entry_note(table, "name")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where(source, entry)}: expected a table")
        # The keys an adapter reads depend on `kind`: the schema holds the common ones.
        common = {k: v for k, v in table.items() if k in _Provider.__struct_fields__}
        extra = {k: v for k, v in table.items() if k not in _Provider.__struct_fields__}
        provider = decode(common, _Provider, source=source, entry=entry, note=note,
                          error=ConfigError)
        unknown = set(extra) - KIND_OPTIONS[provider.kind]
        if unknown:
            raise ConfigError(f"{where(source, entry, note)}: unknown keys {sorted(unknown)} for "
                              f"kind {provider.kind!r}; it takes "
                              f"{', '.join(sorted(KIND_OPTIONS[provider.kind]))}")
        out[provider.name] = (provider, extra)
    return out


def parse_remote_models(raw: Sequence[Any], source: str, providers: Collection[str]
                        ) -> dict[str, _RemoteModel]:
    """The ``[[models]]`` entries with ``endpoints``; the others are local (settings.py's)."""
    out: dict[str, _RemoteModel] = {}
    for i, table in enumerate(raw):
        if isinstance(table, Mapping) and "endpoints" not in table:
            continue
        entry, note = f"models[{i}]", entry_note(table, "slug")
        model = decode(table, _RemoteModel, source=source, entry=entry, note=note,
                       error=ConfigError)
        for j, ep in enumerate(model.endpoints):
            if ep.provider not in providers:
                raise ConfigError(f"{where(source, f'{entry}.endpoints[{j}].provider', note)}: "
                                  f"no provider named {ep.provider!r}")
        out[model.slug.lower()] = model
    return out


def builtin_tables() -> dict[str, Any]:
    """The package's own catalog, or nothing where it is absent."""
    path = resources.files("embedrouter.catalog").joinpath("builtin.toml")
    if not path.is_file():
        return {}
    return tomllib.loads(path.read_text(encoding="utf-8"))


def resolve(user_providers: Sequence[Any], user_models: Sequence[Any], env: Mapping[str, str],
            *, source: str, builtin: Mapping[str, Any] | None = None
            ) -> tuple[list[ProviderState], list[RemoteModel]]:
    """Providers (enabled or not, and why) and the remote models served by the enabled ones."""
    builtin = builtin_tables() if builtin is None else builtin
    declared = parse_providers(builtin.get("providers", []), "builtin catalog")
    builtin_names = set(declared)
    mine = parse_providers(user_providers, source)
    declared.update(mine)
    states: list[ProviderState] = []
    for name, (entry, extra) in declared.items():
        key = env.get(entry.api_key_env) if entry.api_key_env else None
        if entry.api_key_env:
            enabled = bool(key)
            reason = f"{entry.api_key_env} is {'set' if key else 'not set'}"
        else:
            enabled = name in mine
            reason = "declared in the config file" if enabled else "no api_key_env"
        config = ProviderConfig(name=name, kind=entry.kind, base_url=entry.base_url,
                                api_key=key or None, display_name=entry.display_name or name,
                                timeout_s=entry.timeout_s,
                                max_concurrency=entry.max_concurrency, options=extra)
        states.append(ProviderState(config, enabled, reason,
                                    builtin=name in builtin_names and name not in mine))
    enabled = {s.config.name: s.config for s in states if s.enabled}
    models = parse_remote_models(builtin.get("models", []), "builtin catalog", declared)
    models.update(parse_remote_models(user_models, source, declared))
    out: list[RemoteModel] = []
    for slug, m in models.items():
        eps = tuple(_endpoint(ep, enabled[ep.provider]) for ep in m.endpoints
                    if ep.provider in enabled)
        if eps:
            out.append(RemoteModel(slug=slug, name=m.name or slug, description=m.description or "",
                                   dimensions=m.dimensions, context_length=m.context_length,
                                   matryoshka=m.matryoshka, token_ids=m.token_ids,
                                   hugging_face_id=m.hugging_face_id, endpoints=eps))
    return states, out


def _endpoint(ep: _Endpoint, provider: ProviderConfig) -> EndpointSpec:
    params = {"dimensions"} if ep.supports_dimensions else set()
    if ep.supports_input_type:
        params.add("input_type")
    return EndpointSpec(provider=provider.name, display_name=provider.shown_name,
                        upstream_model=ep.upstream_model,
                        price_per_million=ep.price_per_million, max_inputs=ep.max_inputs,
                        max_tokens=ep.max_tokens, supports_dimensions=ep.supports_dimensions,
                        quantization=ep.quantization, data_collection=ep.data_collection,
                        zdr=ep.zdr, tier=ep.tier, supported_params=frozenset(params))
