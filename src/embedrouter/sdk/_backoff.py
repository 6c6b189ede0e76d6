"""Retry policy: the configuration types and small pure functions over them.

Mirrors the official OpenRouter SDK (``openrouter.utils.retries``): exponential backoff with
jitter on 5XX and connection errors by default, a one-hour budget, ``Retry-After`` (seconds or
an HTTP date) and ``retry-after-ms`` taking precedence, and 429 retried only when asked.
The loop that applies them lives in ``_core``; everything here is pure and tested with tables.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import httpx

DEFAULT_STATUS_CODES = ("5XX",)


@dataclass(frozen=True, slots=True)
class BackoffStrategy:
    """Intervals in milliseconds, as in the official SDK (whose defaults these are)."""

    initial_interval: int = 500
    max_interval: int = 60_000
    exponent: float = 1.5
    max_elapsed_time: int = 3_600_000
    jitter_ms: int | None = None

    def __post_init__(self) -> None:
        if self.jitter_ms is not None and self.jitter_ms < 0:
            raise ValueError("jitter_ms must be >= 0")


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """``RetryConfig("backoff", BackoffStrategy(...), True, ["429", "5XX"])``, as officially."""

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


def transport_retryable(exc: httpx.TransportError) -> bool:
    """Whether a transport failure may be transient.

    The official SDK retries ``httpx.NetworkError`` and ``httpx.TimeoutException``. We also retry
    ``RemoteProtocolError`` (the server closed the connection without answering: a restart or a
    keep-alive race, the commonest transient failure of all). A malformed URL, an unsupported
    scheme or a proxy refusal is never retried: waiting an hour will not fix it.
    """
    return isinstance(exc, httpx.NetworkError | httpx.TimeoutException
                      | httpx.RemoteProtocolError)


def _number(raw: str | None) -> float | None:
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, or None to fall back to backoff.

    As officially: a parseable ``retry-after-ms`` (>= 0) decides on its own; otherwise
    ``Retry-After`` in seconds or as an HTTP date. A wait of 0 or less means "use backoff".
    """
    ms = _number(headers.get("retry-after-ms"))
    if ms is not None and ms >= 0:
        return ms / 1000 if ms > 0 else None
    raw = (headers.get("retry-after") or "").strip()
    if not raw:
        return None
    value = _number(raw)
    if value is None:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        value = when.timestamp() - (time.time() if now is None else now)
    return value if value > 0 else None


def backoff_delay(strategy: BackoffStrategy, attempt: int, rng: random.Random | None = None
                  ) -> float:
    """Seconds before retry number ``attempt`` (0-based): initial * exponent**n plus jitter
    (0-1 s, or 0-``jitter_ms``), capped at ``max_interval``."""
    rng = rng or random
    base = strategy.initial_interval / 1000 * strategy.exponent**attempt
    jitter = rng.uniform(0, (strategy.jitter_ms if strategy.jitter_ms is not None else 1000)
                         / 1000)
    return min(base + jitter, strategy.max_interval / 1000)


def next_delay(config: RetryConfig, attempt: int, elapsed: float, *,
               headers: Mapping[str, str] | None = None, rng: random.Random | None = None
               ) -> float | None:
    """The wait before the next try, or None when the policy or the time budget says stop.

    Unlike the official loop (which checks the budget only before sleeping), a wait that would
    end past ``max_elapsed_time`` is not started: the caller gets the last error at once.
    """
    if config.strategy != "backoff":
        return None
    delay = retry_after(headers) if headers is not None else None
    if delay is None:
        delay = backoff_delay(config.backoff, attempt, rng)
    if elapsed + delay > config.backoff.max_elapsed_time / 1000:
        return None
    return delay
