"""Response compression over real HTTP: what goes on the wire, and what real clients decode."""

from __future__ import annotations

import gzip
import json

import httpx
import numpy as np
import openai
import pytest

from embedrouter.api import compress
from tests.api.conftest import DEFAULT_MODEL
from tests.support.live import LiveServer

TEXTS = [f"sentence number {i} about compressing embeddings" for i in range(40)]


def post_raw(client: httpx.Client, accept_encoding: str | None, body: dict
             ) -> tuple[httpx.Response, bytes]:
    """The response and its bytes exactly as sent (httpx would otherwise decode them)."""
    headers = {} if accept_encoding is None else {"accept-encoding": accept_encoding}
    req = client.build_request("POST", "/embeddings", json=body, headers=headers)
    if accept_encoding is None:
        del req.headers["accept-encoding"]
    resp = client.send(req, stream=True)
    try:
        raw = b"".join(resp.iter_raw())
    finally:
        resp.close()
    return resp, raw


def floats(model: str = DEFAULT_MODEL, texts: list[str] = TEXTS) -> dict:
    return {"model": model, "input": texts, "encoding_format": "float"}


def test_float_bodies_are_gzipped_on_the_wire(client: httpx.Client) -> None:
    resp, raw = post_raw(client, "gzip, deflate", floats())
    assert resp.status_code == 200
    assert resp.headers["content-encoding"] == "gzip"
    assert resp.headers["vary"].lower() == "accept-encoding"
    assert int(resp.headers["content-length"]) == len(raw)
    assert raw[:2] == b"\x1f\x8b"
    doc = json.loads(gzip.decompress(raw))

    plain, plain_raw = post_raw(client, "identity", floats())
    assert "content-encoding" not in plain.headers
    assert int(plain.headers["content-length"]) == len(plain_raw)
    assert doc["data"] == json.loads(plain_raw)["data"]
    assert len(raw) < 0.6 * len(plain_raw)


def test_httpx_decodes_it_transparently(client: httpx.Client) -> None:
    resp = client.post("/embeddings", json=floats())
    assert resp.headers["content-encoding"] == "gzip"
    rows = np.asarray([d["embedding"] for d in resp.json()["data"]], np.float32)
    assert rows.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


def test_openai_sdk_float_path_gets_gzip(live_server: LiveServer) -> None:
    oai = openai.OpenAI(base_url=live_server.base_url, api_key=live_server.api_key,
                        max_retries=0)
    raw = oai.embeddings.with_raw_response.create(model=DEFAULT_MODEL, input=TEXTS,
                                                  encoding_format="float")
    assert raw.headers["content-encoding"] == "gzip"
    b64 = oai.embeddings.create(model=DEFAULT_MODEL, input=TEXTS)
    np.testing.assert_allclose([d.embedding for d in raw.parse().data],
                               [d.embedding for d in b64.data], atol=1e-7)


@pytest.mark.parametrize("accept", [None, "", "identity", "gzip;q=0", "*;q=0", "br, zstd",
                                    "gzip;q=0.5, identity"])
def test_uncompressed_when_not_wanted(client: httpx.Client, accept: str | None) -> None:
    resp, raw = post_raw(client, accept, floats())
    assert resp.status_code == 200
    assert "content-encoding" not in resp.headers
    assert int(resp.headers["content-length"]) == len(raw)
    assert len(json.loads(raw)["data"]) == len(TEXTS)


@pytest.mark.parametrize("accept", ["x-gzip", "*", "GZIP;q=0.8, identity;q=0.1"])
def test_other_spellings_that_accept_gzip(client: httpx.Client, accept: str) -> None:
    resp, raw = post_raw(client, accept, floats())
    assert resp.headers["content-encoding"] == "gzip"
    assert len(json.loads(gzip.decompress(raw))["data"]) == len(TEXTS)


def test_base64_bodies_are_left_alone(client: httpx.Client) -> None:
    body = {"model": DEFAULT_MODEL, "input": TEXTS * 10, "encoding_format": "base64"}
    resp, raw = post_raw(client, "gzip", body)
    assert resp.status_code == 200
    assert len(raw) > 100 * compress.MIN_BYTES
    assert "content-encoding" not in resp.headers
    assert len(json.loads(raw)["data"]) == len(TEXTS) * 10


def test_small_bodies_are_left_alone(client: httpx.Client) -> None:
    resp = client.get("/health", headers={"accept-encoding": "gzip"})
    assert resp.status_code == 200
    assert len(resp.content) < compress.MIN_BYTES
    assert "content-encoding" not in resp.headers
    assert resp.headers["vary"].lower() == "accept-encoding"


def test_large_get_bodies_are_gzipped(client: httpx.Client) -> None:
    resp = client.get("/openapi.json", headers={"accept-encoding": "gzip"})
    assert resp.status_code == 200
    assert resp.headers["content-encoding"] == "gzip"
    assert resp.json()["openapi"].startswith("3.1")


@pytest.mark.parametrize(("body", "status"), [
    ({"model": DEFAULT_MODEL, "input": []}, 400),
    ({"model": "nobody/nothing", "input": "x", "encoding_format": "float"}, 400),
])
def test_error_envelopes_under_gzip(client: httpx.Client, body: dict, status: int) -> None:
    resp, raw = post_raw(client, "gzip", body)
    assert resp.status_code == status
    assert resp.headers["content-type"] == "application/json"
    # Envelopes are small: they go out as they are, readable by anything.
    assert "content-encoding" not in resp.headers
    assert json.loads(raw)["error"]["code"] == status


def test_unauthorized_envelope_under_gzip(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.base_url, timeout=60) as anon:
        resp, raw = post_raw(anon, "gzip", floats())
    assert resp.status_code == 401
    assert json.loads(raw)["error"]["code"] == 401
