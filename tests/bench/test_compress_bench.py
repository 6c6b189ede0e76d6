"""bench/compress_bench.py: its summary arithmetic, and a --quick smoke run on a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.scripts import load_bench

cb = load_bench("compress_bench")


def _run(rate: float, cpu: float, wire: float) -> dict:
    return {"rate": rate, "p50_ms": 1.0, "server_cpu_s_per_1k": cpu,
            "wire_bytes_per_sentence": wire, "cores": {"other": 0.0}}


def test_summary_ratios_and_target() -> None:
    runs = {
        "base64 identity": [_run(100, 6.0, 2000), _run(101, 6.0, 2000), _run(99, 6.0, 2000)],
        "base64 gzip": [_run(96, 6.1, 2000), _run(98, 6.1, 2000), _run(200, 6.1, 2000)],
        "float identity": [_run(100, 6.0, 4800)],
        "float gzip": [_run(99, 6.06, 2100)],
    }
    s = cb.summarize(runs)
    assert s["ratios"]["base64"]["rate"] == pytest.approx(0.98)  # medians 98 / 100
    assert s["ratios"]["float"]["wire"] == pytest.approx(2100 / 4800)
    assert s["ratios"]["float"]["server_cpu"] == pytest.approx(1.01)
    assert s["target"]["result"] == "PASS"
    runs["base64 gzip"] = [_run(96, 6.0, 2000)]
    assert cb.summarize(runs)["target"]["result"] == "FAIL"
    # A baseline that itself swings by ±10% cannot vouch for a 3% bound.
    runs["base64 gzip"] = [_run(99, 6.0, 2000)]
    runs["base64 identity"] = [_run(90, 6.0, 2000), _run(100, 6.0, 2000), _run(110, 6.0, 2000)]
    assert cb.summarize(runs)["target"]["result"] == "INCONCLUSIVE"


def test_gzip1_share() -> None:
    levels = [{"codec": "gzip 1", "encoding": "base64", "mb_s": 20.0},
              {"codec": "gzip 1", "encoding": "float", "mb_s": 50.0}]
    load = {"passes": {"base64 identity": {"wire_bytes_per_sentence": 2000,
                                           "server_cpu_s_per_1k": 5.0},
                       "float identity": {"wire_bytes_per_sentence": 5000,
                                          "server_cpu_s_per_1k": 5.0}}}
    share = cb.gzip1_share(levels, load)
    assert share["base64"] == pytest.approx(2000 / 20e6 / 5e-3)
    assert share["float"] == pytest.approx(5000 / 50e6 / 5e-3)


def test_the_gzip_client_asks_for_gzip_only_when_told() -> None:
    url = "http://127.0.0.1:1/api/v1"
    assert b"Accept-Encoding: gzip\r\n" in cb.GzipConnection(url, "k", gzip=True).head
    assert b"Accept-Encoding" not in cb.GzipConnection(url, "k", gzip=False).head


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert cb.main(["--quick", "--level-runs", "1", "--sentences", "40", "--json",
                    str(out)]) == 0
    results = json.loads(out.read_text())
    kept = {(r["codec"], r["encoding"]): r["kept"] for r in results["levels"]}
    assert kept[("gzip 1", "float")] < 0.6 < kept[("gzip 1", "base64")] < 0.9
    passes = results["load"]["passes"]
    assert set(passes) == {"base64 identity", "base64 gzip", "float identity", "float gzip"}
    assert results["load"]["ratios"]["base64"]["wire"] == 1.0
    assert results["load"]["ratios"]["float"]["wire"] < 0.6
    printed = capsys.readouterr().out
    assert "| gzip 1 | float |" in printed and "target: base64 c=32" in printed
