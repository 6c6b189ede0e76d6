"""Issue 8 items 1, 2, 5, 6: one request must not exhaust memory, stall the loop or echo megabytes.

Each test failed on the code before the fix (a 15 MB string took 20-48 s and gigabytes to reach
its 400; 3 million token ids froze /health for over a second; a 1 MB model name came back twice;
the last of two Authorization headers won). Loops are bounded in count and time; traffic stays on
127.0.0.1. Timing bounds here are loose guards against the old behaviour (seconds); the measured
figures come from bench/hardening.py.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.api.conftest import DEFAULT_MODEL
from tests.support.live import LiveServer, start_server

pytestmark = [pytest.mark.adversarial, pytest.mark.slow]

HUGE_TEXT = "a " * 7_500_000  # 15 MB, under the 16 MB body limit
GIB = 1024**3


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _cap_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 * GIB, 2 * GIB))


@pytest.fixture(scope="module")
def capped_server(tmp_path_factory: pytest.TempPathFactory, onnx_cache_dir: Path
                  ) -> Iterator[LiveServer]:
    """A server whose whole address space is capped at 2 GiB (ulimit -v 2097152)."""
    server = start_server(tmp_path_factory.mktemp("capped"), cache_dir=onnx_cache_dir,
                          env={"MALLOC_ARENA_MAX": "2"}, preexec_fn=_cap_address_space)
    yield server
    server.stop()


def _client(server: LiveServer, timeout: float = 60) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, timeout=timeout,
                             headers={"authorization": f"Bearer {server.api_key}"})


async def _healthy(client: httpx.AsyncClient) -> None:
    resp = await client.post("/embeddings", json={"model": DEFAULT_MODEL, "input": "still here"})
    assert resp.status_code == 200 and len(resp.json()["data"][0]["embedding"]) == 384


async def test_huge_text_input_is_refused_at_once_and_costs_no_memory(
        capped_server: LiveServer) -> None:
    body = orjson.dumps({"model": DEFAULT_MODEL, "input": HUGE_TEXT})
    async with _client(capped_server) as client:
        await _healthy(client)
        idle = rss_mb(capped_server.process.pid)
        took = []
        for _ in range(20):
            started = time.perf_counter()
            resp = await client.post("/embeddings", content=body,
                                     headers={"content-type": "application/json"})
            took.append(time.perf_counter() - started)
            assert resp.status_code == 400
            err = resp.json()["error"]
            assert err["metadata"]["error_type"] == "input_too_long"
            assert "server.max_input_chars" in err["message"]
        after = rss_mb(capped_server.process.pid)
        assert after - idle < 100, (idle, after)
        # Before: 20-48 s each. Over HTTP with the upload, now tens of milliseconds.
        assert statistics.median(took) < 1.0, took
        await _healthy(client)


async def test_ten_huge_inputs_at_once_under_a_2_gib_cap_leave_it_serving(
        capped_server: LiveServer) -> None:
    body = orjson.dumps({"model": DEFAULT_MODEL, "input": [HUGE_TEXT[:99_998], HUGE_TEXT]})
    async with _client(capped_server) as client:
        replies = await asyncio.gather(*[
            client.post("/embeddings", content=body, headers={"content-type": "application/json"})
            for _ in range(10)])
        assert [r.status_code for r in replies] == [400] * 10
        assert all("input[1]" in r.json()["error"]["message"] for r in replies)
        await _healthy(client)
    assert capped_server.process.poll() is None


async def test_long_text_under_the_cap_is_judged_from_a_prefix(capped_server: LiveServer) -> None:
    # 99,999 characters of words: over the context after the first few thousand characters.
    text = ("lorem ipsum dolor sit amet " * 4000)[:99_999]
    async with _client(capped_server) as client:
        resp = await client.post("/embeddings", json={"model": DEFAULT_MODEL, "input": text})
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["metadata"]["error_type"] == "context_length_exceeded"
    assert err["metadata"]["tokens_is_lower_bound"] is True
    assert "has at least" in err["message"]


def _poll_health(base_url: str, stop: threading.Event) -> list[float]:
    """/health round trips, 10 ms apart, from a thread of its own with a blocking client: the
    test's event loop is busy uploading 45 MB meanwhile, and a probe on that loop would time the
    upload's stalls along with the server's."""
    gaps: list[float] = []
    with httpx.Client(base_url=base_url, timeout=60) as client:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            started = time.perf_counter()
            resp = client.get("/health")
            gaps.append(time.perf_counter() - started)
            assert resp.status_code == 200
            time.sleep(0.01)
    return gaps


@pytest.mark.parametrize("shape", ["one_array", "many_arrays"])
async def test_millions_of_token_ids_do_not_stall_the_loop(capped_server: LiveServer,
                                                            shape: str) -> None:
    ids = list(range(1000, 10_000)) * 333  # 3 million ids, about 15 MB of JSON
    inputs = ids if shape == "one_array" else [ids[i:i + 100_000]
                                               for i in range(0, len(ids), 100_000)]
    body = orjson.dumps({"model": DEFAULT_MODEL, "input": inputs})
    assert len(body) < 16 * 1024 * 1024
    stop = threading.Event()
    async with _client(capped_server) as client:
        poller = asyncio.create_task(asyncio.to_thread(_poll_health, capped_server.base_url,
                                                       stop))
        await asyncio.sleep(0.2)
        try:
            replies = await asyncio.gather(*[
                client.post("/embeddings", content=body,
                            headers={"content-type": "application/json"})
                for _ in range(3)])
        finally:
            stop.set()
        gaps = await poller
    assert [r.status_code for r in replies] == [400] * 3
    assert len(gaps) >= 5
    p99 = statistics.quantiles(gaps, n=100)[98]
    # Before: 1.1 s (1.5-2.8 s with three at once). bench/hardening.py measures the real p99;
    # the bound here only has to tell the two apart on a loaded 2-core CI machine.
    assert p99 < 0.25, (p99, max(gaps))


async def test_echoed_values_are_clipped(capped_server: LiveServer) -> None:
    big = "m" * 1_000_000
    async with _client(capped_server) as client:
        for body in ({"model": big, "input": "x"},
                     {"model": DEFAULT_MODEL, "input": "x", "encoding_format": big},
                     {"model": DEFAULT_MODEL, "input": [{"content": [{"type": big}]}]},
                     {"model": DEFAULT_MODEL, "input": "x", "provider": {"sort": big}}):
            resp = await client.post("/embeddings", json=body)
            assert resp.status_code == 400
            assert len(resp.content) < 4096, len(resp.content)
            assert "error" in resp.json()
        resp = await client.get("/models/" + "a" * 30_000 + "/b/endpoints")
        assert resp.status_code == 404 and len(resp.content) < 4096


async def test_two_authorization_headers_are_refused(capped_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=capped_server.base_url) as client:
        for pair in ([capped_server.api_key, "sk-er-v1-" + "0" * 64],
                     [capped_server.api_key, capped_server.api_key]):
            resp = await client.post("/embeddings", json={"model": DEFAULT_MODEL, "input": "x"},
                                     headers=[("authorization", f"Bearer {k}") for k in pair])
            assert resp.status_code == 400
            assert "Authorization" in resp.json()["error"]["message"]
