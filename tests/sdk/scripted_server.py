"""A real HTTP server on 127.0.0.1 that answers each request from a script of replies.

Each reply sets status, headers, body, a delay before answering, or drops the connection
without a word, so the SDK's error, retry and timeout paths run over real sockets. Once the
script runs out, ``responder`` (if set) computes a reply from the request, else ``default``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict | None = None
    headers: dict[str, str | None] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False

    def payload(self) -> tuple[bytes, str]:
        if isinstance(self.body, dict):
            return json.dumps(self.body).encode(), "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain"
        return self.body or b"", "application/json"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


def envelope(status: int, message: str = "failed", **extra: Any) -> dict:
    return {"error": {"code": status, "message": message, **extra}, "user_id": "user-1"}


def ok_body(n: int = 1, dims: int = 3) -> dict:
    return {"object": "list", "model": "m", "id": "gen-emb-1-x",
            "data": [{"object": "embedding", "index": i,
                      "embedding": [float(i + 1)] * dims} for i in range(n)],
            "usage": {"prompt_tokens": n, "total_tokens": n, "cost": 0.5}}


class ScriptedServer:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.seen: list[Seen] = []
        self.default = Reply(200, ok_body())
        self.responder: Callable[[Seen], Reply] | None = None
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path,
                            {k.lower(): v for k, v in self.headers.items()}, body,
                            time.monotonic())
                with owner._lock:
                    owner.seen.append(seen)
                    reply = (owner.replies.popleft() if owner.replies
                             else owner.responder(seen) if owner.responder
                             else owner.default)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.drop:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                payload, ctype = reply.payload()
                self.send_response(reply.status)
                headers = {"content-type": ctype, **reply.headers}
                for k, v in headers.items():
                    if v is not None:  # a None value leaves the header out
                        self.send_header(k, v)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _handle
            do_POST = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/api/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def script(self, *replies: Reply, responder: Callable[[Seen], Reply] | None = None) -> None:
        self.responder = responder
        self.replies.clear()
        self.seen.clear()
        self.replies.extend(replies)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
