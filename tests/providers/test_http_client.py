"""The pooled HTTP/1.1 client against raw asyncio servers that misbehave on purpose: keep-alive
reuse, an upstream closing idle connections, chunked and close-delimited bodies, interim replies,
compressed replies and bombs, oversized replies, deadlines, cancelled callers and TLS."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from embedrouter.providers.http import HttpClient
from embedrouter.providers.openai_compat import OpenAICompatAdapter
from embedrouter.providers.upstream import (
    REPLY_BYTES_FIXED,
    AttemptFailure,
    ProviderConfig,
    UpstreamCall,
    reply_limit,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
BODY = b'{"input": "x"}'


class Server:
    """A raw server on 127.0.0.1 whose handler writes whatever bytes a test wants."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        """One request's head and body (Content-Length bodies only, as the client sends)."""
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ssl_context)
        port = self.server.sockets[0].getsockname()[1]
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}/v1/embeddings"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


def reply(body: bytes, *headers: bytes, status: bytes = b"200 OK") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\n" + b"".join(h + b"\r\n" for h in headers)
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    c = HttpClient()
    yield c
    await c.close()


async def serving(handler: Handler) -> tuple[Server, str]:
    server = Server(handler)
    return server, await server.start()


async def post(client: HttpClient, url: str, **kw: object):
    return await client.post(url, headers={"authorization": "Bearer k"}, body=BODY,
                             timeout=kw.pop("timeout", 5.0), provider="fake", **kw)  # type: ignore[arg-type]


async def test_keep_alive_connections_are_reused(client: HttpClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            writer.write(reply(b'{"ok": 1}', b"Content-Type: application/json"))

    server, url = await serving(handler)
    for _ in range(20):
        got = await post(client, url)
        assert (got.status, got.body) == (200, b'{"ok": 1}')
        assert got.headers["content-type"] == "application/json"
    assert server.connections == 1
    head = server.requests[0].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"POST /v1/embeddings HTTP/1.1"
    assert b"authorization: Bearer k" in head and b"Content-Length: %d" % len(BODY) in head
    assert all(r.endswith(BODY) for r in server.requests)
    # Concurrent calls each take a connection of their own, and give it back.
    await asyncio.gather(*(post(client, url) for _ in range(8)))
    assert server.connections == 8
    await asyncio.gather(*(post(client, url) for _ in range(8)))
    assert server.connections == 8
    await server.stop()


async def test_connection_close_reply_is_not_reused(client: HttpClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(reply(b"{}", b"Connection: close"))
        await writer.drain()

    server, url = await serving(handler)
    for _ in range(3):
        assert (await post(client, url)).status == 200
    assert server.connections == 3
    await server.stop()


async def test_idle_connection_closed_by_upstream_is_retried_once(client: HttpClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(reply(b"{}"))  # keep-alive, but the server forgets the connection
        await writer.drain()
        await asyncio.sleep(0.05)
        # closed here (the finally in _serve): the client's idle connection is now dead

    server, url = await serving(handler)
    assert (await post(client, url)).status == 200
    await asyncio.sleep(0.2)
    assert (await post(client, url)).status == 200
    assert server.connections == 2


async def test_reused_connection_closed_before_replying_is_retried(client: HttpClient) -> None:
    """The keep-alive race: the upstream closes a connection just as it is reused, without a
    byte of reply. The call goes again on a fresh connection, once."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = server.connections == 1
        await server.read_request(reader)
        writer.write(reply(b'{"n": 1}'))
        if first:
            await server.read_request(reader)  # read, then gone without a reply

    server, url = await serving(handler)
    assert (await post(client, url)).body == b'{"n": 1}'
    assert (await post(client, url)).body == b'{"n": 1}'
    assert server.connections == 2 and len(server.requests) == 3


async def test_reused_connection_dropped_mid_reply_is_not_retried(client: HttpClient) -> None:
    calls = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal calls
        while True:
            await server.read_request(reader)
            calls += 1
            if calls == 2:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial")
                await writer.drain()
                return
            writer.write(reply(b"{}"))

    server, url = await serving(handler)
    await post(client, url)
    with pytest.raises(AttemptFailure) as info:
        await post(client, url)
    assert info.value.kind == "connection" and "mid-reply" in info.value.message
    assert calls == 2  # sent once: a reply had begun, so the upstream did read it


async def test_chunked_and_close_delimited_bodies(client: HttpClient) -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")

    server, url = await serving(chunked)
    assert (await post(client, url)).body == b"hello world"
    assert (await post(client, url)).body == b"hello world"
    assert server.connections == 1

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await other.read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\": 1}")
        await writer.drain()

    other, url2 = await serving(until_close)
    assert (await post(client, url2)).body == b'{"a": 1}'
    assert (await post(client, url2)).body == b'{"a": 1}'
    assert other.connections == 2


async def test_interim_reply_is_skipped(client: HttpClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + reply(b"{}", status=b"201 Created"))
        await writer.drain()

    server, url = await serving(handler)
    got = await post(client, url)
    assert (got.status, got.body) == (201, b"{}")


async def test_gzip_reply_is_decoded_and_a_bomb_is_bounded(client: HttpClient) -> None:
    payload = b'{"data": [' + b"0.125," * 1000 + b"1]}"
    packed = gzip.compress(payload)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            writer.write(reply(packed, b"Content-Encoding: gzip"))

    server, url = await serving(handler)
    assert (await post(client, url)).body == payload
    with pytest.raises(AttemptFailure) as info:
        await post(client, url, max_bytes=len(packed) + 100)  # fits packed, not unpacked
    assert info.value.kind == "invalid_reply" and "decompressed" in info.value.message


@pytest.mark.parametrize("declared", [True, False])
async def test_oversized_reply_is_refused_and_dropped(client: HttpClient, declared: bool
                                                      ) -> None:
    big = b"x" * 50_000

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        if declared:
            writer.write(reply(big))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(50):
                writer.write(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    server, url = await serving(handler)
    with pytest.raises(AttemptFailure) as info:
        await post(client, url, max_bytes=10_000)
    assert info.value.kind == "invalid_reply" and "limit" in info.value.message
    assert not client._idle.get(next(iter(client._targets.values()))[0])


async def test_an_adapter_bounds_the_reply_by_what_its_call_can_produce(client: HttpClient
                                                                         ) -> None:
    """A reply to a one-input call may not be hundreds of megabytes: the bound follows the
    number of inputs sent, far below the client's own 256 MiB."""
    big = b'{"data": [{"index": 0, "embedding": "' + b"A" * reply_limit(1) + b'"}]}'

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(reply(big))
        await writer.drain()

    server, url = await serving(handler)
    config = ProviderConfig(name="up", kind="openai", base_url=url.rsplit("/", 1)[0],
                            api_key="k", display_name="Up", timeout_s=5, options={})
    adapter = OpenAICompatAdapter(config, client)
    with pytest.raises(AttemptFailure) as info:
        await adapter.embed(UpstreamCall(inputs=["x"], upstream_model="m"))
    assert info.value.kind == "invalid_reply" and "limit" in info.value.message
    assert reply_limit(1) < reply_limit(100) and reply_limit(0) > REPLY_BYTES_FIXED


async def test_malformed_reply_is_a_connection_failure(client: HttpClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"SPDY/9 what\r\n\r\n")
        await writer.drain()

    server, url = await serving(handler)
    with pytest.raises(AttemptFailure) as info:
        await post(client, url)
    assert info.value.kind == "connection" and "malformed" in info.value.message


async def test_deadline_and_refused_connection(client: HttpClient) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        await asyncio.sleep(5)

    server, url = await serving(silent)
    with pytest.raises(AttemptFailure) as info:
        await post(client, url, timeout=0.2)
    assert info.value.kind == "timeout"
    await server.stop()
    port = url.split(":")[2].split("/")[0]
    with pytest.raises(AttemptFailure) as info:
        await post(client, f"http://127.0.0.1:{port}/v1/embeddings")
    assert info.value.kind == "connection"
    assert "127.0.0.1" not in info.value.message and "Bearer" not in info.value.message


async def test_cancelled_caller_leaves_no_half_read_connection(client: HttpClient) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            await asyncio.sleep(0.3)
            writer.write(reply(b'{"late": true}'))

    server, url = await serving(handler)
    task = asyncio.ensure_future(post(client, url))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The late reply of the cancelled call must not be read as this call's.
    got = await post(client, url)
    assert got.body == b'{"late": true}' and server.connections == 2


async def test_header_with_line_break_is_refused(client: HttpClient) -> None:
    server, url = await serving(lambda r, w: asyncio.sleep(0))
    with pytest.raises(AttemptFailure) as info:
        await client.post(url, headers={"authorization": "Bearer k\r\nX-Evil: 1"}, body=BODY,
                          timeout=1, provider="fake")
    assert info.value.kind == "auth" and "k\r\n" not in info.value.message
    assert server.requests == []


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


async def test_tls_upstream(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            writer.write(reply(b'{"secure": true}'))

    server = Server(handler)
    url = await server.start(server_ctx)
    trusting = HttpClient(ssl_context=ssl.create_default_context(cafile=str(cert)))
    try:
        for _ in range(3):
            assert (await post(trusting, url)).body == b'{"secure": true}'
        assert server.connections == 1
    finally:
        await trusting.close()
    # The system's trust store does not know this certificate: refused, never sent.
    default = HttpClient()
    try:
        with pytest.raises(AttemptFailure) as info:
            await post(default, url)
        assert info.value.kind == "connection"
        assert len(server.requests) == 3
    finally:
        await default.close()
    await server.stop()
