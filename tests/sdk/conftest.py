from __future__ import annotations

from collections.abc import Iterator

import pytest

from embedrouter.sdk import BackoffStrategy, EmbedRouter, RetryConfig
from tests.sdk.scripted_server import ScriptedServer

# Short intervals so retry tests take a fraction of a second; jitter 0 for exact timing.
FAST_RETRY = RetryConfig("backoff", BackoffStrategy(50, 200, 2.0, 5_000, jitter_ms=0), True)


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.close()


@pytest.fixture
def sdk(scripted: ScriptedServer) -> Iterator[EmbedRouter]:
    scripted.script()
    with EmbedRouter(api_key="sk-test", server_url=scripted.base_url,
                     retry_config=RetryConfig(strategy="none"), timeout_ms=5_000) as client:
        yield client
