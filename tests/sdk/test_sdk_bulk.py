"""embed_many against a scripted 127.0.0.1 server: order, decoding, retries, failure, progress."""

from __future__ import annotations

import base64
import json
import sys
import time

import numpy as np
import pytest

from embedrouter.sdk import BackoffStrategy, EmbedRouter, RetryConfig, errors
from tests.sdk.scripted_server import Reply, ScriptedServer, Seen, envelope

DIMS = 4
FAST = RetryConfig("backoff", BackoffStrategy(20, 50, 2.0, 5_000, jitter_ms=0), True)


def vec(text: str) -> np.ndarray:
    """A vector that identifies its text: [n, n+0.5, -n, 1] for text 't<n>'."""
    n = float(text.removeprefix("t").split()[0])
    return np.array([n, n + 0.5, -n, 1.0], dtype=np.float32)


def embeddings(seen: Seen, *, as_floats: bool = False, reverse: bool = True) -> Reply:
    body = json.loads(seen.body)
    items = [{"object": "embedding", "index": i,
              "embedding": vec(t).tolist() if as_floats or body.get("encoding_format") != "base64"
              else base64.b64encode(vec(t).astype("<f4").tobytes()).decode()}
             for i, t in enumerate(body["input"])]
    if reverse:  # the SDK must place rows by index, not by position
        items.reverse()
    return Reply(200, {"object": "list", "model": "m", "data": items,
                       "usage": {"prompt_tokens": 1, "total_tokens": 1}})


TEXTS = [f"t{i}" for i in range(103)]
WANT = np.stack([vec(t) for t in TEXTS])


@pytest.fixture
def client(scripted: ScriptedServer) -> EmbedRouter:
    return EmbedRouter(api_key="k", server_url=scripted.base_url, retry_config=FAST)


def test_order_base64_and_batches(scripted: ScriptedServer, client: EmbedRouter) -> None:
    scripted.script(responder=embeddings)
    out = client.embed_many(TEXTS, "m", batch_size=10, concurrency=3, dimensions=DIMS)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, WANT)
    bodies = [json.loads(s.body) for s in scripted.seen]
    assert len(bodies) == 11 and {b["encoding_format"] for b in bodies} == {"base64"}
    assert {b["dimensions"] for b in bodies} == {DIMS}
    assert sorted(t for b in bodies for t in b["input"]) == sorted(TEXTS)


async def test_async_order(scripted: ScriptedServer, client: EmbedRouter) -> None:
    scripted.script(responder=embeddings)
    out = await client.embed_many_async(TEXTS, "m", batch_size=7, concurrency=5)
    np.testing.assert_array_equal(out, WANT)
    assert len(scripted.seen) == 15
    await client.aclose()


def test_servers_that_answer_floats_anyway(scripted: ScriptedServer, client: EmbedRouter
                                          ) -> None:
    scripted.script(responder=lambda s: embeddings(s, as_floats=True))
    np.testing.assert_array_equal(client.embed_many(TEXTS, "m", batch_size=50), WANT)


def test_429_and_5xx_are_waited_out(scripted: ScriptedServer, client: EmbedRouter) -> None:
    scripted.script(Reply(429, envelope(429), headers={"retry-after-ms": "30"}),
                    Reply(503, envelope(503)), Reply(drop=True), responder=embeddings)
    np.testing.assert_array_equal(client.embed_many(TEXTS[:10], "m", concurrency=1), WANT[:10])
    assert len(scripted.seen) == 4


def _bad(seen: Seen) -> Reply:
    body = json.loads(seen.body)
    if "t13" in body["input"]:
        return Reply(400, envelope(400, "bad input t13"))
    time.sleep(0.01)
    return embeddings(seen)


def test_first_failure_cancels_the_rest(scripted: ScriptedServer, client: EmbedRouter) -> None:
    scripted.script(responder=_bad)
    texts = [f"t{i}" for i in range(2000)]
    with pytest.raises(errors.BadRequestResponseError, match="t13"):
        client.embed_many(texts, "m", batch_size=1, concurrency=2)
    assert len(scripted.seen) < 100  # not the 2,000 batches


async def test_first_failure_cancels_the_rest_async(scripted: ScriptedServer,
                                                    client: EmbedRouter) -> None:
    scripted.script(responder=_bad)
    texts = [f"t{i}" for i in range(2000)]
    with pytest.raises(errors.BadRequestResponseError, match="t13"):
        await client.embed_many_async(texts, "m", batch_size=1, concurrency=2)
    assert len(scripted.seen) < 100
    await client.aclose()


def _mangled(kind: str):  # type: ignore[no-untyped-def]
    def respond(seen: Seen) -> Reply:
        reply = embeddings(seen, reverse=False)
        data = reply.body["data"]  # type: ignore[index]
        if kind == "duplicate index":
            data[1]["index"] = 0
        elif kind == "missing item":
            data.pop()
        elif kind == "bad base64":
            data[0]["embedding"] = "not base64!"
        elif kind == "odd byte count":
            data[0]["embedding"] = base64.b64encode(b"12345").decode()
        elif kind == "other dimensions":
            data[1]["embedding"] = [1.0, 2.0]
        return reply
    return respond


@pytest.mark.parametrize("kind", ["duplicate index", "missing item", "bad base64",
                                  "odd byte count", "other dimensions"])
def test_mangled_responses_are_validation_errors(scripted: ScriptedServer, client: EmbedRouter,
                                                 kind: str) -> None:
    scripted.script(responder=_mangled(kind))
    with pytest.raises(errors.ResponseValidationError):
        client.embed_many(TEXTS[:4], "m")


def test_argument_checks(scripted: ScriptedServer, client: EmbedRouter) -> None:
    scripted.script(responder=embeddings)
    with pytest.raises(TypeError, match="single string"):
        client.embed_many("t1 t2", "m")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        client.embed_many(TEXTS, "m", batch_size=0)
    with pytest.raises(errors.RequestValidationError, match="unknown"):
        client.embed_many(TEXTS, "m", colour="blue")
    assert client.embed_many([], "m").shape == (0, 0)
    assert scripted.seen == []


def test_progress_with_tqdm(scripted: ScriptedServer, client: EmbedRouter,
                            capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    scripted.script(responder=embeddings)
    client.embed_many(TEXTS, "m", batch_size=25, progress=True)
    assert "103/103" in capsys.readouterr().err


def test_progress_without_tqdm(scripted: ScriptedServer, client: EmbedRouter,
                               capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    scripted.script(responder=embeddings)
    client.embed_many(TEXTS, "m", batch_size=25, progress=True)
    err = capsys.readouterr().err
    assert "\rembedding 25/103" in err and err.endswith("\rembedding 103/103\n")
    client.embed_many(TEXTS, "m", batch_size=25)
    assert capsys.readouterr().err == ""


def test_without_numpy_the_error_says_what_to_install(scripted: ScriptedServer,
                                                      client: EmbedRouter,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    scripted.script(responder=embeddings)
    res = client.embeddings.generate(input=["t1"], model="m")
    monkeypatch.setitem(sys.modules, "numpy", None)
    with pytest.raises(ImportError, match=r"embedrouter\[numpy\]"):
        client.embed_many(TEXTS, "m")
    with pytest.raises(ImportError, match=r"embedrouter\[numpy\]"):
        res.to_numpy()
    assert len(scripted.seen) == 1
