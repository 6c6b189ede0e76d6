"""The shared pieces adapters lean on: how a body refines a status's kind, Google's retry
delays, and the checks every success reply passes."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from embedrouter.providers.gemini import retry_delay
from embedrouter.providers.upstream import (
    AttemptFailure,
    HttpReply,
    ProviderConfig,
    base64_rows,
    checked,
    kind_for_status,
    refine_kind,
)

CONFIG = ProviderConfig(name="x", kind="openai", base_url="http://127.0.0.1", api_key="k")
REPLY = HttpReply(200, {}, b"{}")


@pytest.mark.parametrize("message", [
    "Requested 400000 tokens, max 300000 tokens per request",
    "invalid request: total number of texts must be at most 96 - received 120",
    "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch",
    "Unable to submit request because it has more than 250 instances; only 250 instance(s) is "
    "allowed.",
    "batch size 40 > maximum allowed batch size 32",
    "The max allowed tokens per submitted batch is 120000.",
    "Too many inputs in one request",
])
def test_batch_too_big_is_too_large(message: str) -> None:
    assert refine_kind("bad_request", message, None) == "too_large"


@pytest.mark.parametrize("message", [
    "the input length exceeds the context length",
    "This model's maximum context length is 8192 tokens, however you requested 9000 tokens",
    "Input cannot contain empty strings.",
    "output_dimension must be one of 256, 512, 1024, 1536",
])
def test_per_input_errors_stay_bad_request(message: str) -> None:
    # Splitting the batch cannot fix these, so the router must not be told to split.
    assert refine_kind("bad_request", message, None) == "bad_request"


def test_overloaded_only_when_said_on_a_server_error() -> None:
    assert refine_kind("unavailable", "The engine is currently overloaded", None) == "overloaded"
    assert refine_kind("unavailable", None, "overloaded_error") == "overloaded"
    assert refine_kind("unavailable", "Service Unavailable", None) == "unavailable"
    # A 429 that says "overloaded" (TEI's full queue) stays a rate limit.
    assert refine_kind("rate_limited", "Model is overloaded", None) == "rate_limited"


@pytest.mark.parametrize(("status", "kind"), [
    (400, "bad_request"), (422, "bad_request"), (401, "auth"), (403, "auth"),
    (404, "unavailable"), (408, "timeout"), (413, "too_large"), (429, "rate_limited"),
    (500, "unavailable"), (503, "unavailable"), (504, "timeout"), (529, "overloaded")])
def test_kind_for_status(status: int, kind: str) -> None:
    assert kind_for_status(status) == kind


@pytest.mark.parametrize(("details", "seconds"), [
    ([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"}], 17.0),
    ([{"@type": "x.QuotaFailure"}, {"retryDelay": "1.250s"}], 1.25),
    ([{"retryDelay": "0s"}], None), ([{"retryDelay": 5}], None), ([{"retryDelay": "5m"}], None),
    (None, None), ("17s", None)])
def test_google_retry_delay(details: object, seconds: float | None) -> None:
    assert retry_delay(details) == seconds


def test_checked_refuses_gaps_duplicates_width_and_nan() -> None:
    rows = np.ones((2, 3), dtype=np.float32)
    assert checked(CONFIG, REPLY, rows, [1, 0], 5, sent=2, dimensions=3).indices == [1, 0]
    bad = [(rows, [0, 0], 3), (rows, [0, 2], 3), (rows, [0, 1], 4), (rows[:1], [0], 3)]
    for vectors, indices, dim in bad:
        with pytest.raises(AttemptFailure) as info:
            checked(CONFIG, REPLY, vectors, indices, None, sent=2, dimensions=dim)
        assert info.value.kind == "invalid_reply"
    nan = rows.copy()
    nan[1, 2] = np.nan
    with pytest.raises(AttemptFailure) as info:
        checked(CONFIG, REPLY, nan, [0, 1], None, sent=2, dimensions=None)
    assert "non-finite" in info.value.message


def test_base64_rows() -> None:
    v = np.array([[0.5, -1.0], [2.0, 0.25]], dtype="<f4")
    rows = [base64.b64encode(r.tobytes()).decode() for r in v]
    np.testing.assert_array_equal(base64_rows(rows, CONFIG, REPLY), v)
    for bad in (["!!"], [rows[0], base64.b64encode(b"\0" * 12).decode()],
                [base64.b64encode(b"abc").decode()], [None]):
        with pytest.raises(AttemptFailure) as info:
            base64_rows(bad, CONFIG, REPLY)
        assert info.value.kind == "invalid_reply"
