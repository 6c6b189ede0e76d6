"""The account endpoints: ``/key``, ``/credits``, ``/generation`` and the ``/keys`` management
API (management keys only), shaped like OpenRouter's so its SDK parses every one.

Handlers take the app (for its services and body reader) and the request, and return
``(status, body, headers)`` like every other route.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from embedrouter import errors as e
from embedrouter.accounts.money import parse_usd
from embedrouter.accounts.usage import balance, key_usage
from embedrouter.api import account_views as views
from embedrouter.api.params import bool_param, int_param
from embedrouter.store import KeyRecord

if TYPE_CHECKING:
    from embedrouter.api.app import App, Request

Reply = tuple[int, bytes, dict[str, str]]
_HASH = re.compile(r"[0-9a-f]{64}")
MANAGEMENT_ONLY = "Only management keys can perform this operation"


async def _key(app: App, request: Request) -> KeyRecord:
    key = await app._svc.keys.authenticate(request.headers.get("authorization"))
    assert isinstance(key, KeyRecord)
    return key


async def _manager(app: App, request: Request) -> KeyRecord:
    key = await _key(app, request)
    if not key.can_manage:
        raise e.PermissionDenied(MANAGEMENT_ONLY)
    return key


def _now_ms(app: App) -> int:
    accounts = app._svc.accounts
    if accounts is not None:
        return int(accounts.now_ms())
    import time

    return int(time.time() * 1000)


def _json(status: int, data: Any) -> Reply:
    return status, orjson.dumps(data), {}


async def current_key(app: App, request: Request) -> Reply:
    """``GET /key``: any key, management or inference."""
    key = await _key(app, request)
    svc = app._svc
    cfg = svc.accounts.config if svc.accounts is not None else None
    rpm = key.rpm if key.rpm is not None else (cfg.requests_per_minute if cfg else None)
    tpm = key.tpm if key.tpm is not None else (cfg.tokens_per_minute if cfg else None)
    usage = await key_usage(svc.store, key, _now_ms(app))
    return _json(200, views.current_key(key, usage, views.rate_limits(key, rpm, tpm)))


async def credits(app: App, request: Request) -> Reply:
    await _manager(app, request)
    return _json(200, views.credits_view(await balance(app._svc.store)))


async def generation(app: App, request: Request) -> Reply:
    """``GET /generation?id=``: a key sees its own generations; a management key sees all."""
    key = await _key(app, request)
    gen_id = request.query.get("id", "")
    if not gen_id:
        raise e.InvalidRequest("id: required, the `id` of an embeddings response",
                               metadata={"field": "id"})
    if app._svc.accounts is not None:
        await app._svc.accounts.writer.settled()  # free requests' records are written behind
    # PostgreSQL text cannot hold NUL, so no stored id has one (and its driver refuses the
    # query): such an id is simply not found, on every backend alike.
    record = None if "\x00" in gen_id else await app._svc.store.get_generation(gen_id[:200])
    # Someone else's generation is "not found", exactly like a missing one: its existence is
    # not disclosed to a key that may not read it.
    if record is None or (record.key_hash != key.key_hash and not key.can_manage):
        raise e.NotFound(f"Generation {gen_id[:200]!r} not found")
    return _json(200, views.generation_view(record))


async def _key_reply(app: App, record: KeyRecord, status: int = 200,
                     extra: dict[str, Any] | None = None) -> Reply:
    usage = await key_usage(app._svc.store, record, _now_ms(app))
    return _json(status, {"data": views.key_object(record, usage), **(extra or {})})


_SHARED_FIELDS = frozenset({"name", "limit", "limit_reset", "include_byok_in_limit",
                           "workspace_id", "requests_per_minute", "tokens_per_minute",
                           "cache_policy"})
# OpenRouter's names plus rpm, tpm and the vector cache policy (checked by the key service,
# which names the field); create and update take different sets, as there.
_FIELDS = {True: _SHARED_FIELDS | {"expires_at", "creator_user_id", "external"},
           False: _SHARED_FIELDS | {"disabled"}}
# Accepted for the SDK's sake and unused here (no BYOK, workspaces or partners), but a value of
# the wrong type is still the caller's mistake, so it is refused rather than dropped.
_UNUSED_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "include_byok_in_limit": ((bool,), "true or false"), "workspace_id": ((str,), "a string"),
    "creator_user_id": ((str, type(None)), "a string or null"),
    "external": ((dict,), "an object")}


def _limit_nanos(value: Any) -> int | None:
    # A JSON number only: a string amount is not in the contract, and bool is an int in Python.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise e.InvalidRequest("limit: expected a number of USD or null",
                               metadata={"field": "limit"})
    try:
        return parse_usd(value, field="limit")
    except ValueError as exc:
        raise e.InvalidRequest(str(exc), metadata={"field": "limit"}) from None


def _changes(body: Any, *, creating: bool) -> dict[str, Any]:
    """Key fields from a create / update body."""
    if not isinstance(body, dict):
        raise e.InvalidRequest("Expected a JSON object")
    unknown = set(body) - _FIELDS[creating]
    if unknown:
        raise e.InvalidRequest(f"Unknown fields {sorted(unknown)[:5]}",
                               metadata={"field": sorted(unknown)[0]})
    for name, (types, wanted) in _UNUSED_TYPES.items():
        if name in body and not isinstance(body[name], types):
            raise e.InvalidRequest(f"{name}: expected {wanted}", metadata={"field": name})
    if body.get("expires_at") is not None:
        raise e.InvalidRequest("expires_at: keys do not expire on this server",
                               metadata={"field": "expires_at"})
    out: dict[str, Any] = {}
    if "name" in body:
        if not isinstance(body["name"], str):
            raise e.InvalidRequest("name: expected a string", metadata={"field": "name"})
        out["label"] = body["name"]
    elif creating:
        raise e.InvalidRequest("name: required", metadata={"field": "name"})
    if "limit" in body:
        out["limit_nanos"] = _limit_nanos(body["limit"])
    if "limit_reset" in body:
        out["limit_reset"] = body["limit_reset"]
    if "disabled" in body:
        if not isinstance(body["disabled"], bool):
            raise e.InvalidRequest("disabled: expected true or false",
                                   metadata={"field": "disabled"})
        out["disabled"] = body["disabled"]
    for wire, name in (("requests_per_minute", "rpm"), ("tokens_per_minute", "tpm"),
                       ("cache_policy", "cache_policy")):
        if wire in body:
            out[name] = body[wire]
    return out


async def _body(app: App, request: Request) -> Any:
    raw = await app._read_body(request)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise e.InvalidRequest("Request body is not valid JSON") from None


async def list_keys(app: App, request: Request) -> Reply:
    await _manager(app, request)
    offset = int_param(request.query, "offset", default=0, lo=0, hi=None, nullable=True) or 0
    include_disabled = bool_param(request.query, "include_disabled", default=False)
    records = [r for r in await app._svc.keys.list() if include_disabled or not r.disabled]
    page = records[offset:offset + 100]
    now = _now_ms(app)
    data = [views.key_object(r, await key_usage(app._svc.store, r, now)) for r in page]
    return _json(200, {"data": data})


async def create_key(app: App, request: Request) -> Reply:
    await _manager(app, request)
    changes = _changes(await _body(app, request), creating=True)
    label = changes.pop("label")
    plaintext, record = await app._svc.keys.create(label, **changes)
    # The only time the key itself is ever sent: it is stored hashed.
    return await _key_reply(app, record, 201, {"key": plaintext})


def _hash_param(value: str) -> str:
    if not _HASH.fullmatch(value):
        raise e.NotFound("No key with that hash (expected 64 lowercase hex characters)")
    return value


async def get_key(app: App, request: Request, key_hash: str) -> Reply:
    await _manager(app, request)
    record = await app._svc.store.get_key(_hash_param(key_hash))
    if record is None:
        raise e.NotFound("No key with that hash")
    return await _key_reply(app, record)


async def update_key(app: App, request: Request, key_hash: str) -> Reply:
    manager = await _manager(app, request)
    changes = _changes(await _body(app, request), creating=False)
    if changes.get("disabled") and key_hash == manager.key_hash:
        # Like deleting itself: the caller would lock itself out of the API it is using.
        raise e.InvalidRequest("A management key cannot disable itself",
                               metadata={"field": "disabled"})
    record = await app._svc.keys.update(_hash_param(key_hash), changes)
    return await _key_reply(app, record)


async def delete_key(app: App, request: Request, key_hash: str) -> Reply:
    manager = await _manager(app, request)
    if key_hash == manager.key_hash:
        raise e.InvalidRequest("A management key cannot delete itself")
    await app._svc.keys.delete(_hash_param(key_hash))
    return _json(200, {"deleted": True})
