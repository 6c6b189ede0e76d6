"""Issue 8 item 7: every CLI command given bad input says `embedrouter: <message>` (or argparse's
usage error) and exits non-zero; none prints a traceback."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.adversarial


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "embedrouter", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})},
                          stdin=subprocess.DEVNULL)


def assert_clean_failure(out: subprocess.CompletedProcess[str], fragment: str) -> None:
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "Traceback" not in text, text
    first = out.stderr.strip().splitlines()[0] if out.stderr.strip() else ""
    assert first.startswith(("embedrouter: ", "usage: ")), out.stderr
    assert fragment in out.stderr, out.stderr


def _bad_inputs(tmp: Path, a_file: Path) -> list[tuple[list[str], str]]:
    d = ["--data-dir", str(tmp / "data")]
    return [
        (["keys", "create", "--label", "", *d], "label: must not be empty"),
        (["keys", "create", "--label", "   ", *d], "label: must not be empty"),
        (["keys", "create", "--label", "x" * 201, *d], "at most 200"),
        (["keys", "create", *d], "--label"),
        (["keys", "create", "--label", "ok", "--data-dir", str(a_file)], "File exists"),
        (["keys", "create", "--label", "ok", "--config", str(tmp / "missing.toml"), *d],
         "does not exist"),
        (["keys", "list", "--data-dir", str(a_file / "sub")], "Not a directory"),
        (["keys", "list", "--bogus", *d], "unrecognized"),
        (["keys", "disable", "zz", *d], "hash"),
        (["keys", "disable", "0" * 64, *d], "No key matches"),
        (["keys", "disable", "sk-er-v1-short", *d], "Invalid API key format"),
        (["keys"], "keys_cmd"),
        (["serve", "--port", "70000", *d], "port"),
        (["serve", "--port", "-5", *d], "port"),
        (["serve", "--port", "eighty", *d], "invalid int"),
        (["serve", "--port", "0", "--data-dir", str(a_file)], "File exists"),
        (["embed", "x", "--model", "nobody/nothing", *d], "nobody/nothing"),
        (["embed", "x", "--dimensions", "-3", *d], "dimensions"),
        (["embed", "x", "--encoding-format", "hex", *d], "invalid choice"),
        (["embed", *d], "text"),
        (["providers", "--config", str(tmp / "missing.toml"), *d], "does not exist"),
        (["providers", "--config", str(_bad_provider(tmp)), *d], "providers[0].timeout_s"),
        (["providers", "--bogus", *d], "unrecognized"),
        (["nonsense"], "invalid choice"),
    ]


def _bad_provider(tmp: Path) -> Path:
    path = tmp / "bad-provider.toml"
    path.write_text('[[providers]]\nname = "x"\nkind = "openai"\nbase_url = "http://h"\n'
                    'timeout_s = "soon"\n')
    return path


def test_every_command_fails_cleanly_on_bad_input(tmp_path: Path, onnx_cache_dir: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    env = {"EMBEDROUTER_CACHE_DIR": str(onnx_cache_dir)}
    failures = []
    for args, fragment in _bad_inputs(tmp_path, a_file):
        out = run(*args, env=env)
        try:
            assert_clean_failure(out, fragment)
        except AssertionError as exc:
            failures.append(f"{args[:3]}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_serve_on_a_port_in_use_fails_without_a_traceback(tmp_path: Path,
                                                          onnx_cache_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "EMBEDROUTER_CACHE_DIR": str(onnx_cache_dir)}
        out = subprocess.run([sys.executable, "-m", "embedrouter", "serve", "--port", str(port),
                              "--data-dir", str(tmp_path)], capture_output=True, text=True,
                             timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert out.returncode != 0
    assert "Traceback" not in out.stdout + out.stderr
    assert "address already in use" in out.stderr


def test_keys_create_on_a_store_locked_by_another_process(tmp_path: Path) -> None:
    assert run("keys", "create", "--label", "first", "--data-dir", str(tmp_path)).returncode == 0
    holder = sqlite3.connect(tmp_path / "embedrouter.db", isolation_level=None, timeout=1)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        out = run("keys", "create", "--label", "second", "--data-dir", str(tmp_path))
        took = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_clean_failure(out, "locked")
    assert "unavailable" in out.stderr
    assert took < 30  # the store's busy timeout (5 s) plus start-up, not a hang
