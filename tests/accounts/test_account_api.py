"""The account endpoints through the real `openrouter` SDK, against a real server on each
backend: SQLite with in-process counters, and PostgreSQL + Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from openrouter import OpenRouter, errors

from tests.api.conftest import DEFAULT_MODEL
from tests.support.backend_server import BACKENDS, backend_server
from tests.support.live import LiveServer

# SDK 1.3.84 requires `is_provisioning_key` and `rate_limit` in /key and warns that it
# deprecated them whenever it parses them: its warning, not this server's.
pytestmark = pytest.mark.filterwarnings("ignore:.*DEPRECATED.*:DeprecationWarning")

CONFIG = """
[default_model]
price_per_million = "1000"

[accounts]
enforce_credits = true

# These tests count money per computed request; hits (free by default) are the cache suite's.
[cache]
enabled = false
"""
COST = Decimal("0.004")  # "hello world": 4 tokens at $1000 per million


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           onnx_cache_dir: Path) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    data = tmp_path_factory.mktemp("accounts-api")
    config = data / "embedrouter.toml"
    config.write_text(CONFIG)
    with backend_server(request.param, data, cache_dir=onnx_cache_dir, config=config) as (
            live, env):
        cli(live, env, "credits", "add", "1")
        yield live, env


def cli(live: LiveServer, env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "embedrouter", *args, "--data-dir",
                          str(live.data_dir), "--config", str(live.data_dir / "embedrouter.toml")],
                         capture_output=True, text=True, timeout=60, env={**os.environ, **env},
                         check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def sdk(live: LiveServer, key: str) -> OpenRouter:
    return OpenRouter(api_key=key, server_url=live.base_url)


def embed(live: LiveServer, key: str, text: str = "hello world") -> httpx.Response:
    return httpx.post(f"{live.base_url}/embeddings", json={"model": DEFAULT_MODEL, "input": [text]},
                      headers={"authorization": f"Bearer {key}"}, timeout=60)


def exact_cost(resp: httpx.Response) -> Decimal:
    return Decimal(str(json.loads(resp.text, parse_float=Decimal)["usage"]["cost"]))


def test_key_endpoint_reports_usage_and_limits(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, env = server
    key = cli(live, env, "keys", "create", "--label", "budgeted", "--limit", "0.01",
              "--limit-reset", "daily", "--rpm", "50").strip()
    assert embed(live, key).status_code == 200
    data = sdk(live, key).api_keys.get_current_key_metadata().data
    assert data.label == "budgeted" and data.is_management_key is False
    assert data.limit == 0.01 and data.limit_reset == "daily"
    assert Decimal(str(data.usage)) == COST and Decimal(str(data.usage_daily)) == COST
    assert Decimal(str(data.limit_remaining)) == Decimal("0.01") - COST
    assert data.rate_limit.requests == 50
    assert data.effective_budget is not None and data.effective_budget.scope == "key_limit"
    manager = sdk(live, live.management_key).api_keys.get_current_key_metadata().data
    assert manager.is_management_key is True and manager.limit is None


def test_key_limit_gives_402_the_sdk_maps(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, env = server
    key = cli(live, env, "keys", "create", "--label", "tiny", "--limit", "0.005").strip()
    assert embed(live, key).status_code == 200
    with pytest.raises(errors.PaymentRequiredResponseError) as info:
        # Another text: "hello world" again would be a vector-cache hit, which costs nothing.
        sdk(live, key).embeddings.generate(model=DEFAULT_MODEL, input=["goodbye world"])
    assert "Key limit exceeded" in info.value.message


def test_credits_need_a_management_key(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, _ = server
    credits = sdk(live, live.management_key).credits.get_credits().data
    assert credits.total_credits == 1.0
    assert 0 < credits.total_usage < 1
    with pytest.raises(errors.ForbiddenResponseError) as info:
        sdk(live, live.api_key).credits.get_credits()
    assert info.value.message == "Only management keys can perform this operation"


def test_generation_is_visible_to_its_key_and_managers_only(
        server: tuple[LiveServer, dict[str, str]]) -> None:
    live, env = server
    resp = embed(live, live.api_key, "a generation record")
    assert resp.status_code == 200
    gen_id = resp.json()["id"]
    gen = sdk(live, live.api_key).generations.get_generation(id=gen_id).data
    assert gen.id == gen_id and gen.api_type == "embeddings" and gen.model == DEFAULT_MODEL
    assert gen.tokens_prompt == resp.json()["usage"]["prompt_tokens"]
    assert Decimal(str(gen.total_cost)) == exact_cost(resp)
    assert gen.provider_name == "Local" and gen.latency is not None
    other = cli(live, env, "keys", "create", "--label", "nosy").strip()
    with pytest.raises(errors.NotFoundResponseError):
        sdk(live, other).generations.get_generation(id=gen_id)
    assert sdk(live, live.management_key).generations.get_generation(id=gen_id).data.id == gen_id


def test_keys_management_api_round_trip(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, _ = server
    admin = sdk(live, live.management_key)
    created = admin.api_keys.create(name="from the api", limit=0.5, limit_reset="weekly")
    new_key, key_hash = created.key, created.data.hash
    assert created.data.name == "from the api" and created.data.limit == 0.5
    assert embed(live, new_key).status_code == 200
    assert admin.api_keys.get(hash=key_hash).data.limit_reset == "weekly"
    assert key_hash in {k.hash for k in admin.api_keys.list().data}
    updated = admin.api_keys.update(hash=key_hash, name="renamed", limit=None)
    assert updated.data.name == "renamed" and updated.data.limit is None
    admin.api_keys.update(hash=key_hash, disabled=True)
    assert embed(live, new_key).status_code == 401  # refused at once
    assert key_hash not in {k.hash for k in admin.api_keys.list().data}
    assert key_hash in {k.hash for k in admin.api_keys.list(include_disabled=True).data}
    admin.api_keys.update(hash=key_hash, disabled=False)
    assert embed(live, new_key).status_code == 200
    assert admin.api_keys.delete(hash=key_hash).DELETED is True
    assert embed(live, new_key).status_code == 401
    with pytest.raises(errors.NotFoundResponseError):
        admin.api_keys.get(hash=key_hash)


def test_management_routes_refuse_inference_keys(
        server: tuple[LiveServer, dict[str, str]]) -> None:
    live, _ = server
    auth = {"authorization": f"Bearer {live.api_key}"}
    some_hash = "0" * 64
    for method, path in (("GET", "/credits"), ("GET", "/keys"), ("POST", "/keys"),
                         ("GET", f"/keys/{some_hash}"), ("PATCH", f"/keys/{some_hash}"),
                         ("DELETE", f"/keys/{some_hash}")):
        resp = httpx.request(method, f"{live.base_url}{path}", headers=auth, json={"name": "x"})
        assert resp.status_code == 403, (method, path, resp.text)
        assert resp.json()["error"]["code"] == 403


def test_no_key_appears_in_the_server_log(server: tuple[LiveServer, dict[str, str]]) -> None:
    live, env = server
    created = [cli(live, env, "keys", "create", "--label", f"log-{i}").strip() for i in range(3)]
    for key in created:
        embed(live, key)
        httpx.get(f"{live.base_url}/key", headers={"authorization": f"Bearer {key}"})
    httpx.get(f"{live.base_url}/key", headers={"authorization": "Bearer " + "sk-er-v1-" + "f" * 64})
    log = "".join(live.output)
    for key in [*created, live.api_key, live.management_key]:
        assert key not in log
        assert key.removeprefix("sk-er-v1-") not in log


def test_metrics_count_ledger_commits_and_counter_errors(
        server: tuple[LiveServer, dict[str, str]]) -> None:
    live, env = server
    assert embed(live, live.api_key).status_code == 200
    text = httpx.get(f"{live.root}/metrics").text
    values = dict(line.split(" ", 1) for line in text.splitlines()
                  if line.startswith("embedrouter_accounts_"))
    assert float(values["embedrouter_accounts_ledger_rows_total"]) >= 1
    assert float(values["embedrouter_accounts_ledger_commits_total"]) >= 1
    assert float(values["embedrouter_accounts_counter_errors_total"]) == 0
    # Shared mode counts claims and the Redis calls that carried them; SQLite has neither.
    if "EMBEDROUTER_REDIS_URL" in env:
        claims = float(values["embedrouter_accounts_counter_claims_total"])
        assert 1 <= float(values["embedrouter_accounts_counter_claim_calls_total"]) <= claims
    else:
        assert "embedrouter_accounts_counter_claims_total" not in values
    # The charge above waited for a commit, which the commit histogram counts.
    assert float(values["embedrouter_accounts_ledger_commit_seconds_count"]) >= 1
    assert float(values['embedrouter_accounts_ledger_commit_seconds_bucket{le="+Inf"}']) == \
        float(values["embedrouter_accounts_ledger_commit_seconds_count"])
    assert float(values["embedrouter_accounts_ledger_commit_seconds_sum"]) > 0


def _admin(live: LiveServer, method: str, path: str, **kw: object) -> httpx.Response:
    return httpx.request(method, f"{live.base_url}{path}", timeout=30, **kw,  # type: ignore[arg-type]
                         headers={"authorization": f"Bearer {live.management_key}"})


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("POST", "/keys", {"name": "x", "limit": "0.5"}, "limit"),  # a number, not a string
    ("POST", "/keys", {"name": "x", "include_byok_in_limit": "yes"}, "include_byok_in_limit"),
    ("POST", "/keys", {"name": "x", "external": [1]}, "external"),
    ("POST", "/keys", {"name": "x", "disabled": False}, "disabled"),  # update only
    ("POST", "/keys", {"name": "a\u0000b"}, "label"),  # NUL; the key service says `label`
    ("PATCH", "/keys/" + "0" * 64, {"expires_at": None}, "expires_at"),  # create only
    ("PATCH", "/keys/" + "0" * 64, {"workspace_id": 7}, "workspace_id"),
    ("GET", "/keys?include_disabled=yes", None, "include_disabled"),
    ("GET", "/keys?offset=%C2%B2", None, "offset"),  # "²".isdigit(), but not an int
])
def test_management_api_refuses_bad_fields_by_name(
        server: tuple[LiveServer, dict[str, str]], method: str, path: str,
        body: object, field: str) -> None:
    resp = _admin(server[0], method, path, json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["metadata"]["field"] == field


def test_a_management_key_cannot_disable_itself(
        server: tuple[LiveServer, dict[str, str]]) -> None:
    live, _ = server
    own = _admin(live, "GET", "/key").json()["data"]
    mine = next(k["hash"] for k in _admin(live, "GET", "/keys").json()["data"]
                if k["is_management_key"] and k["label"] == own["label"])
    resp = _admin(live, "PATCH", f"/keys/{mine}", json={"disabled": True})
    assert resp.status_code == 400 and "disable itself" in resp.json()["error"]["message"]
    assert _admin(live, "GET", "/credits").status_code == 200  # still in


def test_a_generation_id_with_nul_is_not_found(server: tuple[LiveServer, dict[str, str]]) -> None:
    # On PostgreSQL the driver refused the query (a 500) before the route checked for NUL.
    resp = httpx.get(f"{server[0].base_url}/generation", params={"id": "gen-\x00"},
                     headers={"authorization": f"Bearer {server[0].api_key}"}, timeout=30)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == 404
