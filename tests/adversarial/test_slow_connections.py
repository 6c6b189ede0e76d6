"""Issue 8 item 3: idle, slow-header and slow-body connections are cut; a connection cap
refuses quickly; a descriptor limit cannot be exhausted by idle sockets."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest

from tests.adversarial.conftest import (
    BODY_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    KEEPALIVE_TIMEOUT_S,
    SLACK_S,
    address,
    connect,
    parse_response,
    read_one_response,
    read_response,
)
from tests.support.live import LiveServer

pytestmark = pytest.mark.adversarial

HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _closed_within(sock: socket.socket, seconds: float) -> tuple[float, bytes]:
    """Wait (bounded) for the server to close; returns how long it took and what it sent."""
    started = time.monotonic()
    raw = read_response(sock, deadline_s=seconds)
    return time.monotonic() - started, raw


def _assert_envelope(raw: bytes, status: int) -> dict:
    got, headers, body = parse_response(raw)
    assert got == status, raw
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    error = json.loads(body)["error"]
    assert error["code"] == status and error["message"]
    return error


def test_a_connection_that_sends_nothing_is_cut(timed_server: LiveServer) -> None:
    sock = connect(timed_server)
    took, raw = _closed_within(sock, HEADER_TIMEOUT_S + SLACK_S + 3)
    assert raw == b""  # nothing of a request arrived, so nothing to answer: a plain close
    assert HEADER_TIMEOUT_S - 0.3 <= took <= HEADER_TIMEOUT_S + SLACK_S
    sock.close()


def test_partial_headers_get_408_after_the_header_timeout(timed_server: LiveServer) -> None:
    sock = connect(timed_server)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127")
    took, raw = _closed_within(sock, HEADER_TIMEOUT_S + SLACK_S + 3)
    assert took <= HEADER_TIMEOUT_S + SLACK_S
    assert "header" in _assert_envelope(raw, 408)["message"]
    sock.close()


def test_keep_alive_connection_is_cut_when_idle(timed_server: LiveServer) -> None:
    sock = connect(timed_server)
    sock.sendall(HEALTH)
    assert read_one_response(sock).startswith(b"HTTP/1.1 200")
    took, raw = _closed_within(sock, KEEPALIVE_TIMEOUT_S + SLACK_S + 3)
    assert raw == b""
    assert took <= KEEPALIVE_TIMEOUT_S + SLACK_S
    sock.close()


def test_slow_headers_on_a_keep_alive_connection_are_cut(timed_server: LiveServer) -> None:
    """uvicorn cancels its keep-alive timer on every byte: one a second kept it open forever."""
    sock = connect(timed_server)
    sock.sendall(HEALTH)
    assert read_one_response(sock).startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    closed = False
    for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 40:
        if time.monotonic() - started > HEADER_TIMEOUT_S + SLACK_S:
            break
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            closed = True
            break
        time.sleep(0.25)
    raw = read_response(sock, deadline_s=1.0)
    assert closed or raw, "the slow header was never cut"
    if raw:
        _assert_envelope(raw, 408)
    assert time.monotonic() - started <= HEADER_TIMEOUT_S + SLACK_S + 1.0
    sock.close()


def test_slow_body_gets_408_after_the_body_timeout(timed_server: LiveServer) -> None:
    sock = connect(timed_server)
    head = (b"POST /api/v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer " + timed_server.api_key.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n")
    sock.sendall(head)
    started = time.monotonic()
    sock.settimeout(0.05)
    raw = b""
    # 10 bytes every 0.1 s (100 B/s) for at most the timeout plus slack: 40 rounds at most.
    for _ in range(int((BODY_TIMEOUT_S + SLACK_S) / 0.1)):
        try:
            sock.sendall(b"x" * 10)
        except OSError:
            break
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            chunk = None
        if chunk is not None:
            raw = chunk
            break
        time.sleep(0.05)
    raw += read_response(sock, deadline_s=1.0)
    assert raw, "the slow body was never cut"
    assert time.monotonic() - started <= BODY_TIMEOUT_S + SLACK_S + 1.0
    assert "body" in _assert_envelope(raw, 408)["message"]
    sock.close()


async def _slowloris(server: LiveServer, n: int, seconds: float) -> list[float | None]:
    """n connections that each send a header byte every 0.5 s; returns, per connection, when
    the server cut it (None: still open after `seconds`)."""
    host, port = address(server)
    started = time.monotonic()

    async def one() -> float | None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            payload = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
            for byte in payload[: int(seconds / 0.5)]:
                writer.write(bytes([byte]))
                try:
                    await writer.drain()
                    got = await asyncio.wait_for(reader.read(65536), timeout=0.5)
                except TimeoutError:
                    continue
                except OSError:
                    return time.monotonic() - started
                # Data (the 408) or EOF (b""): either way the server cut this connection.
                del got
                return time.monotonic() - started
            return None
        finally:
            writer.close()

    return await asyncio.gather(*(one() for _ in range(n)))


async def test_slowloris_is_cut_and_normal_clients_are_served_meanwhile(
        timed_server: LiveServer) -> None:
    duration = HEADER_TIMEOUT_S + SLACK_S + 2
    attack = asyncio.ensure_future(_slowloris(timed_server, 150, duration))
    latencies = []
    async with httpx.AsyncClient(base_url=timed_server.base_url, timeout=5,
                                 headers={"authorization": f"Bearer {timed_server.api_key}"}
                                 ) as client:
        await asyncio.sleep(0.5)
        for _ in range(10):  # bounded: 10 requests spread over the attack
            t = time.monotonic()
            r = await client.post("/embeddings", json={
                "model": "sentence-transformers/all-minilm-l6-v2", "input": "still served"})
            latencies.append(time.monotonic() - t)
            assert r.status_code == 200, r.text
            await asyncio.sleep(0.2)
    cut_at = await asyncio.wait_for(attack, timeout=duration + 10)
    assert all(t is not None for t in cut_at), f"{cut_at.count(None)} slowloris sockets survived"
    assert max(t for t in cut_at if t is not None) <= HEADER_TIMEOUT_S + SLACK_S
    assert max(latencies) < 2.0


def test_over_the_cap_new_connections_are_refused_quickly_and_held_ones_work(
        capped_server: LiveServer) -> None:
    # Eight connections mid-request (not idle, so not evictable) fill the cap.
    held = [connect(capped_server) for _ in range(8)]
    for sock in held:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
    time.sleep(0.3)
    refused = []
    for _ in range(3):
        sock = connect(capped_server)
        sock.sendall(HEALTH)
        t = time.monotonic()
        raw = read_response(sock, deadline_s=3.0)
        refused.append(time.monotonic() - t)
        error = _assert_envelope(raw, 503)
        assert "connections" in error["message"]
        assert parse_response(raw)[1]["retry-after"] == "1"
        sock.close()
    assert max(refused) < 1.0
    for sock in held:  # the held connections finish their requests normally
        sock.sendall(b"Host: 127.0.0.1\r\n\r\n")
        assert read_one_response(sock).startswith(b"HTTP/1.1 200")
    # Now idle, they give way: a newcomer evicts the longest-idle one and is served.
    with httpx.Client(timeout=5) as client:
        assert client.get(f"{capped_server.root}/health").status_code == 200
    for sock in held:
        sock.close()


def test_idle_sockets_cannot_exhaust_a_200_descriptor_limit(
        fd_limited_server: LiveServer) -> None:
    idle = []
    try:
        for _ in range(190):
            idle.append(connect(fd_limited_server))
        time.sleep(0.5)
        with httpx.Client(base_url=fd_limited_server.base_url, timeout=3,
                          headers={"authorization": f"Bearer {fd_limited_server.api_key}"}
                          ) as client:
            for _ in range(3):
                r = client.post("/embeddings", json={
                    "model": "sentence-transformers/all-minilm-l6-v2", "input": "hello"})
                assert r.status_code == 200, r.text
    finally:
        for sock in idle:
            sock.close()
    assert fd_limited_server.process.poll() is None
    assert any("max_connections lowered" in line for line in fd_limited_server.output)
