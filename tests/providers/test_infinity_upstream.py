"""A real third-party embeddings server as an upstream: Infinity (`infinity-emb` from PyPI)
serving the same all-MiniLM-L6-v2 directory on its OpenAI route, behind embedrouter's `openai`
adapter. Its vectors must match our local engine's at cosine >= 0.9999.

Infinity needs torch, so it lives in its own venv (.venv-infinity, built by scripts/test.sh).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.api.conftest import DEFAULT_MODEL, golden
from tests.support.live import LiveServer, start_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
INFINITY = ROOT / ".venv-infinity" / "bin" / "infinity_emb"
REMOTE = "infinity/all-minilm-l6-v2"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def infinity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not INFINITY.exists():
        pytest.fail(f"{INFINITY} is missing: scripts/test.sh builds .venv-infinity")
    from embedrouter.engine import default_model_dir

    port = _free_port()
    log = tmp_path_factory.mktemp("infinity") / "infinity.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    with log.open("w") as out:
        proc = subprocess.Popen([str(INFINITY), "v2", "--model-id", str(default_model_dir()),
                                 "--served-model-name", "minilm", "--engine", "torch",
                                 "--device", "cpu", "--batch-size", "32", "--host", "127.0.0.1",
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail("infinity exited:\n" + log.read_text()[-3000:])
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("infinity did not come up:\n" + log.read_text()[-3000:])
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory, onnx_cache_dir: Path,
           infinity: str) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("routed")
    config = data / "embedrouter.toml"
    config.write_text(f"""
[[providers]]
name = "infinity"
kind = "openai"
base_url = "{infinity}"
display_name = "Infinity"
timeout_s = 60

[[models]]
slug = "{REMOTE}"
dimensions = 384
context_length = 256
  [[models.endpoints]]
  provider = "infinity"
  upstream_model = "minilm"
  price_per_million = "0.01"
  max_inputs = 7
""")
    server = start_server(data, cache_dir=onnx_cache_dir, config=config)
    yield server
    server.stop()


def test_infinity_vectors_match_the_local_engine(routed: LiveServer) -> None:
    texts = [r["input"] for r in golden()[:20]]
    with httpx.Client(base_url=routed.base_url, timeout=120,
                      headers={"authorization": f"Bearer {routed.api_key}"}) as client:
        remote = client.post("/embeddings", json={"model": REMOTE, "input": texts})
        local = client.post("/embeddings", json={"model": DEFAULT_MODEL, "input": texts})
        b64 = client.post("/embeddings", json={"model": REMOTE, "input": texts,
                                               "encoding_format": "base64"})
        endpoints = client.get(f"/models/{REMOTE}/endpoints").json()["data"]["endpoints"]
    assert remote.status_code == 200, remote.text
    body = remote.json()
    assert body["provider"] == "Infinity" and body["model"] == "minilm"
    assert [d["index"] for d in body["data"]] == list(range(20))  # 20 inputs, 3 parts of <= 7
    got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    want = np.array([d["embedding"] for d in local.json()["data"]], dtype=np.float32)
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= 0.9999, cos.min()
    assert b64.status_code == 200 and isinstance(b64.json()["data"][0]["embedding"], str)
    assert body["usage"]["prompt_tokens"] > 0
    assert [e["provider_name"] for e in endpoints] == ["Infinity"]
    assert endpoints[0]["max_inputs_per_call"] == 7
