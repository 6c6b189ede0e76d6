"""The batcher's histograms: Prometheus's cumulative `le` buckets, kept without a library."""

from __future__ import annotations

import pytest

from embedrouter.histogram import Histogram


@pytest.mark.parametrize(("values", "expected"), [
    ([], [("1.0", 0), ("4.0", 0), ("+Inf", 0)]),
    ([1], [("1.0", 1), ("4.0", 1), ("+Inf", 1)]),  # le: a value on a bound counts in it
    ([0.5, 2, 4, 4.5, 100], [("1.0", 1), ("4.0", 3), ("+Inf", 5)]),
])
def test_buckets_are_cumulative_and_inclusive(values: list[float],
                                              expected: list[tuple[str, int]]) -> None:
    h = Histogram([4, 1])
    for v in values:
        h.observe(v)
    assert h.buckets() == [(le, float(n)) for le, n in expected]
    assert h.total == sum(values)
