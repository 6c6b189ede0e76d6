"""Query parameters: one parser per type, each refusing a bad value with a 400 naming it."""

from __future__ import annotations

from embedrouter import errors as e


def int_param(query: dict[str, str], name: str, *, default: int | None, lo: int,
              hi: int | None, nullable: bool = False) -> int | None:
    """``name`` as an int in [lo, hi]; ``default`` when absent (or ``null`` / empty if
    ``nullable``, as the OAS allows for offsets)."""
    raw = query.get(name)
    if raw is None or (nullable and raw in ("", "null")):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise e.InvalidRequest(f"{name}: expected an integer, got {raw!r}",
                               metadata={"field": name}) from None
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise e.InvalidRequest(f"{name}: must be {bound}", metadata={"field": name})
    return value


def bool_param(query: dict[str, str], name: str, *, default: bool) -> bool:
    """``name`` as ``true`` or ``false`` (any case); anything else is refused, not read as
    false, so a typo cannot silently change what a list shows."""
    raw = query.get(name)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false"):
        raise e.InvalidRequest(f"{name}: expected true or false, got {raw!r}",
                               metadata={"field": name})
    return raw.lower() == "true"
