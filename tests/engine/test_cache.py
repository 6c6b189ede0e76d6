"""The built ONNX graph is cached by weights hash + builder version and reused on later loads."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from embedrouter.engine import LocalModel, default_model_dir, onnx_cache
from tests.engine.tiny_bert import write_tiny_model
from tests.support.threads import at_once


def _onnx_files(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.onnx"))


def test_second_load_reuses_graph(tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "m")
    cache = tmp_path / "cache"
    first = LocalModel.load(tmp_path / "m", cache_dir=cache, threads=1)
    assert first.built_onnx
    (graph,) = _onnx_files(cache)
    mtime = graph.stat().st_mtime_ns
    builds = onnx_cache.build_count
    second = LocalModel.load(tmp_path / "m", cache_dir=cache, threads=1)
    assert not second.built_onnx and onnx_cache.build_count == builds
    assert _onnx_files(cache) == [graph] and graph.stat().st_mtime_ns == mtime
    assert second.weights_sha256 == first.weights_sha256
    np.testing.assert_array_equal(second.forward([[101, 7, 102]]), first.forward([[101, 7, 102]]))
    assert not list(cache.rglob("*.tmp"))


def test_graph_is_valid_onnx(tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "m")
    model = LocalModel.load(tmp_path / "m", cache_dir=tmp_path / "cache", threads=1)
    onnx.checker.check_model(onnx.load(str(model.onnx_path)), full_check=True)


def test_warm_load_skips_rehash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tiny_model(tmp_path / "m")
    LocalModel.load(tmp_path / "m", cache_dir=tmp_path / "cache", threads=1)

    def no_hash(path: Path) -> str:
        raise AssertionError("weights were re-hashed although unchanged")

    monkeypatch.setattr(onnx_cache, "_hash_file", no_hash)
    assert not LocalModel.load(tmp_path / "m", cache_dir=tmp_path / "cache").built_onnx


def test_changed_weights_rebuild(tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "m", seed=1)
    cache = tmp_path / "cache"
    old = LocalModel.load(tmp_path / "m", cache_dir=cache, threads=1)
    write_tiny_model(tmp_path / "m", seed=2)
    # Same size, and on coarse-mtime filesystems possibly the same mtime: force it to be equal so
    # that only the inode (a rewrite makes a new file) or the hash can tell the revisions apart.
    st = os.stat(old.spec.weights_path)
    os.utime(tmp_path / "m" / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns))
    new = LocalModel.load(tmp_path / "m", cache_dir=cache, threads=1)
    if new.weights_sha256 == old.weights_sha256:  # same inode reused: the stamp cannot see it
        pytest.skip("filesystem reused the inode with identical size and mtime")
    assert new.built_onnx and len(_onnx_files(cache)) == 2
    assert not np.allclose(new.forward([[101, 7, 102]]), old.forward([[101, 7, 102]]))


def test_builder_version_invalidates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tiny_model(tmp_path / "m")
    LocalModel.load(tmp_path / "m", cache_dir=tmp_path / "cache", threads=1)
    monkeypatch.setattr(onnx_cache, "BUILDER_VERSION", onnx_cache.BUILDER_VERSION + "-next")
    assert LocalModel.load(tmp_path / "m", cache_dir=tmp_path / "cache", threads=1).built_onnx
    assert len(_onnx_files(tmp_path / "cache")) == 2


def test_pooling_change_invalidates(tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "m", pooling="mean")
    LocalModel.load(tmp_path / "m", cache_dir=tmp_path / "cache", threads=1)
    write_tiny_model(tmp_path / "m", pooling="cls")
    assert LocalModel.load(tmp_path / "m", cache_dir=tmp_path / "cache", threads=1).built_onnx


def test_corrupted_cache_file_is_rebuilt(tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "m")
    good = LocalModel.load(tmp_path / "m", cache_dir=tmp_path / "cache", threads=1)
    good.onnx_path.write_bytes(b"not an onnx file")
    again = LocalModel.load(tmp_path / "m", cache_dir=tmp_path / "cache", threads=1)
    assert again.built_onnx
    np.testing.assert_array_equal(again.forward([[101, 7, 102]]), good.forward([[101, 7, 102]]))
    assert onnx.load(str(again.onnx_path)).graph.output[0].name == "embeddings"


def test_unwritable_cache_still_loads(tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "m")
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be")
    model = LocalModel.load(tmp_path / "m", cache_dir=blocker, threads=1)
    assert model.built_onnx and model.forward([[101, 102]]).shape == (1, 16)


def test_concurrent_cold_loads(tmp_path: Path) -> None:
    write_tiny_model(tmp_path / "m")
    results, errors = at_once(
        lambda: LocalModel.load(tmp_path / "m", cache_dir=tmp_path / "cache", threads=1), 3)
    assert not errors and len(results) == 3
    assert len(_onnx_files(tmp_path / "cache")) == 1
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_real_model_warm_load_is_fast(minilm: LocalModel, onnx_cache_dir: Path) -> None:
    # ``minilm`` built the graph in this cache; a second load must only open it.
    started = time.perf_counter()
    again = LocalModel.load(default_model_dir(), cache_dir=onnx_cache_dir, threads=2)
    elapsed = time.perf_counter() - started
    assert not again.built_onnx and again.weights_sha256 == minilm.weights_sha256
    assert elapsed < 3.0
