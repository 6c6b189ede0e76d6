"""The SDK installed alone (httpx only: no numpy, no server extras) still works."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.live import LiveServer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import importlib.util, sys
    assert importlib.util.find_spec("numpy") is None, "numpy must be absent here"
    assert importlib.util.find_spec("onnxruntime") is None
    from embedrouter import EmbedRouter
    from embedrouter.sdk import embeddings_generate, EmbedRouterCore, errors
    assert "embedrouter.api" not in sys.modules and "embedrouter.engine" not in sys.modules
    url, key = sys.argv[1], sys.argv[2]
    with EmbedRouter(api_key=key, server_url=url) as client:
        res = client.embeddings.generate(input=["hi", "there"],
                                         model="sentence-transformers/all-minilm-l6-v2")
        assert len(res.data) == 2 and len(res.data[1].embedding) == 384
        try:
            res.to_numpy()
        except ImportError as exc:
            assert "embedrouter[numpy]" in str(exc)
        else:
            raise AssertionError("to_numpy without numpy must say how to install it")
    bad = embeddings_generate(EmbedRouterCore(api_key="nope", server_url=url),
                              {"input": "x", "model": "sentence-transformers/all-minilm-l6-v2"})
    assert isinstance(bad.error, errors.UnauthorizedResponseError)
    print("sdk-only-ok")
""")


def test_sdk_without_server_dependencies(tmp_path: Path, live_server: LiveServer) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
           "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", str(REPO)], check=True, timeout=300)
    subprocess.run([*pip, "httpx>=0.27"], check=True, timeout=300)
    script = tmp_path / "use_sdk.py"
    script.write_text(SCRIPT)
    out = subprocess.run([str(venv / "bin" / "python"), str(script), live_server.base_url,
                          live_server.api_key], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "sdk-only-ok"
