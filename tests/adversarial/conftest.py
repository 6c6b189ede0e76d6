"""Servers for the adversarial suite, each with the limits its attack needs, scaled down so that
the suite takes seconds: the guards' logic does not depend on the size of the numbers."""

from __future__ import annotations

import re
import resource
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.live import LiveServer, start_server

HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
KEEPALIVE_TIMEOUT_S = 1.0
# Scheduling slack on a shared 2-core machine: a deadline may fire this much late.
SLACK_S = 2.0


def _serve(tmp_path_factory: pytest.TempPathFactory, onnx_cache_dir: Path, name: str,
           config: str, **kw: object) -> LiveServer:
    data_dir = tmp_path_factory.mktemp(name)
    path = data_dir / "embedrouter.toml"
    path.write_text(config)
    return start_server(data_dir, cache_dir=onnx_cache_dir, config=path, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def timed_server(tmp_path_factory: pytest.TempPathFactory, onnx_cache_dir: Path
                 ) -> Iterator[LiveServer]:
    """Short header, body and keep-alive timeouts; the default connection cap."""
    server = _serve(tmp_path_factory, onnx_cache_dir, "timed",
                    f"[server]\nheader_timeout_s = {HEADER_TIMEOUT_S}\n"
                    f"body_timeout_s = {BODY_TIMEOUT_S}\n"
                    f"keepalive_timeout_s = {KEEPALIVE_TIMEOUT_S}\n")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def capped_server(tmp_path_factory: pytest.TempPathFactory, onnx_cache_dir: Path
                  ) -> Iterator[LiveServer]:
    """At most 8 open connections; timeouts long enough not to interfere."""
    server = _serve(tmp_path_factory, onnx_cache_dir, "capped",
                    "[server]\nmax_connections = 8\nheader_timeout_s = 30\n")
    yield server
    server.stop()


FD_LIMIT = 200


def _limit_open_files() -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@pytest.fixture(scope="module")
def fd_limited_server(tmp_path_factory: pytest.TempPathFactory, onnx_cache_dir: Path
                      ) -> Iterator[LiveServer]:
    """`ulimit -n 200` (soft = hard, so raising the soft limit cannot help) and the default
    configuration: nothing tuned for the attack."""
    server = start_server(tmp_path_factory.mktemp("fd-limited"), cache_dir=onnx_cache_dir,
                          preexec_fn=_limit_open_files)
    yield server
    server.stop()


def address(server: LiveServer) -> tuple[str, int]:
    host, port = server.root.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def connect(server: LiveServer, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(address(server), timeout=timeout)


def read_response(sock: socket.socket, deadline_s: float = 5.0) -> bytes:
    """Everything the server sends until it closes or `deadline_s` passes (bounded)."""
    import time

    sock.settimeout(0.2)
    chunks: list[bytes] = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if chunks and b"\r\n\r\n" in b"".join(chunks):
                head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                length = _content_length(head)
                if length is not None and len(body) >= length:
                    break
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def read_one_response(sock: socket.socket, deadline_s: float = 5.0) -> bytes:
    """One complete response (head and Content-Length body), leaving the connection open."""
    import time

    sock.settimeout(deadline_s)
    data = b""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep and len(body) >= (_content_length(head) or 0):
            return data
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    raise AssertionError(f"no complete response in {deadline_s} s: {data!r}")


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return None


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


# -- a small queue, so the queue tests fill it with little traffic ----------------------

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
