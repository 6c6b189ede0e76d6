"""Accept-Encoding negotiation and the gzip encoder, without a server."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from embedrouter.api import compress


@pytest.mark.parametrize(("header", "expected"), [
    (None, None),
    ("", None),
    ("gzip", "gzip"),
    ("gzip, deflate", "gzip"),
    ("gzip, deflate, br, zstd", "gzip"),
    ("GZIP;Q=1.0", "gzip"),
    ("x-gzip", "gzip"),
    ("*", "gzip"),
    ("*;q=0.5", "gzip"),
    ("gzip;q=0", None),
    ("gzip;q=0.000", None),
    ("*;q=0", None),
    ("gzip;q=0, *", None),
    ("identity", None),
    ("br, zstd", None),
    ("deflate", None),
    ("gzip;q=0.5, identity", None),
    ("gzip;q=0.5, identity;q=0.4", "gzip"),
    ("identity;q=0, gzip;q=0.2", "gzip"),
    ("gzip;q=0.5, *;q=0.9", None),  # "*" covers identity, which it prefers
    ("gzip;q=bogus", None),
    ("gzip;q=bogus, *", "gzip"),
    (" , ,gzip ; q=1 ,", "gzip"),
])
def test_choose(header: str | None, expected: str | None) -> None:
    assert compress.choose(header) == expected


def test_accepted_reads_q_values() -> None:
    assert compress.accepted("gzip;q=0.3, br;level=5, *;q=0") == {"gzip": 0.3, "br": 1.0,
                                                                   "*": 0.0}
    assert compress.accepted("gzip;q=7") == {"gzip": 1.0}


def test_gzip_bytes_round_trip_and_are_deterministic() -> None:
    body = b'{"embedding":[0.0123,-0.0456]}' * 1000
    out = compress.gzip_bytes(body)
    assert out[:2] == b"\x1f\x8b" and gzip.decompress(out) == body
    assert out == compress.gzip_bytes(body)
    assert len(out) < len(body) / 10


async def test_encode_thresholds() -> None:
    small = b"x" * (compress.MIN_BYTES - 1)
    assert await compress.encode(small, "gzip") == (small, None)
    big = b"y" * compress.MIN_BYTES
    out, coding = await compress.encode(big, "gzip")
    assert coding == "gzip" and gzip.decompress(out) == big
    assert await compress.encode(big, "identity") == (big, None)
    assert await compress.encode(big, None) == (big, None)


async def test_large_bodies_are_compressed_off_the_event_loop() -> None:
    # ~5 MB of float-like JSON takes tens of milliseconds; a loop that kept running meanwhile
    # proves the work happened on another thread.
    body = b"".join(b"%.8f," % (i * 0.000731 % 1) for i in range(450_000))
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = ticks
    out, coding = await compress.encode(body, "gzip")
    done = True
    await task
    assert coding == "gzip" and gzip.decompress(out) == body
    assert ticks - start > 10
