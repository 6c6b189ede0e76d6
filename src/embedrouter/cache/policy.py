"""Whether one request may read and write the cache: the key's policy, then the request's
``Cache-Control`` header, each of which can only make it stricter.

``no-store`` skips reading and writing; ``no-cache`` skips reading (the fresh vectors are still
stored), as RFC 9111 §5.2.1 defines the two request directives.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CacheMode:
    read: bool
    write: bool

    @property
    def active(self) -> bool:
        return self.read or self.write


USE = CacheMode(read=True, write=True)
REFRESH = CacheMode(read=False, write=True)
BYPASS = CacheMode(read=False, write=False)
# A key's cache_policy (store.records.KEY_CACHE_POLICIES), set through `/keys` or `keys create`.
_BY_NAME = {"default": USE, "no-cache": REFRESH, "no-store": BYPASS}


def _directives(cache_control: str) -> set[str]:
    # Directive names are case-insensitive; arguments (max-age=0) are not used here.
    return {part.split("=", 1)[0].strip().lower() for part in cache_control.split(",")}


def resolve_mode(key_policy: str | None, cache_control: str | None) -> CacheMode:
    """The stricter of the key's policy and the request header. No policy is the default; one
    this version does not know is treated as ``no-store``, the choice that cannot be wrong."""
    mode = _BY_NAME.get(key_policy, BYPASS) if key_policy else USE
    if cache_control:
        found = _directives(cache_control)
        if "no-store" in found:
            return BYPASS
        if "no-cache" in found:
            mode = CacheMode(read=False, write=mode.write)
    return mode
