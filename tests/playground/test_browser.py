"""The playground in a real browser: Debian's headless Chromium, driven by Playwright for Python
with that executable (Playwright never downloads a browser here). It loads the page from a live
server, embeds two texts through the React hook, and reads the similarity off the page; a
screenshot is saved under test-artifacts/ (gitignored)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.live import LiveServer

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = os.environ.get("EMBEDROUTER_CHROMIUM", "/usr/bin/chromium")
MODEL = "sentence-transformers/all-minilm-l6-v2"
TEXTS = ["The cat sat on the mat.", "A kitten is sitting on a rug."]
# Generous: the first load also compresses the script, on a shared 2-core box.
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (scripts/test.sh "
                    "tries) to run the browser test")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # No sandbox: CI runs as root, where Chromium refuses to start with one.
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def from_api(server: LiveServer) -> tuple[float, int, Decimal]:
    """The two texts' cosine, token count and exact cost, straight from the API."""
    resp = httpx.post(f"{server.base_url}/embeddings", timeout=60,
                      # no-store: the page has just embedded these texts, and a vector-cache
                      # hit costs nothing; the page's own request was computed and priced.
                      headers={"authorization": f"Bearer {server.api_key}",
                               "cache-control": "no-store"},
                      json={"model": MODEL, "input": TEXTS})
    resp.raise_for_status()
    body = json.loads(resp.content, parse_float=Decimal)
    a, b = (np.asarray(d["embedding"], np.float64) for d in body["data"])
    usage = body["usage"]
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)), usage["prompt_tokens"], Decimal(
        usage["cost"])


def test_playground_embeds_two_texts_and_shows_their_similarity(
        browser: Any, configured_server: LiveServer) -> None:
    # The configured server prices the default model, so the page has a cost to show.
    live_server = configured_server
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    try:
        response = page.goto(f"{live_server.root}/")
        assert response is not None and response.status == 200
        page.fill("#api-key", live_server.api_key)
        # The model list comes from GET /embeddings/models.
        page.wait_for_function("document.querySelectorAll('#model option').length > 0",
                               timeout=WAIT_MS)
        assert MODEL in page.eval_on_selector_all("#model option", "os => os.map(o => o.value)")
        page.select_option("#model", MODEL)
        page.fill("#texts", "\n".join(TEXTS))
        page.click("#embed")
        page.wait_for_selector("#result", timeout=WAIT_MS)
        page.wait_for_function(
            "!document.querySelector('#stat-latency').textContent.includes('…')",
            timeout=WAIT_MS)

        cells = page.eval_on_selector_all(
            ".heatmap .cell",
            "cs => cs.map(c => [+c.dataset.i, +c.dataset.j, +c.dataset.cos])")
        matrix = {(i, j): cos for i, j, cos in cells}
        assert sorted(matrix) == [(0, 0), (0, 1), (1, 0), (1, 1)]
        want, tokens, cost = from_api(live_server)
        assert cost > 0
        assert matrix[0, 1] == pytest.approx(want, abs=1e-5)
        assert matrix[1, 0] == matrix[0, 1]
        assert matrix[0, 0] == pytest.approx(1, abs=1e-5)
        # Related sentences, clearly similar but not the same.
        assert 0.3 < matrix[0, 1] < 0.95
        assert page.inner_text("#stat-dimensions") == "384"
        assert page.inner_text("#stat-count") == "2"
        assert page.inner_text("#stat-tokens") == str(tokens)
        assert page.inner_text("#stat-cost") == f"${cost.normalize():f}"
        assert page.inner_text("#stat-latency").endswith(" ms")
        # The number printed in the picture is the same similarity.
        shown = page.text_content('.heatmap .cell[data-i="0"][data-j="1"] text')
        assert shown is not None and float(shown) == pytest.approx(want, abs=0.005)

        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "playground.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")

        # A wrong key: the hook's error is the SDK's typed 401.
        page.fill("#api-key", "sk-er-v1-wrong")
        page.click("#embed")
        page.wait_for_selector("#error", timeout=WAIT_MS)
        assert page.inner_text("#error").startswith("UnauthorizedResponseError")
    finally:
        page.close()
    # The 401 above is logged by the browser as a failed resource load; anything else is a bug.
    unexpected = [p for p in problems if "status of 401" not in p]
    assert not unexpected, unexpected
