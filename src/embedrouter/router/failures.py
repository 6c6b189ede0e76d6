"""Upstream failures in one vocabulary, and the error for a request whose attempts all fail.

Adapters translate each upstream's replies into ``AttemptFailure``; the router decides from the
kind whether to try the next endpoint, and ``final_error`` turns the list of failed attempts into
the one status the client sees (openrouter-api.md sections 2.2, 2.3 and 3):

- every attempt rate limited       -> 429 ``capacity_exhausted``, Retry-After = smallest hint
- every attempt overloaded         -> 529 (an upstream 529 or an explicit overloaded signal)
- every attempt timed out          -> 504
- a non-retryable 400 from upstream -> 400 with the upstream's details
- anything else                    -> 502
- nothing could be tried           -> 503 ``temporarily_unavailable``
- the request's own deadline        -> 524
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from embedrouter.errors import UpstreamError
from embedrouter.providers.upstream import AttemptFailure

_ERROR_TYPE = {"rate_limited": "rate_limit_exceeded", "overloaded": "provider_overloaded",
               "unavailable": "provider_unavailable", "timeout": "timeout",
               "connection": "provider_unavailable", "invalid_reply": "provider_unavailable",
               "bad_request": "invalid_request", "auth": "authentication",
               "too_large": "payload_too_large"}


def _metadata(last: AttemptFailure, attempts: Sequence[AttemptFailure]) -> dict[str, object]:
    meta: dict[str, object] = {
        "provider_name": last.provider,
        "error_type": _ERROR_TYPE[last.kind],
    }
    if last.code is not None or last.status is not None:
        meta["provider_code"] = last.code if last.code is not None else last.status
    if last.raw is not None:
        meta["raw"] = last.raw
    if last.retry_after is not None:
        meta["retry_after_seconds"] = math.ceil(last.retry_after)
    if len(attempts) > 1:
        meta["previous_errors"] = [{"provider": a.provider, "code": a.status, "kind": a.kind}
                                   for a in attempts[:-1]]
    return meta


def final_error(attempts: Sequence[AttemptFailure], *, slug: str,
                deadline_passed: bool = False,
                resting_retry_after: float | None = None) -> UpstreamError:
    """The error for a request none of whose attempts succeeded.

    ``resting_retry_after``: when endpoints were skipped because an earlier 429 put them out of
    rotation, the soonest they come back (it counts as a rate-limit hint).
    """
    if deadline_passed:
        return UpstreamError(524, "Request timed out. Please try again later.",
                             metadata={"error_type": "timeout"})
    if not attempts:
        if resting_retry_after is not None:
            return _capacity(slug, resting_retry_after, None)
        return UpstreamError(503, f"No endpoint of model {slug!r} is available right now",
                             metadata={"availability": {
                                 "code": "temporarily_unavailable", "retryable": True,
                                 "requested_models": [slug]}})
    last = attempts[-1]
    kinds = {a.kind for a in attempts}
    meta = _metadata(last, attempts)
    if kinds == {"rate_limited"}:
        hints = [a.retry_after for a in attempts if a.retry_after is not None]
        if resting_retry_after is not None:
            hints.append(resting_retry_after)
        return _capacity(slug, min(hints) if hints else None, meta)
    if kinds == {"overloaded"}:
        return UpstreamError(529, "Provider returned error", metadata=meta)
    if kinds == {"timeout"}:
        return UpstreamError(504, f"{last.provider} timed out", metadata=meta)
    if not last.retryable and last.kind == "bad_request":
        return UpstreamError(400, f"{last.provider} rejected the request: {last.message}",
                             metadata=meta)
    return UpstreamError(502, f"Provider returned error ({last.provider}: {last.message})",
                         metadata=meta)


def _capacity(slug: str, retry_after: float | None,
              meta: dict[str, object] | None) -> UpstreamError:
    seconds = max(1, math.ceil(retry_after)) if retry_after is not None else 1
    metadata = dict(meta or {})
    metadata["availability"] = {"code": "capacity_exhausted", "retryable": True,
                                "requested_models": [slug], "retry_after": seconds}
    return UpstreamError(429, f"Every endpoint of model {slug!r} is rate limited; retry in "
                              f"{seconds} s", metadata=metadata,
                         headers={"retry-after": str(seconds)})
