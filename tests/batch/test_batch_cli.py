"""`embedrouter batch` (issue 13 part 3): files in, parquet out, dedupe, resume, dry run.

Run as a user would (a subprocess of the real CLI) against the router in-process, a live
`embedrouter serve`, and an OpenAI-compatible fake upstream that records what it receives.
"""

from __future__ import annotations

import base64
import csv
import json
import signal
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.batch.conftest import MODEL, batch_cmd, corpus, run_batch
from tests.support.fake_formats import DEFAULT_DIM, vector_for
from tests.support.fake_upstreams import API_KEY, Step


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def server_vectors(server, texts: list[str]) -> np.ndarray:  # type: ignore[no-untyped-def]
    r = httpx.post(f"{server.base_url}/embeddings", timeout=60,
                   headers={"authorization": f"Bearer {server.api_key}"},
                   json={"model": MODEL, "input": texts, "encoding_format": "base64"})
    r.raise_for_status()
    data = sorted(r.json()["data"], key=lambda d: d["index"])
    return np.stack([np.frombuffer(base64.b64decode(d["embedding"]), "<f4") for d in data])


def summary(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def vectors(table: pa.Table) -> np.ndarray:
    col = table.column("embedding").combine_chunks()
    return col.values.to_numpy().reshape(len(table), col.type.list_size)


def test_in_process_dedupes_keeps_ids_and_matches_the_server(tmp_path, batch_env, live_server):
    texts = corpus(60)
    # Every text twice, the second copies shuffled in: 120 rows, 60 unique texts.
    order = list(range(60)) + [int(i) for i in np.random.default_rng(7).permutation(60)]
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": f"row-{n}", "lang": "en",
                                               "text": texts[i]} for n, i in enumerate(order)])
    out = tmp_path / "out.parquet"
    proc = run_batch(src, "--column", "text", "--out", out, "--model", MODEL,
                     "--batch-size", "16", "--json", env=batch_env)
    report = summary(proc)
    assert report["rows"] == 120 and report["unique_texts"] == 60
    assert report["embedded_texts"] == 60  # each distinct text embedded once
    table = pq.read_table(out)
    assert table.column_names == ["id", "lang", "embedding"]
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 384)
    assert table.column("id").to_pylist() == [f"row-{n}" for n in range(120)]
    got = vectors(table)
    expected = server_vectors(live_server, texts)
    np.testing.assert_allclose(got, expected[order], atol=2e-4)
    np.testing.assert_array_equal(got[:60][order[60:]], got[60:])  # duplicates: same vector
    assert not (tmp_path / "out.parquet.partial").exists()
    assert pq.read_schema(out).metadata[b"embedrouter.model"] == MODEL.encode()


def test_server_url_with_csv_keeps_string_ids_and_shows_progress(tmp_path, batch_env,
                                                                 live_server):
    texts = corpus(40)
    src = tmp_path / "in.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["doc_id", "body"])
        w.writerows([f"{i:05d}", t] for i, t in enumerate(texts))
    out = tmp_path / "sub" / "out.parquet"
    proc = run_batch(src, "--column", "body", "--out", out, "--model", MODEL, "--url",
                     live_server.base_url, "--key", live_server.api_key, "--batch-size", "8",
                     "--concurrency", "3", "--json", env=batch_env)
    report = summary(proc)
    assert "text/s" in proc.stderr and "40/40" in proc.stderr  # tqdm: count, rate
    assert "<" in proc.stderr  # tqdm's [elapsed<remaining]
    table = pq.read_table(out)
    assert table.column("doc_id").to_pylist() == [f"{i:05d}" for i in range(40)]
    np.testing.assert_allclose(vectors(table), server_vectors(live_server, texts), atol=2e-4)
    usage = httpx.post(f"{live_server.base_url}/embeddings", timeout=60,
                       headers={"authorization": f"Bearer {live_server.api_key}"},
                       json={"model": MODEL, "input": texts}).json()["usage"]
    assert report["tokens"] == usage["prompt_tokens"]


def test_openai_compatible_url_with_parquet_input(tmp_path, batch_env, fake):
    texts = [f"sentence number {i}" for i in range(25)]
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"k": list(range(25)), "other": ["x"] * 25, "t": texts}), src)
    out = tmp_path / "out.parquet"
    proc = run_batch(src, "--column", "t", "--out", out, "--model", "m-1", "--url",
                     fake.base_url("openai"), "--key", API_KEY, "--id-column", "k",
                     "--keep-text", "--batch-size", "10", "--no-progress", "--json",
                     env=batch_env)
    summary(proc)
    assert proc.stderr == ""  # --no-progress: nothing on stderr
    table = pq.read_table(out)
    assert table.column_names == ["k", "t", "embedding"]
    assert table.column("k").to_pylist() == list(range(25))
    expected = np.stack([vector_for(t, DEFAULT_DIM) for t in texts])
    np.testing.assert_allclose(vectors(table), expected, rtol=1e-6)
    sent = [s.json for s in fake.seen if s.path == "/v1/embeddings"]
    # Chunks of 10, 10 and 5, each text sent once; they go out concurrently, so the server may
    # see them in any order (the output's order is checked above).
    assert sorted(len(b["input"]) for b in sent) == [5, 10, 10]
    assert sorted(t for b in sent for t in b["input"]) == sorted(texts)
    assert all(b["encoding_format"] == "base64" and b["model"] == "m-1" for b in sent)


def _chunk_files(out: Path) -> list[Path]:
    return sorted(out.with_name(out.name + ".partial").glob("chunk-*.npz"))


def test_ctrl_c_then_resume_redoes_no_finished_chunk(tmp_path, batch_env, fake):
    texts = [f"text {i}" for i in range(100)]
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in
                                              enumerate(texts)])
    out = tmp_path / "out.parquet"
    args = [src, "--column", "text", "--out", out, "--model", "m", "--url",
            fake.base_url("openai"), "--key", API_KEY, "--batch-size", "10", "--concurrency", "1"]
    fake.script(*[Step.delay(0.4)] * 10)  # slow enough to interrupt half-way
    proc = subprocess.Popen(batch_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=batch_env)
    deadline = time.monotonic() + 60
    while len(_chunk_files(out)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err
    assert not out.exists()
    saved = {int(p.name[6:13]) for p in _chunk_files(out)}
    assert 3 <= len(saved) < 10

    fake.reset()
    dry = run_batch(*args, "--dry-run", "--json", env=batch_env)
    plan = summary(dry)
    assert plan["resumable_chunks"] == len(saved)
    assert plan["texts_to_embed"] == 100 - 10 * len(saved)
    assert plan["tokens_exact"] is False and plan["price_per_million"] is None
    assert not [s for s in fake.seen if s.path == "/v1/embeddings"]  # a dry run sends nothing

    report = summary(run_batch(*args, "--json", env=batch_env))
    assert report["resumed_chunks"] == len(saved)
    assert report["embedded_texts"] == 100 - 10 * len(saved)
    resent = {t for s in fake.seen if s.path == "/v1/embeddings" for t in s.json["input"]}
    finished = {texts[10 * k + j] for k in saved for j in range(10)}
    assert not resent & finished  # nothing finished before Ctrl-C was sent again
    assert resent | finished == set(texts)
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == list(range(100))
    expected = np.stack([vector_for(t, DEFAULT_DIM) for t in texts])
    np.testing.assert_allclose(vectors(table), expected, rtol=1e-6)


def test_a_refused_request_stops_the_job_and_keeps_what_finished(tmp_path, batch_env, fake):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": f"t{i}"} for i in range(30)])
    out = tmp_path / "out.parquet"
    fake.script(Step.ok(), Step.error(400))
    proc = run_batch(src, "--column", "text", "--out", out, "--model", "m", "--url",
                     fake.base_url("openai"), "--key", API_KEY, "--batch-size", "10",
                     "--concurrency", "1", "--no-progress", env=batch_env)
    assert proc.returncode == 1
    assert "the router answered 400" in proc.stderr and "Traceback" not in proc.stderr
    assert [p.name for p in _chunk_files(out)] == ["chunk-0000000.npz"]
    wrong_key = run_batch(src, "--column", "text", "--out", tmp_path / "o2.parquet",
                          "--model", "m", "--url",
                          fake.base_url("openai"), "--key", "nope", "--no-progress",
                          env=batch_env)
    assert wrong_key.returncode == 1 and "401" in wrong_key.stderr


def test_dry_run_counts_exact_tokens_and_cost_in_process(tmp_path, batch_env):
    config = tmp_path / "embedrouter.toml"
    config.write_text('[default_model]\nprice_per_million = "0.02"\n')
    texts = corpus(30)
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in texts + texts[:5]])
    out = tmp_path / "out.parquet"
    args = [src, "--column", "text", "--out", out, "--model", MODEL, "--config", config,
            "--json"]
    plan = summary(run_batch(*args, "--dry-run", env=batch_env))
    assert not out.exists() and not out.with_name("out.parquet.partial").exists()
    assert plan["rows"] == 35 and plan["unique_texts"] == 30 and plan["duplicates"] == 5
    assert plan["tokens_exact"] is True
    report = summary(run_batch(*args, "--no-progress", env=batch_env))
    assert plan["tokens"] == report["tokens"]
    assert Decimal(plan["cost"]) == Decimal(report["cost"]) == \
        Decimal("0.02") * report["tokens"] / 1_000_000


def test_a_different_jobs_checkpoint_is_refused_unless_restart(tmp_path, batch_env, fake):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": f"t{i}"} for i in range(5)])
    out = tmp_path / "out.parquet"
    partial = tmp_path / "out.parquet.partial"
    partial.mkdir()
    (partial / "job.json").write_text(json.dumps({"version": 1, "fingerprint": "0" * 64}))
    args = [src, "--column", "text", "--out", out, "--model", "m", "--url",
            fake.base_url("openai"), "--key", API_KEY, "--no-progress"]
    proc = run_batch(*args, env=batch_env)
    assert proc.returncode == 1 and "different job" in proc.stderr
    assert run_batch(*args, "--restart", env=batch_env).returncode == 0
    assert pq.read_table(out).num_rows == 5 and not partial.exists()


@pytest.mark.parametrize(("rows", "extra", "message"), [
    ([{"text": "a"}], ["--column", "body"], "no column 'body'; the columns are text"),
    ([{"text": "a"}, {"text": ""}], ["--column", "text"], "row 1 ('text') is empty"),
    ([{"text": "a"}, {"other": 1}], ["--column", "text"], "row 1 ('text') has no value"),
    ([{"text": 5}], ["--column", "text"], "holds int64, not text"),
    ([{"text": "a", "embedding": 1}], ["--column", "text"], "would be overwritten"),
])
def test_bad_input_is_one_clear_line(tmp_path, batch_env, fake, rows, extra, message):
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    proc = run_batch(src, *extra, "--out", tmp_path / "o.parquet", "--model", "m", "--url",
                     fake.base_url("openai"), env=batch_env)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not fake.seen


def test_unknown_formats_are_refused(tmp_path, batch_env):
    (tmp_path / "in.txt").write_text("x\n")
    proc = run_batch(tmp_path / "in.txt", "--column", "t", "--out", tmp_path / "o.parquet",
                     "--model", "m", "--url", "http://127.0.0.1:9/api/v1", env=batch_env)
    assert proc.returncode == 1 and "unknown input format '.txt'" in proc.stderr
    write_jsonl(tmp_path / "in.jsonl", [{"t": "x"}])
    proc = run_batch(tmp_path / "in.jsonl", "--column", "t", "--out", tmp_path / "o.csv",
                     "--model", "m", "--url", "http://127.0.0.1:9/api/v1", env=batch_env)
    assert proc.returncode == 1 and "name it *.parquet" in proc.stderr
