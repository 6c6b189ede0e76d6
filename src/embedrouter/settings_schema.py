"""The config file's shape (``embedrouter.toml``), as msgspec Structs; settings.py loads it.

A Struct field is named after the ``Settings`` (or ``ModelConfig``, ``AccountsConfig``) field it
fills; ``key(name=...)`` gives the key the file uses where the two differ. A key the file does not
set stays ``UNSET``, so every default lives in settings.py's dataclasses. Checks one type cannot
express live in ``__post_init__`` and raise ``FieldError`` (configschema.py).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from msgspec import UNSET, Meta, Struct, UnsetType
from msgspec import field as key

from embedrouter.configschema import (
    FieldError,
    HttpUrl,
    NonEmpty,
    Positive,
    check_price,
    set_fields,
)

DEFAULT_MODEL_SLUG = "sentence-transformers/all-minilm-l6-v2"
# Precisions the local engine can serve (engine.quantize.PRECISIONS; a test ties the two). Each one
# a local model lists becomes an endpoint of that model with this `quantization`.
Quantization = Literal["fp32", "int8"]
LOCAL_QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)
# The built-in model's endpoints when the config says nothing: int8 passes the quality gates on
# it (tests/engine/test_precision.py). A declared [[models]] entry serves fp32 only unless it
# lists more, since nothing has checked int8 on the operator's own model.
DEFAULT_MODEL_QUANTIZATIONS = ("fp32", "int8")
# What token-id inputs mean for a model (settings.ModelConfig.token_ids).
TokenIds = Literal["cl100k", "o200k", "native", "reject"]
TOKEN_ID_MODES: tuple[str, ...] = get_args(TokenIds)

Seconds = Annotated[float, Meta(gt=0, le=86400)]
Quantizations = Annotated[tuple[Quantization, ...], Meta(min_length=1)]
DATABASE_URL = r"^(sqlite:///|postgresql://|postgres://)"


def _precisions(listed: tuple[str, ...] | UnsetType, chosen: str | UnsetType,
                default: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    """``quantizations`` and ``default_quantization`` of one model, checked together."""
    listed = default if isinstance(listed, UnsetType) else listed
    if len(set(listed)) != len(listed):
        raise FieldError("quantizations", "each precision may be listed once")
    if isinstance(chosen, UnsetType):
        chosen = "fp32" if "fp32" in listed else listed[0]
    elif chosen not in listed:
        raise FieldError("default_quantization",
                         f"{chosen!r} is not in quantizations {list(listed)}")
    # The default first: the catalog lists endpoints in this order.
    return (chosen, *(q for q in listed if q != chosen)), chosen


class Server(Struct, forbid_unknown_fields=True):
    host: NonEmpty | UnsetType = UNSET
    port: Annotated[int, Meta(ge=0, le=65535)] | UnsetType = UNSET
    max_body_bytes: Annotated[int, Meta(ge=1024)] | UnsetType = UNSET
    max_inputs: Positive | UnsetType = UNSET
    max_input_chars: Annotated[int, Meta(ge=16)] | UnsetType = UNSET
    truncate: bool | UnsetType = UNSET
    header_timeout_s: Seconds | UnsetType = UNSET
    body_timeout_s: Seconds | UnsetType = UNSET
    keepalive_timeout_s: Seconds | UnsetType = UNSET
    max_connections: Positive | UnsetType = UNSET


class Storage(Struct, forbid_unknown_fields=True):
    database_url: Annotated[str, Meta(pattern=DATABASE_URL)] | UnsetType = UNSET
    redis_url: NonEmpty | UnsetType = UNSET
    redis_prefix: NonEmpty | UnsetType = UNSET


class Engine(Struct, forbid_unknown_fields=True):
    engine_threads: Positive | UnsetType = key(default=UNSET, name="threads")
    engine_forwards: Annotated[int, Meta(ge=1, le=16)] | UnsetType = key(default=UNSET,
                                                                          name="forwards")
    max_batch_tokens: Annotated[int, Meta(ge=512)] | UnsetType = UNSET
    max_batch_size: Positive | UnsetType = UNSET
    max_queue_items: Positive | UnsetType = UNSET
    # At most 128: such a forward holds the event loop, and 128 tokens already took ~36 ms (fp32)
    # on the 2-core VM; the project's bound for holding the loop is ~50 ms.
    inline_max_tokens: Annotated[int, Meta(ge=0, le=128)] | UnsetType = UNSET


class DefaultModel(Struct, forbid_unknown_fields=True):
    default_model: bool | UnsetType = key(default=UNSET, name="enabled")
    default_model_price: Decimal | UnsetType = key(default=UNSET, name="price_per_million")
    default_model_token_ids: TokenIds | UnsetType = key(default=UNSET, name="token_ids")
    default_model_quantizations: Quantizations | UnsetType = key(default=UNSET,
                                                                name="quantizations")
    default_model_default_quantization: Quantization | UnsetType = key(
        default=UNSET, name="default_quantization")

    def __post_init__(self) -> None:
        check_price(self.default_model_price)
        self.default_model_quantizations, self.default_model_default_quantization = _precisions(
            self.default_model_quantizations, self.default_model_default_quantization,
            DEFAULT_MODEL_QUANTIZATIONS)


class LocalModel(Struct, forbid_unknown_fields=True):
    """A local ``[[models]]`` entry: one without ``endpoints`` (those are catalog/config.py's)."""

    slug: str
    path: NonEmpty | UnsetType = UNSET
    name: NonEmpty | UnsetType = UNSET
    description: NonEmpty | UnsetType = UNSET
    price_per_million: Decimal | UnsetType = UNSET
    matryoshka: bool | UnsetType = UNSET
    input_prefixes: dict[str, str] | UnsetType = UNSET
    context_length: Positive | UnsetType = UNSET
    hugging_face_id: str | UnsetType = UNSET
    output_modalities: tuple[str, ...] | UnsetType = UNSET
    token_ids: TokenIds | UnsetType = UNSET
    quantizations: Quantizations | UnsetType = UNSET
    default_quantization: Quantization | UnsetType = UNSET

    def __post_init__(self) -> None:
        if self.slug.count("/") != 1 or not all(self.slug.split("/")):
            raise FieldError("slug", f"expected 'author/name', got {self.slug!r}")
        self.slug = self.slug.lower()
        embeds = self.output_modalities is UNSET or "embeddings" in self.output_modalities
        if embeds and self.slug != DEFAULT_MODEL_SLUG and self.path is UNSET:
            raise FieldError("path", "a local embeddings model needs the path of its directory")
        check_price(self.price_per_million)
        self.quantizations, self.default_quantization = _precisions(
            self.quantizations, self.default_quantization,
            DEFAULT_MODEL_QUANTIZATIONS if self.slug == DEFAULT_MODEL_SLUG else ("fp32",))


class Accounts(Struct, forbid_unknown_fields=True):
    enabled: bool | UnsetType = UNSET
    enforce_credits: bool | UnsetType = UNSET
    reservation_ttl_s: Seconds | UnsetType = UNSET
    reclaim_every_s: Seconds | UnsetType = UNSET


class Rates(Struct, forbid_unknown_fields=True):
    requests_per_minute: Positive | UnsetType = UNSET
    tokens_per_minute: Positive | UnsetType = UNSET

    def pair(self) -> tuple[int | None, int | None]:
        """(rpm, tpm), None where the file sets no limit."""
        rates = set_fields(self)
        return rates.get("requests_per_minute"), rates.get("tokens_per_minute")


class Limits(Rates, forbid_unknown_fields=True):
    # Decoded one slug at a time, so that an error names the slug (msgspec's path would not).
    models: dict[str, Any] = {}


class Telemetry(Struct, forbid_unknown_fields=True):
    otlp_endpoint: HttpUrl | UnsetType = UNSET


class Routing(Struct, forbid_unknown_fields=True):
    request_deadline_s: Annotated[float, Meta(gt=0)] | UnsetType = key(default=UNSET,
                                                                      name="deadline_s")


class File(Struct, forbid_unknown_fields=True):
    server: Server = key(default_factory=Server)
    storage: Storage = key(default_factory=Storage)
    engine: Engine = key(default_factory=Engine)
    default_model: DefaultModel = key(default_factory=DefaultModel)
    accounts: Accounts = key(default_factory=Accounts)
    limits: Limits = key(default_factory=Limits)
    telemetry: Telemetry = key(default_factory=Telemetry)
    routing: Routing = key(default_factory=Routing)
    cache: dict[str, Any] = {}  # cache/config.py's schema
    # Local and remote [[models]] share the array: an entry with `endpoints` is the catalog's.
    models: list[dict[str, Any]] = []
    providers: list[dict[str, Any]] = []  # catalog/config.py's schema
