"""How many intra-op threads each ONNX Runtime session gets from ``[engine] threads`` and
``[engine] forwards``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedrouter.server import build_router, session_threads
from embedrouter.settings import Settings
from tests.api.conftest import DEFAULT_MODEL


@pytest.mark.parametrize(("threads", "forwards", "cores", "expected"), [
    (None, 1, 8, None),  # one forward: ONNX Runtime's default, every core
    (3, 1, 8, 3),
    (3, 2, 8, 3),  # set explicitly: each forward gets that many
    (None, 2, 2, 1),
    (None, 2, 8, 4),
    (None, 3, 8, 2),
    (None, 4, 2, 1),  # never fewer than one
])
def test_the_cores_are_shared_out_between_forwards(threads: int | None, forwards: int,
                                                   cores: int, expected: int | None) -> None:
    assert session_threads(threads, forwards, cores) == expected


async def test_a_router_with_two_forwards_halves_each_batch_and_embeds_the_same(
        tmp_path: Path, onnx_cache_dir: Path) -> None:
    one = await build_router(Settings(data_dir=tmp_path / "a", cache_dir=onnx_cache_dir))
    two = await build_router(Settings(data_dir=tmp_path / "b", cache_dir=onnx_cache_dir,
                                      engine_forwards=2))
    try:
        lone = one._providers["local"].loaded(DEFAULT_MODEL, "fp32")  # type: ignore[attr-defined]
        pair = two._providers["local"].loaded(DEFAULT_MODEL, "fp32")  # type: ignore[attr-defined]
        assert (lone.batcher.forwards, pair.batcher.forwards) == (1, 2)
        assert pair.batcher.max_batch_tokens * 2 == lone.batcher.max_batch_tokens
        ids = [[101, *range(2000, 2030), 102]] * 3
        np.testing.assert_allclose(await pair.batcher.embed(ids), await lone.batcher.embed(ids),
                                   rtol=1e-4, atol=1e-5)
    finally:
        await one.close()
        await two.close()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_the_default_thread_count_follows_the_cpu_affinity_not_the_machine() -> None:
    # Under taskset or a container's cpuset, the machine's core count would put several
    # spinning threads on one core.
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from embedrouter.engine.model import _session_options, usable_cores; "
            "print(usable_cores(), _session_options(None).intra_op_num_threads)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    assert out == ["1", "1"]
