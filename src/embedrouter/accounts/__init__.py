"""Accounts: API keys today; credits, limits and generation records as they arrive."""

from __future__ import annotations

from embedrouter.accounts.keys import (
    KEY_PREFIX,
    KeyService,
    display_key,
    generate_key,
    hash_key,
)

__all__ = ["KEY_PREFIX", "KeyService", "display_key", "generate_key", "hash_key"]
