"""The playground page: static files built from js/react/playground and shipped as package data.

They are read once, when the app is built; a request is a dictionary lookup. Every file but
index.html has a content hash in its name, so browsers may keep it for a year; index.html names
the current ones and is revalidated on each load. No authentication: the files hold no secrets
(the page asks for a key and sends it only to this server's API).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Protocol

from embedrouter.api import compress

PAGE_PATH = "/"
ASSET_PREFIX = "/playground/"
PAGE_FILE = "index.html"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# Files are compressed once, at the level that gives the smallest body: unlike API responses
# the cost is paid once per process, not per request.
GZIP_LEVEL = 9

# The page takes an API key: no framing (clickjacking), no code or connections to other origins.
_PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


class StaticRequest(Protocol):
    """What a static file needs from the request (api.app.Request has it)."""

    headers: dict[str, str]
    compressible: bool


Response = tuple[int, bytes, dict[str, str]]


@dataclass(slots=True)
class Asset:
    """One file, its response headers, and its gzip form once a client has asked for it."""

    body: bytes
    headers: dict[str, str]
    gzipped: bytes | None = None

    async def respond(self, request: StaticRequest) -> Response:
        # The app must not gzip this body again on every request; a kept copy is used instead.
        request.compressible = False
        headers = dict(self.headers)
        if (len(self.body) >= compress.MIN_BYTES
                and compress.choose(request.headers.get("accept-encoding")) == "gzip"):
            if self.gzipped is None:
                # About 30 ms for the 400 kB script: off the event loop, once per process.
                self.gzipped = await asyncio.to_thread(compress.gzip_bytes, self.body,
                                                       GZIP_LEVEL)
            headers["content-encoding"] = "gzip"
            return 200, self.gzipped, headers
        return 200, self.body, headers


def default_dir() -> Traversable:
    """Where the built playground lives inside the installed package."""
    return resources.files("embedrouter.api") / "playground"


def load_assets(directory: Traversable | None = None) -> dict[str, Asset]:
    """Route path -> file, for every servable file in ``directory`` (empty when it is absent)."""
    root = default_dir() if directory is None else directory
    if not root.is_dir():
        return {}
    assets: dict[str, Asset] = {}
    for entry in sorted(root.iterdir(), key=lambda t: t.name):
        suffix = "." + entry.name.rpartition(".")[2]
        content_type = CONTENT_TYPES.get(suffix)
        if content_type is None or not entry.is_file():
            continue
        headers = {"content-type": content_type, "x-content-type-options": "nosniff"}
        if entry.name == PAGE_FILE:
            path = PAGE_PATH
            headers |= {"cache-control": REVALIDATE, **_PAGE_HEADERS}
        else:
            path = ASSET_PREFIX + entry.name
            headers["cache-control"] = IMMUTABLE
        assets[path] = Asset(entry.read_bytes(), headers)
    return assets


__all__ = ["ASSET_PREFIX", "PAGE_PATH", "Asset", "default_dir", "load_assets"]
