"""Hand the first-start keys to the operator without leaving them in a log.

A terminal is read by a person and scrolls away; a redirected stdout (systemd's journal,
``docker logs``, a file) is kept and often shipped elsewhere. So the keys are printed only to a
terminal; otherwise they go to a file in the data dir that only the owner can read, and the
log names that file, never the keys.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TextIO

log = logging.getLogger("embedrouter")

KEYS_FILE = "bootstrap-keys.txt"


def _lines(management: str, inference: str) -> str:
    return ("No keys found: created two. They are shown only now; store them safely.\n"
            f"  management key (admin endpoints): {management}\n"
            f"  inference key (POST /embeddings): {inference}\n")


def write_private_file(path: Path, text: str) -> None:
    """Create ``path`` readable and writable by the owner only; never reuse an existing file.

    O_EXCL also refuses a symlink planted at the path, so the keys cannot be redirected.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask can only remove bits; this states the result
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def announce_keys(management: str, inference: str, data_dir: Path, stdout: TextIO) -> Path | None:
    """Print the keys if ``stdout`` is a terminal, else write them to a private file.

    Returns the file's path, or None when the keys were printed.
    """
    if stdout.isatty():
        stdout.write(_lines(management, inference))
        stdout.flush()
        return None
    path = data_dir / KEYS_FILE
    if path.exists() or path.is_symlink():
        # An earlier database's file (a reset store, another backend): keep it, add a new one.
        path = data_dir / f"bootstrap-keys-{time.time_ns()}.txt"
    write_private_file(path, _lines(management, inference))
    log.warning("bootstrap keys written to %s (owner-only); read them, store them safely, then "
                "delete the file", path.resolve())
    return path
