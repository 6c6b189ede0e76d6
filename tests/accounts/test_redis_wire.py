"""The hot-path EVALSHA client against the real Redis: replies matched to their callers, scripts
reloaded after a flush, and a lost or silent connection failing its calls then recovering."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from embedrouter.accounts.redis_wire import Script, ScriptClient, _pack_any, pack
from tests.support.redis_scratch import REDIS_URL, scratch_prefix

# A script unique to this test run, so flushing or loading it says nothing about other scripts.
ECHO = Script(f"-- {secrets.token_hex(8)}\n"
              "redis.call('SET', KEYS[1], ARGV[1])\n"
              "return {tonumber(ARGV[2]) * 2, redis.call('GET', KEYS[1])}")
SLEEP = Script("""
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
while true do
  local n = redis.call('TIME')
  if n[1] * 1000000 + n[2] - start > 300000 then return 1 end
end
""")


@pytest.fixture
def prefix() -> Iterator[str]:
    with scratch_prefix() as p:
        yield p


@pytest.fixture
async def client() -> AsyncIterator[ScriptClient]:
    c = ScriptClient(REDIS_URL)
    yield c
    await c.close()


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    client.close()


def test_pack_writes_resp_bulk_strings() -> None:
    assert pack(["EVALSHA", b"ab", 2, "é", 1.5]) == (
        b"*5\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n2\r\n$2\r\n\xc3\xa9\r\n$3\r\n1.5\r\n")
    with pytest.raises(TypeError):
        pack([True])
    with pytest.raises(TypeError):
        pack(["ok", 1, None])


@given(st.lists(st.one_of(st.integers(min_value=-2**70, max_value=2**70), st.text(max_size=20),
                          st.binary(max_size=8), st.floats(allow_nan=False)), max_size=12))
def test_the_fast_path_packs_as_the_general_one(args: list[Any]) -> None:
    # ASCII strings and ints take one path, anything else (bytes, UTF-8, floats) the other;
    # a Redis server must not be able to tell which.
    assert pack(args) == _pack_any(args)
    assert pack([a for a in args if isinstance(a, int) or (isinstance(a, str) and a.isascii())]
                ) == _pack_any([a for a in args
                                if isinstance(a, int) or (isinstance(a, str) and a.isascii())])


async def test_a_call_returns_the_script_reply(client: ScriptClient, prefix: str,
                                               raw: redis.Redis) -> None:
    assert await client.evalsha(ECHO, [f"{prefix}a"], ["hello", 21]) == [42, "hello"]
    assert raw.get(f"{prefix}a") == "hello"


async def test_a_flushed_script_is_loaded_again(client: ScriptClient, prefix: str,
                                                raw: redis.Redis) -> None:
    await client.evalsha(ECHO, [f"{prefix}a"], ["x", 1])
    raw.script_flush()
    assert raw.script_exists(ECHO.sha) == [False]
    assert await client.evalsha(ECHO, [f"{prefix}a"], ["y", 2]) == [4, "y"]


async def test_concurrent_calls_each_get_their_own_reply(client: ScriptClient, prefix: str) -> None:
    replies = await asyncio.gather(*(
        client.evalsha(ECHO, [f"{prefix}k{i}"], [f"v{i}", i]) for i in range(32)))
    assert replies == [[2 * i, f"v{i}"] for i in range(32)]


async def test_a_script_error_is_a_response_error_and_the_connection_stays(
        client: ScriptClient, prefix: str) -> None:
    bad = Script("return redis.call('HINCRBY', KEYS[1], 'f', 'not a number')")
    with pytest.raises(redis.ResponseError):
        await client.evalsha(bad, [f"{prefix}h"], [])
    assert await client.evalsha(ECHO, [f"{prefix}a"], ["z", 3]) == [6, "z"]


async def test_a_connection_killed_by_the_server_fails_then_recovers(
        client: ScriptClient, prefix: str, raw: redis.Redis) -> None:
    await client.evalsha(ECHO, [f"{prefix}a"], ["x", 1])
    conn = client._conn
    assert conn is not None and conn.transport is not None
    port = conn.transport.get_extra_info("sockname")[1]
    assert raw.client_kill_filter(addr=f"127.0.0.1:{port}") == 1
    with pytest.raises(redis.ConnectionError):
        for _ in range(50):  # the kill reaches this loop a moment later
            await client.evalsha(ECHO, [f"{prefix}a"], ["x", 1])
            await asyncio.sleep(0.01)
    assert await client.evalsha(ECHO, [f"{prefix}a"], ["again", 5]) == [10, "again"]


async def test_a_call_past_its_timeout_fails_every_pending_call_then_recovers(
        prefix: str, raw: redis.Redis) -> None:
    client = ScriptClient(REDIS_URL, timeout_s=0.1)
    for script in (SLEEP, ECHO):  # loaded, so the queued call is sent behind the slow one
        raw.script_load(script.source)
    try:
        slow = asyncio.ensure_future(client.evalsha(SLEEP, [], []))
        await asyncio.sleep(0)
        queued = asyncio.ensure_future(client.evalsha(ECHO, [f"{prefix}a"], ["q", 1]))
        with pytest.raises(redis.TimeoutError):
            await slow
        with pytest.raises(redis.TimeoutError):
            await queued  # its reply would come after the slow one's: it cannot be trusted
        await asyncio.sleep(0.4)  # Redis finishes the slow script
        assert await client.evalsha(ECHO, [f"{prefix}a"], ["after", 4]) == [8, "after"]
    finally:
        await client.close()


async def test_a_late_call_behind_answered_ones_still_times_out(
        prefix: str, raw: redis.Redis) -> None:
    # One timer watches the oldest pending call: when it fires for a call answered since, it
    # must go on to watch the next one rather than stop.
    client = ScriptClient(REDIS_URL, timeout_s=0.2)
    for script in (SLEEP, ECHO):
        raw.script_load(script.source)
    try:
        assert await client.evalsha(ECHO, [f"{prefix}a"], ["one", 2]) == [4, "one"]
        await asyncio.sleep(0.1)  # the timer armed for the first call fires in the next 0.1 s
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            await client.evalsha(SLEEP, [], [])
        assert 0.15 < time.monotonic() - started < 0.3 + 0.1  # its own deadline, not the first's
        await asyncio.sleep(0.4)  # Redis finishes the slow script
        assert await client.evalsha(ECHO, [f"{prefix}a"], ["two", 3]) == [6, "two"]
    finally:
        await client.close()


async def test_a_cancelled_call_does_not_shift_the_replies(client: ScriptClient,
                                                           prefix: str) -> None:
    first = asyncio.ensure_future(client.evalsha(ECHO, [f"{prefix}a"], ["one", 1]))
    second = asyncio.ensure_future(client.evalsha(ECHO, [f"{prefix}b"], ["two", 2]))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == [4, "two"]
    assert await client.evalsha(ECHO, [f"{prefix}c"], ["three", 3]) == [6, "three"]


async def test_an_unreachable_server_is_a_connection_error() -> None:
    client = ScriptClient("redis://127.0.0.1:1/0", timeout_s=1.0)
    try:
        with pytest.raises(redis.ConnectionError):
            await client.evalsha(ECHO, ["k"], ["v", 1])
    finally:
        await client.close()


async def test_auth_and_db_from_the_url_are_sent(prefix: str, raw: redis.Redis) -> None:
    # The local server has no password: a wrong one must fail the connect, not be skipped.
    client = ScriptClient(REDIS_URL.rsplit("/", 1)[0].replace("redis://", "redis://u:p@") + "/0")
    try:
        with pytest.raises(redis.ConnectionError):
            await client.evalsha(ECHO, [f"{prefix}a"], ["x", 1])
    finally:
        await client.close()
    client = ScriptClient(REDIS_URL.rsplit("/", 1)[0] + "/3")
    other = redis.Redis.from_url(REDIS_URL.rsplit("/", 1)[0] + "/3", decode_responses=True)
    try:
        await client.evalsha(ECHO, [f"{prefix}db3"], ["in3", 1])
        assert other.get(f"{prefix}db3") == "in3"
        assert raw.get(f"{prefix}db3") is None
    finally:
        other.delete(f"{prefix}db3")
        other.close()
        await client.close()


def test_under_uvloop_as_the_server_runs_it(prefix: str) -> None:
    # uvloop's transports are not asyncio's classes: the client must not depend on them.
    import uvloop

    async def run() -> list[object]:
        client = ScriptClient(REDIS_URL)
        try:
            return list(await asyncio.gather(*(
                client.evalsha(ECHO, [f"{prefix}u{i}"], [f"u{i}", i]) for i in range(32))))
        finally:
            await client.close()

    assert uvloop.run(run()) == [[2 * i, f"u{i}"] for i in range(32)]


@pytest.fixture(scope="module")
def private_redis() -> Iterator[tuple[str, str]]:
    """A throwaway redis-server with a password, a unix socket and TLS (self-signed): the
    shared server has none of them. Yields the unix:// and rediss:// URLs."""
    exe = shutil.which("redis-server")
    if exe is None or shutil.which("openssl") is None:
        pytest.skip("redis-server and openssl are needed for the unix:// and rediss:// cases")
    tmp = Path(tempfile.mkdtemp(prefix="erw", dir="/tmp"))  # a unix socket path must be short
    crt, key, sock = tmp / "c.pem", tmp / "k.pem", tmp / "r.sock"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(crt), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp / "redis.log"
    proc = subprocess.Popen(
        [exe, "--port", "0", "--unixsocket", str(sock), "--requirepass", "pw", "--save", "",
         "--appendonly", "no", "--tls-port", str(port), "--tls-cert-file", str(crt),
         "--tls-key-file", str(key), "--tls-ca-cert-file", str(crt), "--tls-auth-clients", "no",
         "--logfile", str(log)])
    try:
        for _ in range(100):
            if sock.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        if not sock.exists():
            proc.kill()
            tail = log.read_text()[-500:] if log.exists() else ""
            pytest.skip(f"redis-server did not start: {tail!r}")
        yield (f"unix://:pw@{sock}?db=2",
               f"rediss://:pw@localhost:{port}/2?ssl_ca_certs={crt}")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("scheme", ["unix", "rediss"])
async def test_unix_and_tls_urls_with_a_password_and_a_db(
        private_redis: tuple[str, str], scheme: str) -> None:
    url = private_redis[0] if scheme == "unix" else private_redis[1]
    client = ScriptClient(url)
    try:
        assert await client.evalsha(ECHO, [f"{scheme}-k"], ["v", 7]) == [14, "v"]
    finally:
        await client.close()
    check = redis.Redis.from_url(url, decode_responses=True)
    try:
        assert check.get(f"{scheme}-k") == "v"  # in db 2, where redis-py reads it too
    finally:
        check.close()
    wrong = ScriptClient(url.replace(":pw@", ":nope@"))
    try:
        with pytest.raises(redis.ConnectionError):
            await wrong.evalsha(ECHO, [f"{scheme}-k"], ["v", 7])
    finally:
        await wrong.close()
