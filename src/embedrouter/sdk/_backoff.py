"""Retry policy: the configuration types and small pure functions over them.

Mirrors the official OpenRouter SDK (``openrouter.utils.retries``): exponential backoff with
jitter on 5XX and connection errors by default, a one-hour budget, ``Retry-After`` (seconds or
an HTTP date) and ``retry-after-ms`` taking precedence, and 429 retried only when asked.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

DEFAULT_STATUS_CODES = ("5XX",)


@dataclass(frozen=True, slots=True)
class BackoffStrategy:
    """Intervals in milliseconds, as in the official SDK."""

    initial_interval: int = 500
    max_interval: int = 60_000
    exponent: float = 1.5
    max_elapsed_time: int = 3_600_000
    jitter_ms: int | None = None


@dataclass(frozen=True, slots=True)
class RetryConfig:
    strategy: str = "backoff"  # "backoff" | "none"
    backoff: BackoffStrategy = field(default_factory=BackoffStrategy)
    retry_connection_errors: bool = True
    status_codes_override: list[str] | None = None

    @property
    def status_codes(self) -> tuple[str, ...]:
        return tuple(self.status_codes_override or DEFAULT_STATUS_CODES)


DEFAULT_RETRY = RetryConfig()
NO_RETRY = RetryConfig(strategy="none")


def status_matches(status: int, codes: tuple[str, ...] | list[str]) -> bool:
    """``"5XX"`` matches 500-599, ``"429"`` matches 429 only."""
    for code in codes:
        code = code.upper()
        if code.endswith("XX") and len(code) == 3 and code[0].isdigit():
            if status // 100 == int(code[0]):
                return True
        elif code.isdigit() and int(code) == status:
            return True
    return False


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms`` or ``Retry-After``."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000
        except ValueError:
            value = 0
        if value > 0:
            return value
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        value = when.timestamp() - (time.time() if now is None else now)
    return value if value > 0 else None


def backoff_delay(strategy: BackoffStrategy, attempt: int, rng: random.Random | None = None
                  ) -> float:
    """Seconds before retry number ``attempt`` (0-based): initial * exponent**n plus jitter."""
    rng = rng or random
    base = strategy.initial_interval / 1000 * strategy.exponent**attempt
    jitter = rng.uniform(0, (strategy.jitter_ms if strategy.jitter_ms is not None else 1000)
                         / 1000)
    return min(base + jitter, strategy.max_interval / 1000)


def next_delay(config: RetryConfig, attempt: int, elapsed: float, *,
               headers: Mapping[str, str] | None = None, rng: random.Random | None = None
               ) -> float | None:
    """The wait before the next try, or None when the policy or the time budget says stop."""
    if config.strategy != "backoff":
        return None
    delay = retry_after(headers) if headers is not None else None
    if delay is None:
        delay = backoff_delay(config.backoff, attempt, rng)
    if elapsed + delay > config.backoff.max_elapsed_time / 1000:
        return None
    return delay
