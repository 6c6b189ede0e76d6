from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from embedrouter.providers.http import HttpClient
from tests.support.fake_upstreams import FakeUpstreams


@pytest.fixture(scope="session")
def _fake_server() -> Iterator[FakeUpstreams]:
    server = FakeUpstreams().start()
    yield server
    server.stop()


@pytest.fixture
def fake(_fake_server: FakeUpstreams) -> Iterator[FakeUpstreams]:
    """The shared fake upstreams, with no script and no recorded requests."""
    _fake_server.reset()
    yield _fake_server
    _fake_server.reset()


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    """The real pooled client, created inside the test's event loop."""
    client = HttpClient()
    yield client
    await client.close()
