"""Pure pieces: nano-dollar money and the UTC windows limits count in."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from embedrouter.accounts.money import MAX_NANOS, from_nanos, parse_usd, to_nanos
from embedrouter.accounts.windows import period_starts, rate_window, spend_window
from embedrouter.router.quote import SPECIAL_TOKENS_PER_INPUT, token_bound


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(("usd", "nanos"), [
    ("0", 0), ("1", 1_000_000_000), ("0.000000001", 1), ("12.5", 12_500_000_000),
    (0.1, 100_000_000), (Decimal("0.02"), 20_000_000)])
def test_parse_usd_is_exact(usd: object, nanos: int) -> None:
    assert parse_usd(usd) == nanos  # type: ignore[arg-type]
    assert to_nanos(from_nanos(nanos)) == nanos


@pytest.mark.parametrize("bad", ["-1", "ten", "nan", "inf", "0.0000000001", True,
                                 str(Decimal(MAX_NANOS + 1) / 10**9)])
def test_parse_usd_refuses(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_usd(bad)  # type: ignore[arg-type]


def test_costs_round_up_to_the_next_nano_dollar() -> None:
    assert to_nanos(Decimal("0.02") * 10 / 1_000_000) == 200  # exact
    assert to_nanos(Decimal("0.0001") / 1_000_000) == 1  # 0.1 nano-dollars, rounded up
    assert to_nanos(Decimal("0.0015") * 3 / 1_000_000) == 5  # 4.5
    assert to_nanos(Decimal("0.13") * 1000 / 1_000_000) == 130_000  # exact: no rounding


@pytest.mark.parametrize(("now", "reset", "start", "end"), [
    ("2026-01-01T00:00:00", "daily", "2026-01-01", "2026-01-02"),
    ("2026-01-01T00:00:00", "weekly", "2025-12-29", "2026-01-05"),  # weeks start on Monday
    ("2026-03-31T23:59:59", "monthly", "2026-03-01", "2026-04-01"),
    ("2026-12-31T23:00:00", "monthly", "2026-12-01", "2027-01-01"),
    ("2028-02-29T12:00:00", "monthly", "2028-02-01", "2028-03-01"),
    ("2026-06-14T10:00:00", "weekly", "2026-06-08", "2026-06-15"),
])
def test_spend_windows(now: str, reset: str, start: str, end: str) -> None:
    w = spend_window(reset, ms(now))
    assert (w.start_ms, w.end_ms) == (ms(start + "T00:00:00"), ms(end + "T00:00:00"))
    assert spend_window(None, ms(now)).end_ms is None


def test_period_starts_and_rate_window() -> None:
    assert period_starts(ms("2026-01-01T05:00:00")) == (
        ms("2026-01-01T00:00:00"), ms("2025-12-29T00:00:00"), ms("2026-01-01T00:00:00"))
    number, left = rate_window(ms("2026-01-01T00:00:45"))
    assert left == 15_000 and number == ms("2026-01-01T00:00:00") // 60_000


def test_token_bound_covers_any_tokenizer() -> None:
    assert token_bound(["héllo", [1, 2, 3]]) == 6 + 3 + 2 * SPECIAL_TOKENS_PER_INPUT
