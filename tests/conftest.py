from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live import LiveServer, start_server


@pytest.fixture(scope="session")
def onnx_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ONNX build per test session, shared by every server and engine the tests start."""
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, onnx_cache_dir: Path
                ) -> Iterator[LiveServer]:
    """A real `embedrouter serve` process on a free port, with its bootstrap keys."""
    server = start_server(tmp_path_factory.mktemp("live-data"), cache_dir=onnx_cache_dir)
    yield server
    server.stop()
