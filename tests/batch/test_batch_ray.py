"""`embedrouter batch --ray ADDRESS` (issue 13 part 3) on a local Ray cluster this module
starts: the same output and the same resume as the local runner."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.batch.conftest import MODEL, corpus, run_batch
from tests.batch.ray_cluster import RAY_VENV, local_cluster
from tests.batch.test_batch_cli import (
    _chunk_files,
    server_vectors,
    summary,
    vectors,
    write_jsonl,
)
from tests.support.fake_formats import DEFAULT_DIM, vector_for
from tests.support.fake_upstreams import API_KEY, Step

RAY_PYTHON = RAY_VENV / "bin" / "python"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not RAY_PYTHON.exists(),
                       reason=f"{RAY_VENV} missing: scripts/test.sh builds it (pip install "
                              "-e '.[ray]')"),
]


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    with local_cluster(cpus=2) as address:
        yield address


def ray_batch(*args, env):  # type: ignore[no-untyped-def]
    return [str(RAY_PYTHON), "-m", "embedrouter", "batch", *map(str, args)], env


def run_ray(*args, env, timeout: float = 300):  # type: ignore[no-untyped-def]
    cmd, env = ray_batch(*args, env=env)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def test_ray_run_is_interruptible_resumes_and_matches_the_local_run(tmp_path, batch_env, fake,
                                                                    ray_address):
    texts = [f"ray text {i}" for i in range(60)]
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in
                                              enumerate(texts + texts[:10])])
    out = tmp_path / "ray.parquet"
    args = [src, "--column", "text", "--out", out, "--model", "m", "--url",
            fake.base_url("openai"), "--key", API_KEY, "--batch-size", "10",
            "--concurrency", "2"]
    fake.script(*[Step.delay(1.0)] * 6)
    cmd, env = ray_batch(*args, "--ray", ray_address, env=batch_env)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    deadline = time.monotonic() + 180
    while len(_chunk_files(out)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    saved = {int(p.name[6:13]) for p in _chunk_files(out)}
    assert 2 <= len(saved) < 6

    fake.reset()
    report = summary(run_ray(*args, "--ray", ray_address, "--json", env=batch_env))
    assert report["resumed_chunks"] == len(saved) and report["ray"] == ray_address
    resent = {t for s in fake.seen if s.path == "/v1/embeddings" for t in s.json["input"]}
    finished = {texts[10 * k + j] for k in saved for j in range(10)}
    assert not resent & finished
    assert resent | finished == set(texts)

    local = tmp_path / "local.parquet"
    summary(run_batch(*[local if a == out else a for a in args], "--json", env=batch_env))
    ray_table, local_table = pq.read_table(out), pq.read_table(local)
    assert ray_table.equals(local_table)  # same columns, types, rows and vectors
    assert ray_table.column("id").to_pylist() == list(range(70))
    expected = np.stack([vector_for(t, DEFAULT_DIM) for t in texts + texts[:10]])
    np.testing.assert_allclose(vectors(ray_table), expected, rtol=1e-6)


def test_ray_actors_call_a_live_router(tmp_path, batch_env, live_server, ray_address):
    texts = corpus(50)
    src = write_jsonl(tmp_path / "in.jsonl", [{"n": i, "text": t} for i, t in enumerate(texts)])
    out = tmp_path / "out.parquet"
    proc = run_ray(src, "--column", "text", "--out", out, "--model", MODEL, "--url",
                   live_server.base_url, "--key", live_server.api_key, "--batch-size", "16",
                   "--concurrency", "2", "--ray", ray_address, "--json", env=batch_env)
    report = summary(proc)
    assert report["embedded_texts"] == 50
    np.testing.assert_allclose(vectors(pq.read_table(out)), server_vectors(live_server, texts),
                               atol=2e-4)
    assert json.loads(json.dumps(report))["chunks"] == 4
