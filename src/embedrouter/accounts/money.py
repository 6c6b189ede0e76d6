"""Money as integer nano-dollars (1e-9 USD): exact, and small enough for Redis counters.

Micro-dollars are too coarse for embeddings: at $0.02 per million tokens a 10-token request
costs 0.2 micro-dollars. A nano-dollar holds every price with up to three decimals per million
tokens exactly; finer prices are rounded up to the next nano-dollar, and the rounded amount is
both what is charged and what ``usage.cost`` says. Redis's Lua numbers are doubles, exact up to
2**53 nano-dollars (about $9 million): balances and limits are refused past ``MAX_NANOS``.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, InvalidOperation

NANOS_PER_USD = 1_000_000_000
MAX_NANOS = 2**53 - 1
_NANO = Decimal(1) / NANOS_PER_USD


def to_nanos(usd: Decimal) -> int:
    """``usd`` in nano-dollars, rounded up (a charge is never rounded in the caller's favour
    against the budget, so a reservation made from it stays an upper bound)."""
    return int((usd * NANOS_PER_USD).to_integral_value(rounding=ROUND_CEILING))


def from_nanos(nanos: int) -> Decimal:
    """Nano-dollars as an exact Decimal amount of USD."""
    return (Decimal(nanos) * _NANO).normalize() if nanos else Decimal(0)


def usd_number(nanos: int) -> float:
    """A display value for JSON fields the SDKs type as float (``/key``'s ``usage``)."""
    return float(from_nanos(nanos))


def parse_usd(text: str | float | int | Decimal, *, field: str = "amount") -> int:
    """A non-negative USD amount given by a person or a JSON body, as nano-dollars.

    Floats go through ``str`` first, so ``0.1`` means exactly one tenth. Raises ValueError
    naming ``field``.
    """
    if isinstance(text, bool):
        raise ValueError(f"{field}: expected a number of USD")
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError(f"{field}: {text!r} is not a number of USD") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{field}: must be a finite, non-negative number of USD")
    nanos = value * NANOS_PER_USD
    if nanos != nanos.to_integral_value():
        raise ValueError(f"{field}: at most 9 decimals (nano-dollars)")
    if nanos > MAX_NANOS:
        raise ValueError(f"{field}: at most {from_nanos(MAX_NANOS)} USD")
    return int(nanos)
