"""A server with a small queue, so the adversarial tests can fill it with little traffic."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.live import LiveServer, start_server

MODEL = "sentence-transformers/all-minilm-l6-v2"
# 254 words + [CLS]/[SEP] = 256 tokens, the model's whole context: the slowest input there is.
LONG = " ".join(["hello"] * 254)
MAX_INPUTS = 8
MAX_QUEUE_ITEMS = 256

CONFIG = f"""
[server]
max_inputs = {MAX_INPUTS}

[engine]
max_queue_items = {MAX_QUEUE_ITEMS}
"""


@pytest.fixture(scope="session")
def small_queue_server(tmp_path_factory: pytest.TempPathFactory, onnx_cache_dir: Path
                       ) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("small-queue")
    config = data_dir / "embedrouter.toml"
    config.write_text(CONFIG)
    server = start_server(data_dir, cache_dir=onnx_cache_dir, config=config)
    yield server
    server.stop()


def request_count(server: LiveServer, status: int,
                  route: str = "/api/v1/embeddings") -> int:
    text = httpx.get(f"{server.root}/metrics", timeout=30).text
    m = re.search(rf'embedrouter_requests_total{{route="{re.escape(route)}",'
                  rf'status="{status}"}} (\d+)', text)
    return int(m.group(1)) if m else 0


def batcher_gauge(server: LiveServer, name: str) -> float:
    text = httpx.get(f"{server.root}/metrics", timeout=30).text
    m = re.search(rf'embedrouter_batcher_{name}{{model="{re.escape(MODEL)}"}} (\S+)', text)
    assert m, f"no {name} gauge in /metrics"
    return float(m.group(1))
