"""Every embeddings request counts as on its way to a provider (embedrouter/arrivals.py) from
its start until a lower layer marks it arrived, and never after it ends, whatever ends it: a
count left behind would hold every later local batch for the whole wait."""

from __future__ import annotations

from decimal import Decimal

import httpx
import numpy as np
import pytest

from embedrouter import errors as e
from embedrouter.api.app import App, Services
from embedrouter.api.parse import Limits
from embedrouter.arrivals import Arrivals, arrived
from embedrouter.catalog import Catalog, ModelSpec
from embedrouter.types import EmbeddingResult, Usage


class _Keys:
    async def authenticate(self, authorization: str | None) -> object:
        if authorization != "Bearer good":
            raise e.AuthenticationFailed("No auth credentials found")
        return object()


def _spec(slug: str, provider: str) -> ModelSpec:
    return ModelSpec(slug=slug, name=slug, description="", provider=provider,
                     provider_name=provider, upstream_id=slug, dimensions=4,
                     context_length=512, price_per_million=Decimal(0), created=0)


# Only requests for a local model can join a local batch: the rest stop counting once parsed.
CATALOG = Catalog([_spec("acme/local", "local"), _spec("acme/remote", "alpha")])


class _Router:
    """Answers by the input text: "ok" arrives then answers, "boom" fails before arriving,
    "late" answers without ever calling arrived() (a path that never reaches a provider)."""

    catalog = CATALOG

    def __init__(self) -> None:
        self.arrivals = Arrivals()
        self.seen: list[tuple[str, int, int]] = []  # text, count on entry, count after arrived()

    async def embed(self, request: object, **options: object) -> EmbeddingResult:
        text = request.inputs[0].text  # type: ignore[attr-defined]
        on_entry = self.arrivals.count
        if text == "boom":
            self.seen.append((text, on_entry, -1))
            raise e.PaymentRequired("Insufficient credits")
        if text == "ok":
            arrived()
        self.seen.append((text, on_entry, self.arrivals.count))
        return EmbeddingResult(vectors=np.ones((1, 4), np.float32), model="m", provider="p",
                               usage=Usage(2, 2, Decimal(0), False))

    async def close(self) -> None:
        return None


async def _app(router: _Router) -> App:
    async def close() -> None:
        return None

    async def services() -> Services:
        return Services(router=router, catalog=CATALOG, keys=_Keys(),  # type: ignore[arg-type]
                        max_body_bytes=1024, limits=Limits(max_inputs=4), close=close)

    app = App(services)
    app.services = await services()
    return app


@pytest.mark.parametrize(("auth", "body", "status", "counted"), [
    ("Bearer good", {"model": "acme/local", "input": "ok"}, 200, 1),
    ("Bearer good", {"model": "acme/local", "input": "late"}, 200, 1),
    ("Bearer good", {"model": "acme/local", "input": "boom"}, 402, 1),
    ("Bearer good", {"model": "acme/remote", "input": "late"}, 200, 0),
    ("Bearer good", {"model": "acme/remote", "input": "boom"}, 402, 0),
    ("Bearer good", {"model": "acme/local"}, 400, None),
    ("Bearer bad", {"model": "acme/local", "input": "ok"}, 401, None),
])
async def test_the_count_is_back_to_zero_after_every_kind_of_end(
        auth: str, body: dict[str, object], status: int, counted: int | None) -> None:
    router = _Router()
    app = await _app(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:
        for _ in range(3):
            resp = await client.post("/api/v1/embeddings", json=body,
                                     headers={"authorization": auth})
            assert resp.status_code == status, resp.text
            assert router.arrivals.count == 0
    text = body.get("input")
    if counted is None:
        assert router.seen == []
    else:
        # In the router: counted (exactly this request) for a local model, uncounted once it
        # arrived; a remote model's request stopped counting when its body was parsed.
        after = {"ok": 0, "late": counted, "boom": -1}[text]  # type: ignore[index]
        assert router.seen == [(text, counted, after)] * 3
