"""The real `@openrouter/sdk` under Node.js, driven by tests/node/check.mjs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.live import LiveServer

pytestmark = pytest.mark.slow

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def test_openrouter_typescript_sdk(live_server: LiveServer) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the @openrouter/sdk checks need Node.js")
    assert (NODE_DIR / "node_modules" / "@openrouter" / "sdk").is_dir(), (
        "run `npm ci` in tests/node (scripts/test.sh does)")
    out = subprocess.run([node, "check.mjs", live_server.base_url, live_server.api_key],
                         cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)

    assert report["generate"]["dims"] == 384
    assert report["generate"]["count"] == 2
    assert report["generate"]["promptTokens"] == 6
    assert report["standaloneOk"] == {"ok": True, "count": 1, "dims": 384}
    failed = report["standaloneError"]
    assert failed["ok"] is False
    assert failed["name"] == "BadRequestResponseError"
    assert failed["statusCode"] == 400
    assert "Input must not be empty" in failed["message"]
    assert report["unauthorized"]["ok"] is False
    assert report["unauthorized"]["statusCode"] == 401
    assert report["listModels"] == ["sentence-transformers/all-minilm-l6-v2"]
