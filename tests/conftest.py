from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.live import LiveServer, start_server
from tests.support.tiktoken_offline import fill_cache


@pytest.fixture(scope="session", autouse=True)
def _offline_tiktoken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """tiktoken (used by tests and by the clients they drive) reads our shipped ranks, offline."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TIKTOKEN_CACHE_DIR", str(fill_cache(tmp_path_factory.mktemp("tiktoken"))))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def cl100k():  # type: ignore[no-untyped-def]
    import tiktoken

    return tiktoken.get_encoding("cl100k_base")


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


CONFIG = """
[server]
max_inputs = 8
max_body_bytes = 4096

[engine]
max_queue_items = 24

[default_model]
price_per_million = "0.02"
token_ids = "o200k"

[[models]]
slug = "acme/minilm-mrl"
path = "{model_dir}"
name = "MiniLM declared Matryoshka, with e5-style prefixes"
matryoshka = true
price_per_million = 0.1
input_prefixes = {{ query = "query: ", passage = "passage: " }}
token_ids = "native"

[[models]]
slug = "acme/chat-model"
output_modalities = ["text"]
"""


@pytest.fixture(scope="session")
def configured_server(tmp_path_factory: pytest.TempPathFactory, onnx_cache_dir: Path
                      ) -> Iterator[LiveServer]:
    """A server with small limits, a price, a second (Matryoshka) model and a chat model."""
    from embedrouter.engine import default_model_dir

    data_dir = tmp_path_factory.mktemp("configured")
    config = data_dir / "embedrouter.toml"
    config.write_text(CONFIG.format(model_dir=default_model_dir()))
    server = start_server(data_dir, cache_dir=onnx_cache_dir, config=config)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def configured(configured_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=configured_server.base_url, timeout=60,
                      headers={"authorization": f"Bearer {configured_server.api_key}"}) as c:
        yield c
