"""Issue 8 item 9: requests whose client went away are counted in /metrics as status 499."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.adversarial.conftest import LONG, MAX_INPUTS, MODEL, request_count
from tests.support.live import LiveServer

pytestmark = pytest.mark.adversarial


def disconnected(server: LiveServer) -> float:
    """embedrouter_disconnected_requests_total for /embeddings (its own counter, beside 499)."""
    text = httpx.get(f"{server.root}/metrics", timeout=30).text
    key = 'embedrouter_disconnected_requests_total{route="/api/v1/embeddings"} '
    return next((float(x.removeprefix(key)) for x in text.splitlines() if x.startswith(key)), 0)


def _poll(check, seconds: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    for _ in range(300):  # bounded in count and by the deadline
        if check():
            return True
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return False


async def test_disconnect_while_queued_counts_as_499(small_queue_server: LiveServer) -> None:
    server = small_queue_server
    before = request_count(server, 499)
    # no-store: with the vector cache the repeated inputs would be computed once and answered
    # at once, leaving nothing queued to abandon.
    headers = {"authorization": f"Bearer {server.api_key}", "cache-control": "no-store"}
    body = {"model": MODEL, "input": [LONG] * MAX_INPUTS}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=120) as c:
        # Six requests of long inputs keep the worker busy for a while; each is abandoned.
        tasks = [asyncio.ensure_future(c.post("/embeddings", json=body)) for _ in range(6)]
        _, pending = await asyncio.wait(tasks, timeout=0.3)
        for t in pending:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    abandoned = len(pending)
    assert abandoned >= 1, "every request finished within 0.3 s; nothing was abandoned"
    assert _poll(lambda: request_count(server, 499) >= before + abandoned), (
        before, abandoned, request_count(server, 499))


async def test_disconnect_before_the_body_is_complete_counts_as_499(
        small_queue_server: LiveServer) -> None:
    server = small_queue_server
    host, port = server.base_url.removeprefix("http://").split("/", 1)[0].split(":")
    before_499, before_400 = request_count(server, 499), request_count(server, 400)
    before_disconnected = disconnected(server)
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write((f"POST /api/v1/embeddings HTTP/1.1\r\nHost: {host}\r\n"
                  f"Authorization: Bearer {server.api_key}\r\n"
                  "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                  '{"model": "').encode())
    await writer.drain()
    await asyncio.sleep(0.3)  # the app is now waiting for the rest of the body
    writer.close()
    await writer.wait_closed()
    assert _poll(lambda: request_count(server, 499) >= before_499 + 1)
    assert disconnected(server) >= before_disconnected + 1
    # A client that went away is not a bad request.
    assert request_count(server, 400) == before_400
