"""Config tables decoded into msgspec Structs, with errors naming the file, the entry and the field.

Every table of the config file has a Struct (``forbid_unknown_fields``, typed fields, bounds in
``msgspec.Meta``). ``decode`` turns msgspec's ``Expected `int` >= 1 - at `$.engine.threads``` into
``embedrouter.toml: engine.threads: Expected `int` >= 1``, and an array entry carries what names
it: ``embedrouter.toml: models[2].token_ids (slug "acme/x"): ...``. A check no type expresses (one
field against another) lives in the Struct's ``__post_init__`` and raises ``FieldError``; msgspec
supplies the entry's path and the error its field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import Meta, inspect

T = TypeVar("T")

Positive = Annotated[int, Meta(ge=1)]
NonEmpty = Annotated[str, Meta(min_length=1)]
HttpUrl = Annotated[str, Meta(pattern=r"^https?://")]

_AT = re.compile(r"(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.S)
_STEP = re.compile(r"\.([^.\[]+)|\[([^\]]*)\]")


class FieldError(ValueError):
    """A ``__post_init__`` check failed on ``field`` (a config key, as the file spells it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_price(price: Any) -> None:
    """``price_per_million`` (a Decimal, or UNSET when the file leaves it out) is a finite,
    non-negative amount."""
    if price is not msgspec.UNSET and (not price.is_finite() or price < 0):
        raise FieldError("price_per_million", "must be a finite, non-negative decimal")


def where(source: str, path: str = "", note: str = "") -> str:
    """The start of every config error: the file, the path of the entry and field, what names the
    entry (``embedrouter.toml: models[2].path (slug "acme/x")``)."""
    text = f"{source}: {path}" if path else source
    return f"{text} ({note})" if note else text


def entry_note(table: Any, key: str) -> str:
    """``slug "acme/x"`` for an array entry whose ``key`` is a string, else nothing."""
    value = table.get(key) if isinstance(table, Mapping) else None
    return f'{key} "{value}"' if isinstance(value, str) else ""


def set_fields(struct: msgspec.Struct) -> dict[str, Any]:
    """The fields the file set (not ``UNSET``): the public dataclass keeps every default."""
    return {k: v for k, v in msgspec.structs.asdict(struct).items() if v is not msgspec.UNSET}


def decode(value: Any, kind: type[T], *, source: str, entry: str = "", note: str = "",
           error: type[ValueError]) -> T:
    """``value`` (a TOML table) as ``kind``, or ``error`` naming the file, entry and field."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        path, message = _explain(exc, kind)
        raise error(f"{where(source, (entry + path).lstrip('.'), note)}: {message}") from None


def _explain(exc: msgspec.ValidationError, kind: type) -> tuple[str, str]:
    match = _AT.fullmatch(str(exc))
    assert match is not None  # the pattern matches any text
    message, path = match["message"], match["path"] or ""
    cause = exc.__cause__ or exc.__context__  # msgspec chains what __post_init__ raised
    if isinstance(cause, FieldError):
        path += f".{cause.field}"
    unknown = re.fullmatch(r"Object contains unknown field `(.*)`", message, re.S)
    if unknown:
        # A typo's fix is usually in the list of keys the table takes.
        keys = [f.encode_name for f in getattr(_type_at(kind, path), "fields", ())]
        path += f".{unknown[1]}"
        message = "unknown key" + (f"; expected one of {', '.join(keys)}" if keys else "")
    elif message.startswith("Invalid enum value"):
        values = getattr(_type_at(kind, path), "values", ())
        message += f"; expected one of {', '.join(map(repr, values))}" if values else ""
    # TOML says table where msgspec (JSON) says object.
    return path, message.replace("`object`", "`table`")


def _type_at(kind: type, path: str) -> inspect.Type | None:
    """The schema type at a msgspec path (``.server.port``, ``.models[0]``), for hints only."""
    t: Any = inspect.type_info(kind)
    for name, _index in _STEP.findall(path):
        t = _unwrap(t)
        if name:
            t = next((f.type for f in getattr(t, "fields", ()) if f.encode_name == name), None)
        else:
            t = getattr(t, "item_type", None) or getattr(t, "value_type", None)
        if t is None:
            return None
    return _unwrap(t)


def _unwrap(t: Any) -> Any:
    while True:
        if isinstance(t, inspect.Metadata):
            t = t.type
        elif isinstance(t, inspect.UnionType):
            t = next(x for x in t.types if not isinstance(x, inspect.NoneType))
        else:
            return t
