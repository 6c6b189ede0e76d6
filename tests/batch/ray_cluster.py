"""A local Ray cluster for one test module: `ray start --head --block` in its own session,
stopped by signalling that session's process group (never `ray stop`, which would end every
Ray process of the user on the machine)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

RAY_VENV = Path(__file__).resolve().parents[2] / ".venv-ray"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def local_cluster(cpus: int = 2, object_store_bytes: int = 300_000_000) -> Iterator[str]:
    """Yields the cluster's address once it accepts drivers."""
    port = _free_port()
    # Ray's unix socket paths must stay under ~107 bytes: a short temp dir.
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    cmd = [str(RAY_VENV / "bin" / "ray"), "start", "--head", "--block", f"--port={port}",
           f"--num-cpus={cpus}", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
           "--include-dashboard=false", f"--temp-dir={temp}",
           f"--object-store-memory={object_store_bytes}"]
    log = open(Path(temp) / "start.log", "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            log.seek(0)
            if re.search(r"Ray runtime started", log.read()):
                break
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"ray start exited {proc.returncode}: {log.read()[-2000:]}")
            time.sleep(0.5)
        else:
            raise RuntimeError("the Ray head did not start within 120 s")
        yield address
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()
