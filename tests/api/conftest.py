from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.live import LiveServer

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden-all-minilm-l6-v2.jsonl"
DEFAULT_MODEL = "sentence-transformers/all-minilm-l6-v2"


def golden() -> list[dict]:
    return [json.loads(line) for line in GOLDEN.read_text().splitlines() if line.strip()]


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "embedrouter", *args, "--data-dir",
                           str(data_dir)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.base_url, timeout=60,
                      headers={"authorization": f"Bearer {live_server.api_key}"}) as c:
        yield c
