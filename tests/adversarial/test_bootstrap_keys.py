"""Issue 8 item 8: first-start keys reach a terminal, never a redirected stdout or a log."""

from __future__ import annotations

import os
import pty
import re
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.live import LiveServer, read_keys_file

pytestmark = pytest.mark.adversarial

FULL_KEY = re.compile(r"sk-er-v1-[0-9a-f]{64}")


def test_redirected_stdout_never_carries_keys(live_server: LiveServer) -> None:
    # live_server's stdout and stderr are one pipe, as under systemd or `docker logs`.
    assert not FULL_KEY.search("".join(live_server.output))
    path = live_server.data_dir / "bootstrap-keys.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert any(str(path.resolve()) in line for line in live_server.output)
    keys = read_keys_file(path)
    assert keys["inference"] == live_server.api_key
    assert keys["management"] == live_server.management_key
    with httpx.Client(base_url=live_server.base_url, timeout=60) as client:
        r = client.post("/embeddings", headers={"authorization": f"Bearer {keys['inference']}"},
                        json={"model": "sentence-transformers/all-minilm-l6-v2", "input": "k"})
    assert r.status_code == 200, r.text


def test_a_terminal_gets_the_keys_printed_and_no_file(tmp_path: Path,
                                                      onnx_cache_dir: Path) -> None:
    controller, terminal = pty.openpty()
    env = {**os.environ, "EMBEDROUTER_CACHE_DIR": str(onnx_cache_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "embedrouter", "serve", "--port", "0",
                             "--data-dir", str(tmp_path)], stdout=terminal,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    os.close(terminal)
    seen = b""
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(FULL_KEY.findall(seen.decode())) < 2:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(controller, 4096)
                except OSError:  # the child closed the terminal
                    break
            if proc.poll() is not None:
                break
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        os.close(controller)
        assert proc.stderr is not None
        logged = proc.stderr.read().decode()
        proc.stderr.close()
    text = seen.decode()
    assert "management key" in text and "inference key" in text
    assert len(set(FULL_KEY.findall(text))) == 2
    assert not list(tmp_path.glob("bootstrap-keys*.txt"))
    assert not FULL_KEY.search(logged)
