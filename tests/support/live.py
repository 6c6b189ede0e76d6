"""Start a real `embedrouter serve` process on a free port and tear it down."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

READY = re.compile(r"ready on (http://[^\s]+/api/v1)")
KEY_LINE = re.compile(r"(management|inference) key[^:]*: (sk-er-v1-[0-9a-f]+)")
# stdout is a pipe here, so the server writes its first-start keys to a file and logs its path.
KEYS_FILE_LINE = re.compile(r"bootstrap keys written to (\S+)")


def read_keys_file(path: Path) -> dict[str, str]:
    """The keys in a bootstrap-keys file, by kind."""
    return {m.group(1): m.group(2) for m in KEY_LINE.finditer(path.read_text())}


@dataclass
class LiveServer:
    base_url: str
    api_key: str
    management_key: str
    data_dir: Path
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/api/v1")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _drain(stream, sink: list[str]) -> None:  # type: ignore[no-untyped-def]
    for line in stream:
        sink.append(line)


def start_server(
    data_dir: Path,
    *,
    cache_dir: Path | None = None,
    config: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
    preexec_fn: Callable[[], None] | None = None,
    announces_keys: bool = True,
) -> LiveServer:
    """Launch the CLI exactly as a user would and wait for its ready line.

    ``announces_keys=False``: a later instance on a database that already has keys (it prints
    none; its LiveServer carries empty keys).
    """
    cmd = [sys.executable, "-m", "embedrouter", "serve", "--port", "0", "--data-dir",
           str(data_dir)]
    if config is not None:
        cmd += ["--config", str(config)]
    full_env = {**os.environ, **(env or {})}
    if cache_dir is not None:
        full_env["EMBEDROUTER_CACHE_DIR"] = str(cache_dir)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=full_env, preexec_fn=preexec_fn)
    lines: list[str] = []
    threading.Thread(target=_drain, args=(proc.stdout, lines), daemon=True).start()
    deadline = time.monotonic() + timeout
    keys: dict[str, str] = {}
    while time.monotonic() < deadline:
        for line in list(lines):
            if m := KEY_LINE.search(line):
                keys[m.group(1)] = m.group(2)
            if m := KEYS_FILE_LINE.search(line):
                keys.update(read_keys_file(Path(m.group(1))))
            if m := READY.search(line):
                if not announces_keys:
                    return LiveServer(m.group(1), "", "", data_dir, proc, lines)
                if "inference" not in keys:
                    proc.terminate()
                    raise RuntimeError("server started without announcing bootstrap keys")
                return LiveServer(m.group(1), keys["inference"], keys["management"], data_dir,
                                  proc, lines)
        if proc.poll() is not None:
            raise RuntimeError("server exited early:\n" + "".join(lines))
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server not ready in time:\n" + "".join(lines))
