"""GET / and its assets from a real `embedrouter serve`: types, caching, compression, errors."""

from __future__ import annotations

import fnmatch
import gzip
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from embedrouter.api import compress, static
from tests.support.live import LiveServer

SHIPPED = Path(__file__).resolve().parents[2] / "src" / "embedrouter" / "api" / "playground"


@pytest.fixture(scope="module")
def web(live_server: LiveServer) -> httpx.Client:
    # No key: the page and its files are public.
    with httpx.Client(base_url=live_server.root, timeout=30) as c:
        yield c


def referenced(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(playground/[^"]+)"', html)


def test_page_is_html_revalidated_and_locked_down(web: httpx.Client) -> None:
    resp = web.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    assert resp.headers["cache-control"] == "no-cache"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"
    csp = resp.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert '<div id="root">' in resp.text
    assert resp.content == (SHIPPED / "index.html").read_bytes()
    assert sorted(Path(p).suffix for p in referenced(resp.text)) == [".css", ".js"]


def test_assets_are_typed_immutable_and_gzipped_once(web: httpx.Client) -> None:
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    for path in referenced(web.get("/").text):
        on_disk = (SHIPPED / Path(path).name).read_bytes()
        plain = web.get(f"/{path}", headers={"accept-encoding": "identity"})
        assert plain.status_code == 200
        assert plain.headers["content-type"] == types[Path(path).suffix]
        assert plain.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert "content-encoding" not in plain.headers
        assert plain.content == on_disk
        for _ in range(2):  # the second answer comes from the kept gzip copy
            packed = web.get(f"/{path}", headers={"accept-encoding": "gzip"})
            assert packed.headers["vary"] == "accept-encoding"
            assert packed.content == on_disk  # httpx decoded it
            if len(on_disk) >= compress.MIN_BYTES:
                assert packed.headers["content-encoding"] == "gzip"
                assert int(packed.headers["content-length"]) < len(on_disk) // 2
            else:
                assert "content-encoding" not in packed.headers


def test_every_shipped_file_is_served(web: httpx.Client) -> None:
    for file in SHIPPED.iterdir():
        path = "/" if file.name == "index.html" else f"/playground/{file.name}"
        assert web.get(path).content == file.read_bytes(), path


def test_head_and_wrong_method_and_unknown_asset(web: httpx.Client) -> None:
    head = web.head("/")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == "text/html; charset=utf-8"
    post = web.post("/", content=b"x")
    assert post.status_code == 405
    assert post.headers["content-type"] == "application/json"
    assert post.json()["error"]["code"] == 405
    missing = web.get("/playground/app-NOPE.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == 404
    assert missing.headers["content-type"] == "application/json"


def test_api_routes_keep_json(web: httpx.Client) -> None:
    resp = web.get("/api/v1/embeddings/models")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"


def test_load_assets_skips_unknown_types_and_missing_dirs(tmp_path: Path) -> None:
    assert static.load_assets(tmp_path / "absent") == {}
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "app-X.js").write_text("1")
    (tmp_path / "notes.md").write_text("not served")
    assets = static.load_assets(tmp_path)
    assert sorted(assets) == ["/", "/playground/app-X.js"]
    assert assets["/"].headers["cache-control"] == "no-cache"
    assert assets["/playground/app-X.js"].headers["content-type"].startswith("text/javascript")


def test_package_data_ships_the_playground() -> None:
    """`pip install` must carry the built page: pyproject's package-data covers every file."""
    pyproject = tomllib.loads((SHIPPED.parents[3] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["embedrouter"]
    for file in SHIPPED.iterdir():
        rel = file.relative_to(SHIPPED.parents[1]).as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel


async def test_small_files_are_never_gzipped() -> None:
    asset = static.Asset(b"x" * 100, {"content-type": "text/css"})

    @dataclass
    class Req:
        headers: dict[str, str]
        compressible: bool = True

    req = Req({"accept-encoding": "gzip"})
    status, body, headers = await asset.respond(req)
    assert (status, body) == (200, b"x" * 100)
    assert "content-encoding" not in headers
    assert req.compressible is False
    big = static.Asset(b"abc" * 1000, {})
    _, packed, headers = await big.respond(req)
    assert headers["content-encoding"] == "gzip" and gzip.decompress(packed) == b"abc" * 1000
