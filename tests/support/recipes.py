"""Run the README's client recipes exactly as written, against a live server.

A recipe is the fenced block that follows a ``<!-- recipe: NAME -->`` line in README.md. The
test runs that text with one substitution (the documented base URL becomes the live server's)
and reads back the vectors the recipe leaves in ``doc_vectors`` / ``query_vector``
(``docVectors`` / ``queryVector`` in JavaScript), so the README cannot drift from what is tested.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.support.tiktoken_offline import fill_cache

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CLIENTS_PYTHON = ROOT / ".venv-clients" / "bin" / "python"
NODE_DIR = ROOT / "tests" / "node"
DOCUMENTED_URL = "http://127.0.0.1:8000/api/v1"

_PYTHON_TAIL = """
import json as _json, os as _os
with open(_os.environ["RECIPE_OUT"], "w") as _out:
    _json.dump({"doc_vectors": doc_vectors, "query_vector": globals().get("query_vector")}, _out)
"""
_NODE_TAIL = """
import { writeFileSync as _write } from "node:fs";
_write(process.env.RECIPE_OUT,
       JSON.stringify({ doc_vectors: docVectors,
                       query_vector: typeof queryVector === "undefined" ? null : queryVector }));
"""

# The clients must not reach the network: no telemetry, no price lists, no tokenizer downloads.
_QUIET_ENV = {
    "HAYSTACK_TELEMETRY_ENABLED": "False",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LANGCHAIN_TRACING_V2": "false",
    "HF_HUB_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
}


def recipe(name: str, readme: Path = README) -> str:
    """The code of the README block marked ``<!-- recipe: name -->``."""
    pattern = rf"<!-- recipe: {re.escape(name)} -->\s*```\w*\n(.*?)```"
    found = re.findall(pattern, readme.read_text(encoding="utf-8"), flags=re.S)
    if len(found) != 1:
        raise LookupError(f"README.md has {len(found)} blocks marked recipe: {name}")
    return found[0]


def _pointed_at(code: str, base_url: str) -> str:
    if code.count(DOCUMENTED_URL) != 1:
        raise LookupError(f"a recipe must name {DOCUMENTED_URL} exactly once")
    return code.replace(DOCUMENTED_URL, base_url)


def _env(api_key: str, out: Path, tmp: Path) -> dict[str, str]:
    return {**os.environ, **_QUIET_ENV, "EMBEDROUTER_API_KEY": api_key, "RECIPE_OUT": str(out),
            "TIKTOKEN_CACHE_DIR": str(fill_cache(tmp / "tiktoken"))}


def _read(out: Path, proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    if proc.returncode != 0:
        raise AssertionError(f"recipe failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}")
    return json.loads(out.read_text())


def run_python(name: str, base_url: str, api_key: str, tmp: Path) -> dict[str, Any]:
    """Run a Python recipe under .venv-clients; returns its vectors."""
    out = tmp / f"{name}.json"
    code = _pointed_at(recipe(name), base_url) + _PYTHON_TAIL
    proc = subprocess.run([str(CLIENTS_PYTHON), "-c", code], cwd=tmp, capture_output=True,
                          text=True, timeout=300, env=_env(api_key, out, tmp))
    return _read(out, proc)


def run_node(node: str, name: str, base_url: str, api_key: str, tmp: Path) -> dict[str, Any]:
    """Run a JavaScript recipe as an ES module whose imports resolve in tests/node."""
    out = tmp / f"{name}.json"
    code = _pointed_at(recipe(name), base_url) + _NODE_TAIL
    proc = subprocess.run([node, "--input-type=module", "-e", code], cwd=NODE_DIR,
                          capture_output=True, text=True, timeout=120,
                          env=_env(api_key, out, tmp))
    return _read(out, proc)
