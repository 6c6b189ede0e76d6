"""The guards' settings and the descriptor arithmetic, without a server."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from embedrouter.httpserver import effective_max_connections
from embedrouter.settings import SettingsError, load_settings


def _load(tmp_path: Path, text: str, **overrides: object):  # type: ignore[no-untyped-def]
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_settings(path, env={}, overrides=overrides)


def test_server_guard_keys_are_read(tmp_path: Path) -> None:
    s = _load(tmp_path, "[server]\nheader_timeout_s = 2.5\nbody_timeout_s = 30\n"
                        "keepalive_timeout_s = 1\nmax_connections = 64\n")
    assert (s.header_timeout_s, s.body_timeout_s, s.keepalive_timeout_s,
            s.max_connections) == (2.5, 30.0, 1.0, 64)


def test_server_guard_defaults(tmp_path: Path) -> None:
    s = _load(tmp_path, "")
    assert (s.header_timeout_s, s.body_timeout_s, s.keepalive_timeout_s,
            s.max_connections) == (10.0, 60.0, 5.0, 4096)


@pytest.mark.parametrize(("line", "key"), [
    ("header_timeout_s = 0", "server.header_timeout_s"),
    ("header_timeout_s = -1", "server.header_timeout_s"),
    ("body_timeout_s = 'ten'", "server.body_timeout_s"),
    ("keepalive_timeout_s = true", "server.keepalive_timeout_s"),
    ("keepalive_timeout_s = 100000", "server.keepalive_timeout_s"),
    ("max_connections = 0", "server.max_connections"),
    ("max_connections = 1.5", "server.max_connections"),
    ("port = 65536", "server.port"),
])
def test_bad_guard_values_are_refused_with_the_key(tmp_path: Path, line: str, key: str) -> None:
    with pytest.raises(SettingsError, match=key.replace(".", r"\.")):
        _load(tmp_path, f"[server]\n{line}\n")


def test_a_port_flag_over_65535_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="port"):
        _load(tmp_path, "", port=70000)


def test_connection_cap_leaves_descriptors_for_the_process() -> None:
    assert effective_max_connections(4096, 1_048_576, 96) == 4096
    assert effective_max_connections(4096, 200, 96) == 104
    assert effective_max_connections(4096, 50, 96) == 1
    assert effective_max_connections(10, None, 96) == 10


def test_soft_open_file_limit_is_raised_to_the_hard_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"needs a finite hard limit above 256 (have {hard})")
    code = ("import resource; from embedrouter.httpserver import raise_open_file_limit; "
            "print(raise_open_file_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])")

    def lower_soft() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, preexec_fn=lower_soft, check=True)
    assert out.stdout.split() == [str(hard), str(hard)]
