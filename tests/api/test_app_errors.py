"""The ASGI app's last line of defence: unexpected failures become a masked 500 envelope."""

from __future__ import annotations

import logging

import httpx
import pytest

from embedrouter.api.app import App, Services
from embedrouter.api.parse import Limits
from embedrouter.catalog import Catalog


class _Keys:
    async def authenticate(self, authorization: str | None) -> object:
        return object()


class _ExplodingRouter:
    catalog = Catalog([])

    async def embed(self, request: object, *, reserve: object = None) -> object:
        raise RuntimeError("secret-token-in-a-traceback")

    async def close(self) -> None:
        return None


async def _services() -> Services:
    async def close() -> None:
        return None

    return Services(router=_ExplodingRouter(), catalog=Catalog([]), keys=_Keys(),  # type: ignore[arg-type]
                    max_body_bytes=1024, limits=Limits(max_inputs=4), close=close)


async def test_unexpected_error_is_a_masked_500(caplog: pytest.LogCaptureFixture) -> None:
    app = App(_services)
    app.services = await _services()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with caplog.at_level(logging.ERROR, logger="embedrouter.api"):
            resp = await client.post("/api/v1/embeddings", json={"model": "a/b", "input": "x"})
    assert resp.status_code == 500
    assert resp.json() == {"error": {"code": 500, "message": "Internal server error"}}
    assert "secret-token" not in resp.text
    assert "secret-token-in-a-traceback" in caplog.text  # the operator still sees the cause


async def test_not_started_yet_is_503() -> None:
    app = App(_services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        health = await client.get("/health")
        resp = await client.post("/api/v1/embeddings", json={"model": "a/b", "input": "x"})
    assert health.status_code == 503
    assert resp.status_code == 503 and resp.json()["error"]["code"] == 503
