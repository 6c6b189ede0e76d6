"""The progress bar: texts done of the total, with the rate and the time left (tqdm)."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Counts unique texts embedded; a resumed job starts at what its checkpoint holds, and
    the rate and ETA count only this run's work."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=done, unit="text", desc="embedding",
                             file=sys.stderr, dynamic_ncols=True, smoothing=0.1,
                             mininterval=0.5)

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
