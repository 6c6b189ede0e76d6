"""The status a client gets when every upstream attempt fails: a table of cases."""

from __future__ import annotations

import pytest

from embedrouter.api.errors import render
from embedrouter.providers.upstream import AttemptFailure
from embedrouter.router.failures import final_error

SLUG = "openai/text-embedding-3-small"


def f(kind: str, provider: str = "OpenAI", **kw: object) -> AttemptFailure:
    return AttemptFailure(kind=kind, provider=provider, message=f"{kind} happened", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("attempts", "status"), [
    ([f("rate_limited", retry_after=7), f("rate_limited", "Azure", retry_after=3)], 429),
    ([f("overloaded", status=529), f("overloaded")], 529),
    ([f("timeout"), f("timeout")], 504),
    ([f("unavailable", status=503)], 502),  # a plain 503 is unavailable, not overloaded
    ([f("rate_limited"), f("timeout")], 502),
    ([f("invalid_reply")], 502),
    ([f("timeout"), f("bad_request", status=400, raw='{"error":"bad"}')], 400),
    ([f("auth", status=401)], 502),  # our upstream key is wrong: the caller's request is fine
])
def test_final_status(attempts: list[AttemptFailure], status: int) -> None:
    code, body, _ = render(final_error(attempts, slug=SLUG))
    assert code == status
    assert b'"code":%d' % status in body


def test_all_rate_limited_is_capacity_exhausted_with_the_smallest_hint() -> None:
    err = final_error([f("rate_limited", retry_after=7.2), f("rate_limited", "Azure",
                                                            retry_after=2.5)], slug=SLUG)
    assert err.status == 429 and err.headers["retry-after"] == "3"
    assert err.metadata["availability"]["code"] == "capacity_exhausted"  # type: ignore[index]
    assert err.metadata["previous_errors"] == [  # type: ignore[index]
        {"provider": "OpenAI", "code": None, "kind": "rate_limited"}]
    assert err.metadata["provider_name"] == "Azure"  # type: ignore[index]


def test_nothing_tried() -> None:
    err = final_error([], slug=SLUG)
    assert err.status == 503
    assert err.metadata["availability"]["code"] == "temporarily_unavailable"  # type: ignore[index]
    resting = final_error([], slug=SLUG, resting_retry_after=12.1)
    assert resting.status == 429 and resting.headers["retry-after"] == "13"


def test_deadline_is_524() -> None:
    assert final_error([f("timeout")], slug=SLUG, deadline_passed=True).status == 524


def test_upstream_400_keeps_its_details() -> None:
    err = final_error([f("bad_request", status=400, code="invalid_input", raw="{...}")],
                      slug=SLUG)
    assert err.status == 400
    assert err.metadata == {"provider_name": "OpenAI", "error_type": "invalid_request",
                            "provider_code": "invalid_input", "raw": "{...}"}
