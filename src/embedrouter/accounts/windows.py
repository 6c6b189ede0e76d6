"""Time windows: key spend limits (daily / weekly / monthly, UTC) and per-minute rate windows.

Pure functions of a clock reading, so every instance derives the same window from the same
instant and tests can pass any time they like.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

LIMIT_RESETS = ("daily", "weekly", "monthly")
RATE_WINDOW_MS = 60_000
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Window:
    """A spend window: its id (part of counter names), start and end in unix milliseconds."""

    id: str
    start_ms: int
    end_ms: int | None  # None: the all-time window of a limit without reset


_ALL_TIME = Window("all", 0, None)


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def period_starts(now_ms: int) -> tuple[int, int, int]:
    """Start of the current UTC day, week (weeks start on Monday) and month, in ms."""
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week = day - timedelta(days=day.weekday())
    month = day.replace(day=1)
    return _ms(day), _ms(week), _ms(month)


def spend_window(reset: str | None, now_ms: int) -> Window:
    """The window a key's spend limit counts in right now."""
    if reset is None:
        return _ALL_TIME
    return _day_window(reset, now_ms // DAY_MS)


@lru_cache(maxsize=64)
def _day_window(reset: str, day_number: int) -> Window:
    # Every window starts and ends on a UTC midnight, so it is a function of the day alone:
    # cached, the datetime arithmetic runs once a day per reset kind, not once a request.
    day = datetime.fromtimestamp(day_number * DAY_MS / 1000, UTC)
    if reset == "daily":
        start, end = day, day + timedelta(days=1)
    elif reset == "weekly":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    elif reset == "monthly":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"limit_reset: expected one of {', '.join(LIMIT_RESETS)} or null")
    return Window(f"{reset[0]}{start:%Y%m%d}", _ms(start), _ms(end))


def rate_window(now_ms: int) -> tuple[int, int]:
    """The fixed one-minute window: its number and the milliseconds until it ends.

    Fixed windows, not sliding ones: a caller over the limit is let in again at the next
    minute at the latest (no lockout past the window), and the count is one integer per
    scope, so a Redis round trip checks it atomically.
    """
    number = now_ms // RATE_WINDOW_MS
    return number, (number + 1) * RATE_WINDOW_MS - now_ms
