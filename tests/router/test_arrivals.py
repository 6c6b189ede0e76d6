"""Where a request stops counting as on its way (embedrouter/arrivals.py), through the real
router: after admission's reserve and before the local model's queue or the remote call. A
request still counted when it queues would hold its own batch for the whole wait."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from embedrouter.arrivals import ARRIVAL
from embedrouter.server import build_router
from embedrouter.settings import load_settings
from embedrouter.types import EmbeddingRequest, Quote, TextInput
from tests.api.conftest import DEFAULT_MODEL

REMOTE = "acme/remote-embed"
CONFIG = f"""
[[providers]]
name = "alpha"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "ALPHA_KEY"

[[models]]
slug = "{REMOTE}"
dimensions = 8
context_length = 512
  [[models.endpoints]]
  provider = "alpha"
  upstream_model = "alpha-embed"
  price_per_million = "0.1"
"""


class _Sent(Exception):
    pass


@pytest.mark.parametrize("model", [DEFAULT_MODEL, REMOTE])
async def test_counted_through_admission_uncounted_at_the_provider(
        model: str, tmp_path: Path, onnx_cache_dir: Path) -> None:
    config = tmp_path / "embedrouter.toml"
    config.write_text(CONFIG)
    settings = load_settings(config, env={"ALPHA_KEY": "k"},
                             overrides={"data_dir": tmp_path, "cache_dir": onnx_cache_dir})
    router = await build_router(settings)
    assert router.arrivals is not None
    seen: dict[str, int] = {}
    batcher = router._providers["local"].loaded(DEFAULT_MODEL, "fp32").batcher  # type: ignore[attr-defined]
    queue = batcher.embed

    async def at_queue(seqs: Any) -> Any:
        seen["queue"] = router.arrivals.count  # type: ignore[union-attr]
        return await queue(seqs)

    async def at_upstream(*args: Any, **kwargs: Any) -> Any:
        seen["upstream"] = router.arrivals.count  # type: ignore[union-attr]
        raise _Sent

    async def reserve(quote: Quote) -> None:
        seen["reserve"] = router.arrivals.count  # type: ignore[union-attr]

    batcher.embed = at_queue  # type: ignore[method-assign]
    router.dispatcher.run = at_upstream  # type: ignore[method-assign]
    ticket = router.arrivals.enter()
    token = ARRIVAL.set(ticket)
    try:
        request = EmbeddingRequest(model, (TextInput("hello world"),))
        if model == REMOTE:
            with pytest.raises(_Sent):
                await router.embed(request, reserve=reserve)
            assert seen == {"reserve": 1, "upstream": 0}
        else:
            result = await router.embed(request, reserve=reserve)
            assert result.vectors.shape == (1, 384)
            assert seen == {"reserve": 1, "queue": 0}
    finally:
        ARRIVAL.reset(token)
        await router.close()
