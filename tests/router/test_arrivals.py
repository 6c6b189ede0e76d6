"""Where a request for the local model stops counting as on its way (embedrouter/arrivals.py),
through the real router and model: after admission's reserve and before the model's queue. A
request still counted when it queues would hold its own batch for the whole wait. (A remote
model's request stops counting when the API layer parses its body: tests/api/test_arrivals.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedrouter.arrivals import ARRIVAL
from embedrouter.server import build_router
from embedrouter.settings import Settings
from embedrouter.types import EmbeddingRequest, Quote, TextInput
from tests.api.conftest import DEFAULT_MODEL


async def test_counted_through_admission_uncounted_at_the_queue(
        tmp_path: Path, onnx_cache_dir: Path) -> None:
    router = await build_router(Settings(data_dir=tmp_path, cache_dir=onnx_cache_dir))
    assert router.arrivals is not None
    seen: dict[str, int] = {}
    batcher = router._providers["local"].loaded(DEFAULT_MODEL, "fp32").batcher  # type: ignore[attr-defined]
    queue = batcher.embed

    async def at_queue(seqs: Any, **kw: Any) -> Any:
        seen["queue"] = router.arrivals.count  # type: ignore[union-attr]
        return await queue(seqs, **kw)

    async def reserve(quote: Quote) -> None:
        seen["reserve"] = router.arrivals.count  # type: ignore[union-attr]

    batcher.embed = at_queue  # type: ignore[method-assign]
    token = ARRIVAL.set(router.arrivals.enter())
    try:
        result = await router.embed(EmbeddingRequest(DEFAULT_MODEL, (TextInput("hello world"),)),
                                    reserve=reserve)
        assert result.vectors.shape == (1, 384)
        assert seen == {"reserve": 1, "queue": 0}
    finally:
        ARRIVAL.reset(token)
        await router.close()
