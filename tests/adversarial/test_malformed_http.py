"""Issue 8 item 4: malformed HTTP gets the JSON error envelope, not a plain-text 400."""

from __future__ import annotations

import json

import pytest

from tests.adversarial.conftest import connect, parse_response, read_response
from tests.support.live import LiveServer

pytestmark = pytest.mark.adversarial

# A TLS 1.2 ClientHello record header and the start of its handshake, as `curl https://` sends.
TLS_HELLO = bytes.fromhex("16030100c4010000c00303") + bytes(32) + b"\x00\x00\x02\x13\x01\x01\x00"

CASES = {
    "unknown method": (b"BREW /health HTTP/1.1\r\nHost: x\r\n\r\n", 400, "method"),
    "HTTP/2 preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "HTTP/2"),
    "TLS on the plain port": (TLS_HELLO, 400, "TLS"),
    "conflicting Content-Length": (
        b"POST /api/v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        b"Content-Length: 4\r\n\r\nabcd", 400, "Content-Length"),
    "negative Content-Length": (
        b"POST /api/v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400,
        "Content-Length"),
    "NUL in a header": (b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400,
                        "header"),
    "URL over 64 KB": (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "URL"),
    "headers over 64 KB": (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000
                           + b"\r\n\r\n", 431, "headers"),
    "bad chunk size": (b"POST /api/v1/embeddings HTTP/1.1\r\nHost: x\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "Malformed"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_request_gets_the_json_envelope(live_server: LiveServer, name: str) -> None:
    payload, status, fragment = CASES[name]
    sock = connect(live_server)
    try:
        sock.sendall(payload)
        raw = read_response(sock, deadline_s=5.0)
    finally:
        sock.close()
    got, headers, body = parse_response(raw)
    assert got == status, raw[:300]
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert error["code"] == status
    assert fragment in error["message"]
    assert "Traceback" not in error["message"]


def test_server_still_serves_after_malformed_requests(live_server: LiveServer) -> None:
    sock = connect(live_server)
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, _, body = parse_response(read_response(sock))
    finally:
        sock.close()
    assert status == 200 and json.loads(body) == {"status": "ok"}


def test_an_upgrade_request_is_served_as_http1_and_closed(live_server: LiveServer) -> None:
    """h2c and websocket upgrades are refused by serving the request as HTTP/1.1."""
    sock = connect(live_server)
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                     b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n")
        raw = read_response(sock, deadline_s=5.0)
    finally:
        sock.close()
    status, headers, body = parse_response(raw)
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert headers["connection"] == "close"
