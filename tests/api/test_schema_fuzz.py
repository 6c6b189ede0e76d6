"""Schemathesis fuzzes the server from its own /openapi.json: no 5XX, every answer conforms to the
document (status, content type, headers, body schema), and every error is the envelope with
``error.code`` equal to the HTTP status.

Operations run with the key they are for: the inference key everywhere, the management key on
``/credits`` and ``/keys`` (per-operation headers in schemathesis.toml). The management API is
fuzzed on a server of its own per backend, since the fuzzer creates, changes and deletes keys.
Each run also has to reach the operations' success statuses (read back from its HAR report), so
a run that only ever hit 400s and 404s cannot pass.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.backend_server import BACKENDS, backend_server
from tests.support.live import LiveServer

pytestmark = pytest.mark.slow

SEED = "20261125"
MANAGEMENT_PATHS = "^/(credits|keys)"
# Operations of the inference key's account routes, and /embeddings, whose ids /generation reads.
INFERENCE_ACCOUNT_PATHS = "^/(embeddings|generation|key)$"
# Schema-valid input that the server refuses by design, so a 400 for it is right:
# an image part for a text-only model, and a USD amount with more than 9 decimals (money is
# exact nano-dollars; JSON Schema cannot say "at most 9 decimals" of a float).
ARGS = ["--checks", "all", "--exclude-checks", "positive_data_acceptance"]
SERVER_CONFIG = """
[accounts]
enforce_credits = true
"""


def _config(server: LiveServer, path: Path) -> Path:
    path.write_text(
        f'headers = {{ Authorization = "Bearer {server.api_key}" }}\n\n'
        "[[operations]]\n"
        f'include-path-regex = "{MANAGEMENT_PATHS}"\n'
        f'headers = {{ Authorization = "Bearer {server.management_key}" }}\n')
    return path


def fuzz(server: LiveServer, workdir: Path, *filters: str, max_examples: int = 80
         ) -> list[dict[str, Any]]:
    """One schemathesis run over the operations ``filters`` select; its HAR entries.

    Asserts the run passed, and that every error it received was the envelope.
    """
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert exe, "schemathesis is part of the test extra"
    workdir.mkdir(parents=True, exist_ok=True)
    config = _config(server, workdir / "schemathesis.toml")
    out = subprocess.run(
        [exe, "--config-file", str(config), "run", f"{server.root}/openapi.json",
         "--url", server.base_url, "--max-examples", str(max_examples), "--seed", SEED,
         *ARGS, *filters, "--report", "har", "--report-dir", str(workdir)],
        capture_output=True, text=True, timeout=300, cwd=workdir,
        env={**os.environ, "NO_COLOR": "1"})
    assert out.returncode == 0, out.stdout[-6000:]
    assert "generated" in out.stdout
    (har,) = workdir.glob("har-*.json")
    entries: list[dict[str, Any]] = json.loads(har.read_text())["log"]["entries"]
    assert_envelopes(entries)
    return entries


def assert_envelopes(entries: list[dict[str, Any]]) -> None:
    bad = []
    for entry in entries:
        status = entry["response"]["status"]
        if status < 400 or entry["request"]["method"] == "HEAD":
            continue
        text = entry["response"]["content"].get("text") or ""
        try:
            error = json.loads(text)["error"]
            ok = (type(error["code"]) is int and error["code"] == status
                  and isinstance(error["message"], str) and error["message"])
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            bad.append(f"{entry['request']['method']} {entry['request']['url']} -> {status}: "
                       f"{text[:200]}")
    assert not bad, "responses without the error envelope:\n" + "\n".join(bad[:10])


def statuses(entries: list[dict[str, Any]]) -> Counter[tuple[str, str, int]]:
    """(method, path template, status) of each request, the /api/v1 prefix dropped."""
    out: Counter[tuple[str, str, int]] = Counter()
    for entry in entries:
        path = entry["request"]["url"].split("/api/v1", 1)[1].split("?", 1)[0]
        path = re.sub(r"^/keys/.+", "/keys/{hash}", path)
        out[entry["request"]["method"], path, entry["response"]["status"]] += 1
    return out


def assert_reached(entries: list[dict[str, Any]], *wanted: tuple[str, str, int]) -> None:
    seen = statuses(entries)
    missing = [w for w in wanted if not seen[w]]
    assert not missing, f"never reached {missing}; saw {sorted(seen.items())}"


def test_openapi_contract_holds_under_fuzzing(live_server: LiveServer, tmp_path: Path) -> None:
    """Every operation but the management API's, with the inference key (SQLite)."""
    entries = fuzz(live_server, tmp_path, "--exclude-path-regex", MANAGEMENT_PATHS)
    # /generation reads the ids of embeddings the fuzzer made (an OpenAPI link).
    assert_reached(entries, ("POST", "/embeddings", 200), ("GET", "/generation", 200),
                   ("GET", "/generation", 404), ("GET", "/key", 200))


@pytest.fixture(scope="module", params=BACKENDS)
def own_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               onnx_cache_dir: Path) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("fuzz-accounts")
    config = data / "embedrouter.toml"
    config.write_text(SERVER_CONFIG)
    with backend_server(request.param, data, cache_dir=onnx_cache_dir, config=config) as (
            live, env):
        subprocess.run([sys.executable, "-m", "embedrouter", "credits", "add", "1",
                        "--data-dir", str(data), "--config", str(config)],
                       env={**os.environ, **env}, check=True, capture_output=True, timeout=60)
        yield live


def test_account_routes_hold_under_fuzzing(own_server: LiveServer, tmp_path: Path) -> None:
    """The account routes on each backend: first the inference key's (the management runs
    may disable or delete any key they list), then the management API."""
    inference = fuzz(own_server, tmp_path / "inference", "--include-path-regex",
                     INFERENCE_ACCOUNT_PATHS, max_examples=25)
    assert_reached(inference, ("GET", "/key", 200), ("GET", "/generation", 200))
    management = fuzz(own_server, tmp_path / "management", "--include-path-regex",
                      MANAGEMENT_PATHS, max_examples=40)
    # Stateful runs start from a list when there is one; without GET /keys they start from a
    # created key and follow its links (get, update, delete, then read after delete).
    lifecycle = fuzz(own_server, tmp_path / "lifecycle", "--phases", "stateful",
                     *[f"--include-operation-id={op}"
                       for op in ("createKeys", "getKey", "updateKeys", "deleteKeys")],
                     max_examples=40)
    assert_reached(management + lifecycle,
                   ("GET", "/credits", 200), ("GET", "/keys", 200), ("POST", "/keys", 201),
                   ("GET", "/keys/{hash}", 200), ("PATCH", "/keys/{hash}", 200),
                   ("DELETE", "/keys/{hash}", 200), ("GET", "/keys/{hash}", 404))
