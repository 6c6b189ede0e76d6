"""The command line as users run it: `python -m embedrouter ...` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.api.conftest import cli, golden


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "embedrouter", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_keys_create_prints_the_key_alone(tmp_path: Path) -> None:
    out = cli(tmp_path, "keys", "create", "--label", "app")
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"sk-er-v1-[0-9a-f]{64}\n", out.stdout)
    mgmt = cli(tmp_path, "keys", "create", "--label", "ops", "--management")
    listed = json.loads(cli(tmp_path, "keys", "list", "--json").stdout)
    assert [(k["label"], k["management"], k["disabled"]) for k in listed] == [
        ("app", False, False), ("ops", True, False)]
    assert out.stdout.strip() not in json.dumps(listed)
    assert mgmt.stdout.strip() not in json.dumps(listed)


def test_keys_create_with_a_cache_policy(tmp_path: Path) -> None:
    out = cli(tmp_path, "keys", "create", "--label", "fresh", "--cache-policy", "no-cache")
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"sk-er-v1-[0-9a-f]{64}\n", out.stdout)
    cli(tmp_path, "keys", "create", "--label", "plain")
    listed = json.loads(cli(tmp_path, "keys", "list", "--json").stdout)
    assert [(k["label"], k["cache_policy"]) for k in listed] == [
        ("fresh", "no-cache"), ("plain", "default")]
    bad = cli(tmp_path, "keys", "create", "--label", "x", "--cache-policy", "sometimes")
    assert bad.returncode == 2 and "--cache-policy" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_keys_disable_by_hash_prefix_and_unknown(tmp_path: Path) -> None:
    cli(tmp_path, "keys", "create", "--label", "app")
    key_hash = json.loads(cli(tmp_path, "keys", "list", "--json").stdout)[0]["hash"]
    assert cli(tmp_path, "keys", "disable", key_hash[:12]).returncode == 0
    assert json.loads(cli(tmp_path, "keys", "list", "--json").stdout)[0]["disabled"] is True
    missing = cli(tmp_path, "keys", "disable", "0" * 64)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_embed_in_process(tmp_path: Path, onnx_cache_dir: Path) -> None:
    row = golden()[1]
    out = run("embed", row["input"], "second text", "--data-dir", str(tmp_path),
              env={"EMBEDROUTER_CACHE_DIR": str(onnx_cache_dir)})
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert [d["index"] for d in body["data"]] == [0, 1]
    got = np.asarray(body["data"][0]["embedding"], np.float32)
    want = np.asarray(row["embedding"], np.float32)
    assert float(got @ want / np.linalg.norm(want)) >= 0.9999
    assert body["usage"]["prompt_tokens"] >= row["tokens_with_special"]


def test_embed_reports_bad_input_without_a_traceback(tmp_path: Path,
                                                     onnx_cache_dir: Path) -> None:
    out = run("embed", "x", "--model", "nobody/nothing", "--data-dir", str(tmp_path),
              env={"EMBEDROUTER_CACHE_DIR": str(onnx_cache_dir)})
    assert out.returncode == 1
    assert "nobody/nothing" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(("config", "fragment"), [
    ("[server]\nport = 'eighty'\n", "server.port"),
    ("[server]\nbogus = 1\n", "bogus"),
    ("[[models]]\nslug = 'a/b'\n", "models[0].path"),
    ("[default_model]\nprice_per_million = -1\n", "price_per_million"),
    ("not toml [", "config file"),
])
def test_bad_config_stops_serve_with_a_named_key(tmp_path: Path, config: str,
                                                 fragment: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(config)
    out = run("serve", "--port", "0", "--data-dir", str(tmp_path), "--config", str(path))
    assert out.returncode == 2
    assert fragment in out.stderr and "Traceback" not in out.stderr


def test_providers_lists_every_provider_and_why(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[[providers]]\nname = "mine"\nkind = "openai"\n'
                      'base_url = "http://127.0.0.1:9/v1"\n'
                      '[[models]]\nslug = "me/m"\ndimensions = 8\ncontext_length = 64\n'
                      '[[models.endpoints]]\nprovider = "mine"\nupstream_model = "m"\n')
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-not-shown"}
    env.pop("VOYAGE_API_KEY", None)
    out = subprocess.run([sys.executable, "-m", "embedrouter", "providers", "--json",
                          "--config", str(config), "--data-dir", str(tmp_path / "d")],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["openai"]["enabled"] and rows["openai"]["why"] == "OPENAI_API_KEY is set"
    assert "openai/text-embedding-3-small" in rows["openai"]["models"]
    assert not rows["voyage"]["enabled"] and rows["voyage"]["why"] == "VOYAGE_API_KEY is not set"
    assert rows["mine"] == {**rows["mine"], "enabled": True, "source": "config",
                            "models": ["me/m"]}
    assert "sk-test-not-shown" not in out.stdout
    table = subprocess.run([sys.executable, "-m", "embedrouter", "providers", "--config",
                            str(config), "--data-dir", str(tmp_path / "d")],
                           capture_output=True, text=True, env=env, timeout=60).stdout
    assert table.splitlines()[0].split() == ["PROVIDER", "KIND", "STATE", "MODELS", "WHY"]


def test_accounts_commands_take_limits_and_show_money(tmp_path: Path) -> None:
    out = cli(tmp_path, "keys", "create", "--label", "team", "--limit", "2.5", "--limit-reset",
              "monthly", "--rpm", "60", "--tpm", "100000")
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"sk-er-v1-[0-9a-f]{64}\n", out.stdout)  # still the key alone
    added = cli(tmp_path, "credits", "add", "10.25")
    assert added.returncode == 0 and "total credits $10.25" in added.stdout
    cli(tmp_path, "credits", "add", "0.000000001")
    shown = cli(tmp_path, "credits", "show").stdout
    assert "credits   $10.250000001" in shown and "balance   $10.250000001" in shown
    assert "unmetered" in shown  # the mode in force is stated
    usage = cli(tmp_path, "usage", "--since", "2026-01-01")
    assert usage.returncode == 0 and "REQUESTS" in usage.stdout
    for bad in (("credits", "add", "-1"), ("credits", "add", "ten"),
                ("keys", "create", "--label", "x", "--limit-reset", "yearly"),
                ("usage", "--since", "yesterday")):
        refused = cli(tmp_path, *bad)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr, bad


def test_credits_show_states_enforcement(tmp_path: Path) -> None:
    config = tmp_path / "er.toml"
    config.write_text("[accounts]\nenforce_credits = true\n")
    shown = cli(tmp_path, "credits", "show", "--config", str(config)).stdout
    assert "enforced" in shown
