"""A key's cache policy, set through the management API or the CLI, on real `embedrouter serve`
processes: SQLite (memory + SQLite cache tiers) and PostgreSQL + Redis (the Redis tier too).

What each request may do is judged from the response (`x-embedrouter-cache`) and from the cache
metrics: a request that may not read or write moves no hit, miss or write counter.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openrouter import OpenRouter

from tests.store.backends import scratch_postgres_sync
from tests.support.live import LiveServer, start_server
from tests.support.redis_scratch import REDIS_URL, scratch_prefix

# SDK 1.3.84 warns that it deprecated fields of /key whenever it parses them.
pytestmark = pytest.mark.filterwarnings("ignore:.*DEPRECATED.*:DeprecationWarning")

MODEL = "sentence-transformers/all-minilm-l6-v2"
_COUNTER = re.compile(r'embedrouter_cache_(hits|misses|writes)_total\{backend="(\w+)"\} (\S+)')


@pytest.fixture(scope="module", params=["sqlite", "pg+redis"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           onnx_cache_dir: Path) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    data = tmp_path_factory.mktemp("key-policy")
    config = data / "embedrouter.toml"
    env: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        if request.param == "pg+redis":
            url = stack.enter_context(scratch_postgres_sync())
            prefix = stack.enter_context(scratch_prefix())
            env = {"EMBEDROUTER_DATABASE_URL": url, "EMBEDROUTER_REDIS_URL": REDIS_URL,
                   "EMBEDROUTER_REDIS_PREFIX": prefix}
            # The vector cache under the same scratch prefix, so it is deleted with it.
            config.write_text(f'[cache]\nredis_prefix = "{prefix}vec:"\n')
        else:
            config.write_text("[cache]\nenabled = true\n")
        live = start_server(data, cache_dir=onnx_cache_dir, config=config, env=env)
        stack.callback(live.stop)
        yield live, env


def admin(live: LiveServer, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, f"{live.base_url}{path}", json=body, timeout=30,
                         headers={"authorization": f"Bearer {live.management_key}"})


def new_key(live: LiveServer, **fields: Any) -> tuple[str, str]:
    """A fresh inference key made through POST /keys: (key, hash)."""
    resp = admin(live, "POST", "/keys", {"name": f"policy {uuid.uuid4()}", **fields})
    assert resp.status_code == 201, resp.text
    return resp.json()["key"], resp.json()["data"]["hash"]


def embed(live: LiveServer, key: str, text: str, cache_control: str | None = None
          ) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    if cache_control is not None:
        headers["cache-control"] = cache_control
    resp = httpx.post(f"{live.base_url}/embeddings", json={"model": MODEL, "input": [text]},
                      headers=headers, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp


def cache_state(resp: httpx.Response) -> str | None:
    return resp.headers.get("x-embedrouter-cache")


def counters(live: LiveServer) -> dict[str, float]:
    """Hits, misses and writes summed over every cache tier."""
    out = {"hits": 0.0, "misses": 0.0, "writes": 0.0}
    for line in httpx.get(f"{live.root}/metrics", timeout=30).text.splitlines():
        if (m := _COUNTER.fullmatch(line)) and m.group(2) != "single_flight":
            out[m.group(1)] += float(m.group(3))
    return out


def moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before}


def text() -> str:
    return f"policy text {uuid.uuid4()}"


def test_no_store_key_never_reads_or_writes(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, _ = server
    key, _ = new_key(live, cache_policy="no-store")
    cached = text()
    assert cache_state(embed(live, live.api_key, cached)) == "miss"  # now in every tier
    fresh = text()
    before = counters(live)
    for t in (cached, fresh, fresh):
        resp = embed(live, key, t)
        assert cache_state(resp) is None
        assert "prompt_tokens_details" not in resp.json()["usage"]
    assert moved(before, counters(live)) == {"hits": 0, "misses": 0, "writes": 0}
    # Nothing was stored for the no-store key: a default key still misses its text.
    assert cache_state(embed(live, live.api_key, fresh)) == "miss"


def test_no_cache_key_skips_reading_but_writes(
        server: tuple[LiveServer, dict[str, str]]) -> None:
    live, _ = server
    key, _ = new_key(live, cache_policy="no-cache")
    t = text()
    before = counters(live)
    first, second = embed(live, key, t), embed(live, key, t)
    assert cache_state(first) == cache_state(second) == "miss"  # never read, not even its own
    delta = moved(before, counters(live))
    assert delta["hits"] == delta["misses"] == 0 and delta["writes"] > 0
    assert second.json()["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    hit = embed(live, live.api_key, t)  # what it wrote serves a default key
    assert cache_state(hit) == "hit"
    assert hit.json()["data"] == second.json()["data"]


def test_patched_policy_applies_to_the_next_request(
        server: tuple[LiveServer, dict[str, str]]) -> None:
    live, _ = server
    key, key_hash = new_key(live)
    assert admin(live, "GET", f"/keys/{key_hash}").json()["data"]["cache_policy"] == "default"
    t = text()
    assert [cache_state(embed(live, key, t)) for _ in range(2)] == ["miss", "hit"]

    patched = admin(live, "PATCH", f"/keys/{key_hash}", {"cache_policy": "no-store"})
    assert patched.status_code == 200 and patched.json()["data"]["cache_policy"] == "no-store"
    assert cache_state(embed(live, key, t)) is None

    assert admin(live, "PATCH", f"/keys/{key_hash}",
                 {"cache_policy": "no-cache"}).json()["data"]["cache_policy"] == "no-cache"
    assert cache_state(embed(live, key, t)) == "miss"

    # null (like "default") goes back to following the request headers alone.
    back = admin(live, "PATCH", f"/keys/{key_hash}", {"cache_policy": None})
    assert back.json()["data"]["cache_policy"] == "default"
    assert cache_state(embed(live, key, t)) == "hit"
    listed = {k["hash"]: k for k in admin(live, "GET", "/keys").json()["data"]}
    assert listed[key_hash]["cache_policy"] == "default"


@pytest.mark.parametrize(("policy", "header", "reads", "writes"), [
    ("default", None, True, True),
    ("default", "max-age=60", True, True),
    ("default", "no-cache", False, True),
    ("default", "no-store", False, False),
    ("no-cache", None, False, True),
    ("no-cache", "max-age=60", False, True),
    ("no-cache", "no-store", False, False),  # the header is stricter
    ("no-store", None, False, False),
    ("no-store", "no-cache", False, False),  # the key is stricter
])
def test_the_stricter_of_key_and_header_wins(server: tuple[LiveServer, dict[str, str]],
                                             policy: str, header: str | None, reads: bool,
                                             writes: bool) -> None:
    live, _ = server
    key, _ = new_key(live, cache_policy=policy)
    cached, fresh = text(), text()
    embed(live, live.api_key, cached)
    before = counters(live)
    on_cached, on_fresh = embed(live, key, cached, header), embed(live, key, fresh, header)
    delta = moved(before, counters(live))
    if not (reads or writes):
        assert cache_state(on_cached) is None and cache_state(on_fresh) is None
        assert delta == {"hits": 0, "misses": 0, "writes": 0}
    else:
        assert cache_state(on_cached) == ("hit" if reads else "miss")
        assert cache_state(on_fresh) == "miss"
        assert (delta["hits"] > 0) is reads and (delta["misses"] > 0) is reads
        assert (delta["writes"] > 0) is writes
    # Whether the fresh text was stored, seen by a default key.
    assert cache_state(embed(live, live.api_key, fresh)) == ("hit" if writes else "miss")


@pytest.mark.parametrize("value", ["sometimes", "No-Store", 3, True, ["no-store"]])
def test_invalid_policy_is_a_400_naming_the_field(server: tuple[LiveServer, dict[str, str]],
                                                  value: object) -> None:
    live, _ = server
    resp = admin(live, "POST", "/keys", {"name": "bad", "cache_policy": value})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == 400 and error["metadata"] == {"field": "cache_policy"}
    assert "cache_policy" in error["message"]
    _, key_hash = new_key(live, cache_policy="no-cache")
    patch = admin(live, "PATCH", f"/keys/{key_hash}", {"cache_policy": value, "name": "x"})
    assert patch.status_code == 400 and patch.json()["error"]["metadata"]["field"] == (
        "cache_policy")
    kept = admin(live, "GET", f"/keys/{key_hash}").json()["data"]
    assert kept["cache_policy"] == "no-cache" and kept["name"] != "x"  # nothing applied


def test_openrouter_sdk_parses_keys_with_a_policy(
        server: tuple[LiveServer, dict[str, str]]) -> None:
    live, _ = server
    key, key_hash = new_key(live, cache_policy="no-store")
    sdk = OpenRouter(api_key=live.management_key, server_url=live.base_url)
    assert sdk.api_keys.get(hash=key_hash).data.hash == key_hash
    assert key_hash in {k.hash for k in sdk.api_keys.list().data}
    current = OpenRouter(api_key=key, server_url=live.base_url).api_keys
    assert current.get_current_key_metadata().data.is_management_key is False
    shown = httpx.get(f"{live.base_url}/key", headers={"authorization": f"Bearer {key}"})
    assert shown.json()["data"]["cache_policy"] == "no-store"


def test_cli_creates_a_key_with_a_policy(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, env = server
    out = subprocess.run([sys.executable, "-m", "embedrouter", "keys", "create", "--label",
                          "cli policy", "--cache-policy", "no-store", "--data-dir",
                          str(live.data_dir), "--config", str(live.data_dir / "embedrouter.toml")],
                         capture_output=True, text=True, timeout=60, env={**os.environ, **env},
                         check=False)
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"sk-er-v1-[0-9a-f]{64}\n", out.stdout)  # the key alone
    key = out.stdout.strip()
    shown = httpx.get(f"{live.base_url}/key", headers={"authorization": f"Bearer {key}"})
    assert shown.json()["data"]["cache_policy"] == "no-store"
    t = text()
    assert cache_state(embed(live, key, t)) is None
    assert cache_state(embed(live, live.api_key, t)) == "miss"


def test_the_generation_record_shows_cached_and_total_tokens(
        server: tuple[LiveServer, dict[str, str]]) -> None:
    live, _ = server
    key, _ = new_key(live)
    fresh, repeat = text(), text()
    embed(live, key, repeat)  # now cached
    resp = httpx.post(f"{live.base_url}/embeddings", json={"model": MODEL,
                                                           "input": [fresh, repeat]},
                      headers={"authorization": f"Bearer {key}"}, timeout=60)
    usage = resp.json()["usage"]
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    assert 0 < cached < usage["prompt_tokens"]  # one of the two inputs came from the cache
    got = httpx.get(f"{live.base_url}/generation", params={"id": resp.json()["id"]},
                    headers={"authorization": f"Bearer {key}"}, timeout=30).json()["data"]
    assert got["tokens_prompt"] == usage["prompt_tokens"]
    assert got["native_tokens_cached"] == cached
    assert got["total_cost"] == usage["cost"]
    # A request the cache took no part in says so with null, as its usage leaves the field out.
    plain = embed(live, key, text(), cache_control="no-store")
    got = httpx.get(f"{live.base_url}/generation", params={"id": plain.json()["id"]},
                    headers={"authorization": f"Bearer {key}"}, timeout=30).json()["data"]
    assert got["native_tokens_cached"] is None
