"""bench/http_bench.py: its pure helpers, and a --quick smoke run against a real server."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from tests.bench.scripts import load_bench

hb = load_bench("http_bench")


def test_plan_covers_the_corpus_with_1_to_16_inputs_deterministically() -> None:
    plan = hb.plan_requests(2000, seed=7)
    assert plan == hb.plan_requests(2000, seed=7)
    assert plan != hb.plan_requests(2000, seed=8)
    assert plan[0][0] == 0 and plan[-1][1] == 2000
    assert all(a == b for (_, a), (b, _) in itertools.pairwise(plan))
    assert all(1 <= stop - start <= 16 for start, stop in plan[:-1])
    assert 1 <= plan[-1][1] - plan[-1][0] <= 16


def test_percentile_and_padding_efficiency() -> None:
    assert hb.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert hb.percentile([1.0, 2.0], 95) == pytest.approx(1.95)
    assert hb.sorted_batch_efficiency([4, 4, 2, 2], 2) == 1.0
    assert hb.sorted_batch_efficiency([1, 3], 2) == pytest.approx(4 / 6)


def test_corpus_has_2000_sentences() -> None:
    assert len(hb.load_corpus()) == 2000


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("embedrouter.engine")
    out = tmp_path / "bench.json"
    assert hb.main(["--quick", "--no-st", "--short-requests", "20", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["sentences"] == 200
    assert {(r["concurrency"], r["encoding"]) for r in results["http"]} >= {
        (1, "base64"), (8, "base64"), (32, "base64"), (32, "float")}
    assert all(r["rate"] > 0 for r in results["http"])
    assert results["engine"]["rate"] > 0
    assert results["memory_mb"]["VmHWM"] > 0
    assert {t["result"] for t in results["targets"]} <= {"PASS", "FAIL", "SKIPPED"}
    printed = capsys.readouterr().out
    assert "| HTTP (raw) | 32 | base64 |" in printed
    assert "ready within 3 s" in printed
