"""``UNSET``: "not passed", as distinct from an explicit ``None``.

The official SDK tells the two apart for ``retries`` / ``retry_config`` (None switches retries
off) and for ``provider`` (None is sent as JSON null); so do we.
"""

from __future__ import annotations

from typing import Any, Final


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final[Any] = _Unset()
