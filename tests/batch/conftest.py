from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_upstreams import FakeUpstreams

MODEL = "sentence-transformers/all-minilm-l6-v2"
CORPUS = Path(__file__).resolve().parents[2] / "bench" / "corpus.jsonl"


def corpus(n: int) -> list[str]:
    """The first ``n`` distinct sentences of the benchmark corpus (which repeats a few)."""
    with CORPUS.open() as f:
        texts = dict.fromkeys(json.loads(line)["text"] for line in f)
    return list(texts)[:n]


def batch_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "embedrouter", "batch", *map(str, args)]


def run_batch(*args: str | Path, env: dict[str, str], timeout: float = 300
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(batch_cmd(*args), capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.fixture
def batch_env(onnx_cache_dir: Path, tmp_path: Path) -> dict[str, str]:
    """The child's environment: the shared ONNX cache, a fresh data dir, no stray settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDROUTER_",
                                                                      "OPENROUTER_"))}
    env["EMBEDROUTER_CACHE_DIR"] = str(onnx_cache_dir)
    env["EMBEDROUTER_DATA_DIR"] = str(tmp_path / "data")
    return env


@pytest.fixture
def fake() -> Iterator[FakeUpstreams]:
    up = FakeUpstreams().start()
    yield up
    up.stop()
