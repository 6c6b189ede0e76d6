"""The same server on PostgreSQL: bootstrap, auth and key disabling through a shared database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.api.conftest import DEFAULT_MODEL
from tests.store.backends import pg_url  # noqa: F401  (fixture: a scratch PostgreSQL schema)
from tests.support.live import start_server


async def test_server_on_postgresql(pg_url: str, tmp_path: Path,  # noqa: F811
                                    onnx_cache_dir: Path) -> None:
    env = {"EMBEDROUTER_DATABASE_URL": pg_url}
    server = start_server(tmp_path / "a", cache_dir=onnx_cache_dir, env=env)
    try:
        url = f"{server.base_url}/embeddings"
        auth = {"authorization": f"Bearer {server.api_key}"}
        body = {"model": DEFAULT_MODEL, "input": ["on postgres"]}
        assert httpx.post(url, json=body, headers=auth).status_code == 200

        # A second instance on the same database sees the same keys and prints none of its own.
        cmd = [sys.executable, "-m", "embedrouter", "keys", "disable", server.api_key,
               "--data-dir", str(tmp_path / "b")]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                             env={**os.environ, **env})
        assert out.returncode == 0, out.stderr
        resp = httpx.post(url, json=body, headers=auth)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == 401
    finally:
        server.stop()
    assert not (tmp_path / "a" / "embedrouter.db").exists()  # nothing went to SQLite
