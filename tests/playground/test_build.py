"""The playground shipped in the package is exactly what its source builds to.

The build (js/react/playground/build.mjs, esbuild with the versions in js/react's lockfile) is
deterministic, so a changed source without a rebuild, or a hand-edited asset, fails here.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "js" / "react"
SHIPPED = ROOT / "src" / "embedrouter" / "api" / "playground"


def test_shipped_playground_matches_a_fresh_build(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: rebuilding the playground needs Node.js")
    assert (PACKAGE_DIR / "node_modules" / "esbuild").is_dir(), (
        "run `npm ci` in js/react (scripts/test.sh does)")
    out = subprocess.run([node, "playground/build.mjs", str(tmp_path)], cwd=PACKAGE_DIR,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    built = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    shipped = {p.name: p.read_bytes() for p in SHIPPED.iterdir()}
    assert sorted(built) == sorted(shipped), (
        "the shipped playground is stale: run `npm run build:playground` in js/react")
    for name, content in built.items():
        assert content == shipped[name], f"{name} differs from a fresh build"
