"""The README's recipes, run as written with the real framework packages against a live server.

The Python ones run under .venv-clients (built by scripts/test.sh: the frameworks pull in over a
hundred packages the main venv does not need); the Vercel AI SDK one under Node.js in tests/node.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.api.conftest import DEFAULT_MODEL
from tests.support import recipes
from tests.support.live import LiveServer

pytestmark = pytest.mark.slow

DOCS = ["The cat sat on the mat.", "Dogs bark at night."]
QUERY = "Where did the cat sit?"
MIN_COSINE = 0.9999


@pytest.fixture(scope="module")
def reference(live_server: LiveServer) -> dict[str, np.ndarray]:
    """The server's own vectors for the recipes' texts, as floats over plain HTTP."""
    resp = httpx.post(f"{live_server.base_url}/embeddings", timeout=60,
                      headers={"authorization": f"Bearer {live_server.api_key}"},
                      json={"model": DEFAULT_MODEL, "input": [*DOCS, QUERY],
                            "encoding_format": "float"})
    assert resp.status_code == 200, resp.text
    rows = np.asarray([d["embedding"] for d in resp.json()["data"]], np.float64)
    return {"docs": rows[:2], "query": rows[2]}


def cosines(got: Any, want: np.ndarray) -> np.ndarray:
    a = np.atleast_2d(np.asarray(got, np.float64))
    b = np.atleast_2d(want)
    assert a.shape == b.shape, f"got shape {a.shape}, expected {b.shape}"
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def check(result: dict[str, Any], reference: dict[str, np.ndarray], *, query: bool) -> None:
    assert cosines(result["doc_vectors"], reference["docs"]).min() >= MIN_COSINE
    if query:
        assert cosines(result["query_vector"], reference["query"]).min() >= MIN_COSINE
    else:
        assert result["query_vector"] is None


def clients_python() -> Path:
    if not recipes.CLIENTS_PYTHON.exists():
        pytest.skip(".venv-clients is missing: scripts/test.sh builds it with the framework "
                    "packages these recipes need")
    return recipes.CLIENTS_PYTHON


@pytest.mark.parametrize(("name", "query"), [
    ("langchain", True),
    ("llamaindex", True),
    ("haystack", True),
    ("litellm", False),
])
def test_python_recipe(name: str, query: bool, live_server: LiveServer,
                       reference: dict[str, np.ndarray], tmp_path: Path) -> None:
    clients_python()
    result = recipes.run_python(name, live_server.base_url, live_server.api_key, tmp_path)
    check(result, reference, query=query)


def test_vercel_ai_sdk_recipe(live_server: LiveServer, reference: dict[str, np.ndarray],
                              tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Vercel AI SDK recipe needs Node.js")
    assert (recipes.NODE_DIR / "node_modules" / "@ai-sdk" / "openai-compatible").is_dir(), (
        "run `npm ci` in tests/node (scripts/test.sh does)")
    result = recipes.run_node(node, "vercel-ai", live_server.base_url, live_server.api_key,
                              tmp_path)
    check(result, reference, query=True)


def test_every_recipe_names_the_documented_url_once() -> None:
    for name in ("langchain", "llamaindex", "haystack", "litellm", "vercel-ai"):
        assert recipes.recipe(name).count(recipes.DOCUMENTED_URL) == 1, name
