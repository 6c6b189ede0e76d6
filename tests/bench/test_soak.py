"""bench/soak.py: a ~10 s run against a real server, and its verdict logic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.scripts import load_bench

soak = load_bench("soak")


def _result(**over):  # type: ignore[no-untyped-def]
    base = {"rate_req_per_s": 5, "duration_s": 10, "requests": 50, "by_kind_status": {},
            "status_5xx": 0, "status_429": 0, "client_backlog": 0, "vectors_checked": 10,
            "min_cosine": 1.0, "failures": [], "valid_p50_ms": 5, "valid_p95_ms": 9,
            "rss_mb": {"start": 300, "end": 303, "min": 290, "max": 310, "drift_pct": 1.0}}
    return {**base, **over}


def test_verdict_fails_on_5xx_wrong_answers_and_drift() -> None:
    assert soak.report(_result(), 5.0)[1]
    assert not soak.report(_result(status_5xx=1), 5.0)[1]
    assert not soak.report(_result(failures=["valid: status 500"]), 5.0)[1]
    # A 5XX the client never saw (its request was hung up) still fails the run.
    assert not soak.report(_result(server_counts_all_phases={"200": 9, "503": 1}), 5.0)[1]
    drifting = _result(rss_mb={"start": 300, "end": 330, "min": 300, "max": 330,
                               "drift_pct": 10.0})
    text, ok = soak.report(drifting, 5.0)
    assert not ok and "FAIL: growth < 5%" in text
    # Memory handed back (RSS ending lower) is not a leak.
    falling = _result(rss_mb={"start": 300, "end": 270, "min": 260, "max": 300,
                              "drift_pct": -10.0})
    assert soak.report(falling, 5.0)[1]


@pytest.mark.slow
def test_short_soak_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("embedrouter.engine")
    out = tmp_path / "soak.json"
    code = soak.main(["--duration", "10", "--rate", "4", "--warmup", "2", "--corpus-lines", "40",
                      "--sample-every", "1", "--max-drift-pct", "1000", "--json", str(out),
                      # A richer mix than the soak's default, so 40 requests meet every kind.
                      "--mix", "0.4", "0.2", "0.2", "0.2"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    r = json.loads(out.read_text())
    assert r["status_5xx"] == 0 and r["failures"] == []
    assert r["vectors_checked"] > 0 and r["min_cosine"] >= 0.9999
    kinds = {k.split()[0] for k in r["by_kind_status"]}
    assert kinds >= {"valid", "malformed", "overlong"}, r["by_kind_status"]
    assert all(s in {"400"} for k, s in (x.split() for x in r["by_kind_status"])
               if k in ("malformed", "overlong"))
    assert len(r["rss_mb"]["samples"]) >= 5
    assert "RESULT: PASS" in printed
