from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from embedrouter.engine import LocalModel, default_model_dir
from tests.engine.gated import GatedModel

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden-all-minilm-l6-v2.jsonl"


@pytest.fixture(scope="session")
def golden() -> list[dict[str, Any]]:
    return [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="session")
def onnx_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def minilm(onnx_cache_dir: Path) -> LocalModel:
    """The real all-MiniLM-L6-v2, loaded once per run (first load builds the graph)."""
    return LocalModel.load(default_model_dir(), cache_dir=onnx_cache_dir, threads=2)



@pytest.fixture(scope="session")
def minilm_int8(minilm: LocalModel, onnx_cache_dir: Path) -> LocalModel:
    """The int8 variant of ``minilm`` (the first use quantizes it into the session's cache)."""
    return minilm.with_precision("int8", cache_dir=onnx_cache_dir, threads=2)


@pytest.fixture
def gated(minilm: LocalModel) -> GatedModel:
    """The real model behind gates (tests/engine/gated.py)."""
    return GatedModel(minilm)
