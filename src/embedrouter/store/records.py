"""The rows the store keeps, as plain frozen values shared by every backend."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One API key as stored: never the key itself, only its SHA-256 hash.

    ``display`` is a recognisable but useless fragment (``sk-er-v1-3f9…a1c``) for lists and
    messages; ``created_at`` is unix seconds.
    """

    key_hash: str
    label: str
    is_management: bool
    disabled: bool
    created_at: int
    display: str

    @property
    def can_embed(self) -> bool:
        """Whether inference endpoints may accept this key.

        OpenRouter's contract: management keys are for admin endpoints only, and inference
        endpoints do not accept them. The API layer enforces it; this only states the rule.
        """
        return not self.is_management and not self.disabled

    @property
    def can_manage(self) -> bool:
        """Whether admin endpoints (credits, key management) may accept this key."""
        return self.is_management and not self.disabled
