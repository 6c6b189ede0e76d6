"""API keys: generation, hashed storage, authentication, disabling, first-start bootstrap.

A key is ``sk-er-v1-`` followed by 64 hex characters (256 random bits). Only its SHA-256 is
stored: with that much entropy a fast hash cannot be brute-forced, so a slow password hash
would only cost latency on every request. The plaintext exists once, in ``create``'s return
value; messages and logs carry at most the display form (``sk-er-v1-3f9…a1c``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from typing import Any

from embedrouter.accounts.money import MAX_NANOS
from embedrouter.accounts.windows import LIMIT_RESETS
from embedrouter.errors import AuthenticationFailed, InvalidRequest, NotFound
from embedrouter.store import KeyRecord, Store
from embedrouter.store.records import KEY_CACHE_POLICIES

log = logging.getLogger(__name__)

KEY_PREFIX = "sk-er-v1-"
KEY_HEX_CHARS = 64
BOOTSTRAP_LABEL = "bootstrap"
MAX_LABEL_LENGTH = 200
MIN_HASH_PREFIX = 8  # 32 bits: short enough to type, long enough to rarely be ambiguous

_KEY_RE = re.compile(rf"{re.escape(KEY_PREFIX)}[0-9a-f]{{{KEY_HEX_CHARS}}}")
_HASH_RE = re.compile(r"[0-9a-f]{64}")
_HASH_PREFIX_RE = re.compile(rf"[0-9a-f]{{{MIN_HASH_PREFIX},63}}")

# One message per failure, so a caller can tell what to fix without reading our code.
MISSING_HEADER = "Missing API key: send it as the header `Authorization: Bearer <key>`"
MALFORMED_HEADER = "Malformed Authorization header: expected `Bearer <key>`"
MALFORMED_KEY = (f"Invalid API key format: expected {KEY_PREFIX} followed by "
                 f"{KEY_HEX_CHARS} lowercase hex characters")
UNKNOWN_KEY = "Unknown API key: it does not exist on this server"


def generate_key() -> str:
    """A fresh key: the prefix plus 64 hex characters from the OS CSPRNG."""
    return KEY_PREFIX + secrets.token_hex(KEY_HEX_CHARS // 2)


def hash_key(key: str) -> str:
    """The stored form of a key: lowercase SHA-256 hex of its UTF-8 bytes."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def display_key(key: str) -> str:
    """A recognisable fragment that reveals 24 of the key's 256 bits."""
    body = key.removeprefix(KEY_PREFIX)
    return f"{KEY_PREFIX}{body[:3]}…{body[-3:]}"


def is_well_formed_key(key: str) -> bool:
    """Whether ``key`` has the exact shape of a key this server issues."""
    return _KEY_RE.fullmatch(key) is not None


def bearer_token(authorization: str | None) -> str:
    """The key in an ``Authorization`` header value; raises AuthenticationFailed otherwise.

    The scheme is case-insensitive (RFC 9110 §11.1) and surrounding spaces are ignored.
    """
    if authorization is None or not authorization.strip():
        raise AuthenticationFailed(MISSING_HEADER)
    parts = authorization.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise AuthenticationFailed(MALFORMED_HEADER)
    return parts[1]


def _check_label(label: str) -> str:
    # The length is of the label as sent, before stripping: one rule, the one the API states.
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidRequest(f"label: at most {MAX_LABEL_LENGTH} characters",
                             metadata={"field": "label"})
    # PostgreSQL text cannot hold NUL; refused on every backend so both keep the same keys.
    if "\x00" in label:
        raise InvalidRequest("label: must not contain NUL characters",
                             metadata={"field": "label"})
    label = label.strip()
    if not label:
        raise InvalidRequest("label: must not be empty", metadata={"field": "label"})
    return label


def check_limits(limits: dict[str, Any]) -> dict[str, Any]:
    """Validate key limit fields (None clears one); InvalidRequest names the bad field."""
    for name in ("limit_nanos", "rpm", "tpm"):
        value = limits.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0 or value > MAX_NANOS):
            raise InvalidRequest(f"{name.removesuffix('_nanos')}: expected a non-negative "
                                 "number", metadata={"field": name.removesuffix("_nanos")})
    reset = limits.get("limit_reset")
    if reset is not None and reset not in LIMIT_RESETS:
        raise InvalidRequest(f"limit_reset: expected one of {', '.join(LIMIT_RESETS)} or null",
                             metadata={"field": "limit_reset"})
    return limits


def check_cache_policy(policy: Any) -> str | None:
    """A key's cache policy as stored: None for ``default`` (or null); InvalidRequest names the
    field for anything else that is not one of KEY_CACHE_POLICIES."""
    if policy is None or policy == "default":
        return None
    if not isinstance(policy, str) or policy not in KEY_CACHE_POLICIES:
        raise InvalidRequest(f"cache_policy: expected one of {', '.join(KEY_CACHE_POLICIES)} "
                             "or null", metadata={"field": "cache_policy"})
    return policy


# Records kept by authenticate; past this many the cache starts over (it only saves reads).
MAX_CACHED_KEYS = 10_000


class KeyService:
    """Keys over a :class:`~embedrouter.store.Store`.

    ``authenticate`` reuses a key's record only while the store's ``keys_epoch()`` is the one it
    was read under; every key change by any process moves the epoch, so disabling a key (from
    the CLI or another instance) still takes effect on the next request. On SQLite a request
    then costs a memory load (a shared mapping) instead of a query; PostgreSQL has no epoch,
    so there every request reads its key.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[str, tuple[object, KeyRecord]] = {}

    def _new_record(self, key: str, label: str, *, management: bool,
                    **limits: Any) -> KeyRecord:
        return KeyRecord(key_hash=hash_key(key), label=label, is_management=management,
                         disabled=False, created_at=int(time.time()), display=display_key(key),
                         **limits)

    async def create(self, label: str, *, management: bool = False,
                     limit_nanos: int | None = None, limit_reset: str | None = None,
                     rpm: int | None = None, tpm: int | None = None,
                     cache_policy: str | None = None) -> tuple[str, KeyRecord]:
        """Create a key; returns its plaintext (shown once, never stored) and its record."""
        label = _check_label(label)
        limits = check_limits({"limit_nanos": limit_nanos, "limit_reset": limit_reset,
                               "rpm": rpm, "tpm": tpm})
        policy = check_cache_policy(cache_policy)
        key = generate_key()
        record = self._new_record(key, label, management=management, cache_policy=policy,
                                  **limits)
        await self._store.insert_key(record)
        log.info("created %s key %s (%s)", "management" if management else "inference",
                 record.display, label)
        return key, record

    async def authenticate(self, authorization: str | None) -> KeyRecord:
        """The active key named by an ``Authorization: Bearer <key>`` header value.

        Raises AuthenticationFailed, with a distinct message for a missing header, a malformed
        header, a malformed key, an unknown key and a disabled key. Whether the key may use a
        given endpoint (``can_embed``, ``can_manage``) is the caller's decision.
        """
        token = bearer_token(authorization)
        # Checked before hashing or querying: it bounds the work an anonymous caller can cause
        # and keeps odd input (NUL bytes, lone surrogates) away from the database driver.
        if not is_well_formed_key(token):
            raise AuthenticationFailed(MALFORMED_KEY)
        digest = hash_key(token)
        record = await self._lookup(digest)
        # The lookup is by hash, so its timing says nothing useful about the key; the
        # constant-time comparison guards against a backend that ever matches loosely
        # (collation, prefix index) returning a row that is not this exact hash.
        if record is None or not hmac.compare_digest(record.key_hash, digest):
            raise AuthenticationFailed(UNKNOWN_KEY)
        if record.disabled:
            raise AuthenticationFailed(f"API key {record.display} is disabled")
        return record

    async def _lookup(self, digest: str) -> KeyRecord | None:
        # The epoch is read before the row: a change committed after this read moves it, so
        # the next request reads again; a record is never trusted past a change it predates.
        epoch = self._store.keys_epoch()
        if epoch is None:
            return await self._store.get_key(digest)
        cached = self._cache.get(digest)
        if cached is not None and cached[0] == epoch:
            return cached[1]
        record = await self._store.get_key(digest)
        if record is not None:  # unknown keys are not kept: anyone can send endless new ones
            if len(self._cache) >= MAX_CACHED_KEYS:
                self._cache.clear()
            self._cache[digest] = (epoch, record)
        return record

    async def _resolve(self, key_or_hash: str) -> KeyRecord:
        """The one key named by a plaintext key, a full hash or an unambiguous hash prefix."""
        ref = key_or_hash.strip()
        if ref.startswith(KEY_PREFIX):
            if not is_well_formed_key(ref):
                raise InvalidRequest(MALFORMED_KEY)
            record = await self._store.get_key(hash_key(ref))
        elif _HASH_RE.fullmatch(ref.lower()):
            record = await self._store.get_key(ref.lower())
        elif _HASH_PREFIX_RE.fullmatch(ref.lower()):
            prefix = ref.lower()
            # A scan, not a query: key counts are small and this is an admin command, so the
            # Store interface stays free of a prefix-search method.
            matches = [r for r in await self._store.list_keys() if r.key_hash.startswith(prefix)]
            if len(matches) > 1:
                shown = ", ".join(f"{r.display} ({r.label})" for r in matches[:5])
                raise InvalidRequest(
                    f"That hash prefix matches {len(matches)} keys ({shown}); "
                    "give more characters of the hash"
                )
            record = matches[0] if matches else None
        else:
            raise InvalidRequest(
                f"Give the key itself ({KEY_PREFIX}…), its SHA-256 hash, or at least "
                f"{MIN_HASH_PREFIX} hex characters of the hash (see `embedrouter keys list`)"
            )
        if record is None:
            raise NotFound("No key matches that key or hash")
        return record

    async def disable(self, key_or_hash: str) -> KeyRecord:
        """Disable a key named by its plaintext, full hash or unique hash prefix (>= 8 hex).

        Raises NotFound when nothing matches and InvalidRequest when the reference is
        ambiguous or has the wrong shape. Disabling a disabled key is not an error.
        """
        record = await self._resolve(key_or_hash)
        if not await self._store.set_key_disabled(record.key_hash, True):
            raise NotFound("No key matches that key or hash")
        log.info("disabled key %s (%s)", record.display, record.label)
        updated = await self._store.get_key(record.key_hash)
        if updated is None:  # nothing deletes keys today; stay correct if something does
            raise NotFound("No key matches that key or hash")
        return updated

    async def get(self, key_or_hash: str) -> KeyRecord:
        """The key named by its plaintext, full hash or unique hash prefix; NotFound if none."""
        return await self._resolve(key_or_hash)

    async def update(self, key_hash: str, changes: dict[str, Any]) -> KeyRecord:
        """Change label, disabled, limit_nanos, limit_reset, rpm, tpm or cache_policy of the
        key with this full hash. Every instance sees it on the key's next request (the store's
        key epoch moves)."""
        if "label" in changes:
            changes["label"] = _check_label(str(changes["label"]))
        if "cache_policy" in changes:
            changes["cache_policy"] = check_cache_policy(changes["cache_policy"])
        changes = {**changes, **check_limits({k: v for k, v in changes.items()
                                              if k in ("limit_nanos", "limit_reset", "rpm",
                                                       "tpm")})}
        record = await self._store.update_key(key_hash, changes)
        if record is None:
            raise NotFound("No key with that hash")
        log.info("updated key %s (%s): %s", record.display, record.label, sorted(changes))
        return record

    async def delete(self, key_hash: str) -> None:
        """Delete the key with this full hash; its generation records stay in the ledger."""
        if not await self._store.delete_key(key_hash):
            raise NotFound("No key with that hash")
        log.info("deleted key %s…", key_hash[:12])

    async def list(self) -> list[KeyRecord]:
        """Every key, oldest first (records carry hashes and display forms only)."""
        return await self._store.list_keys()

    async def ensure_bootstrap_key(self) -> str | None:
        """On a store with no key at all, create a management key labelled ``bootstrap``.

        Returns its plaintext, exactly once per database; None when keys already exist.
        Safe when several processes start together: the store inserts it atomically, so only
        one of them creates a key and the others get None.
        """
        if await self._store.count_keys() > 0:
            return None  # the common case, answered without taking any write lock
        key = generate_key()
        record = self._new_record(key, BOOTSTRAP_LABEL, management=True)
        if not await self._store.insert_key_if_empty(record):
            return None
        log.info("created bootstrap management key %s", record.display)
        return key
