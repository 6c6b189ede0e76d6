"""On-disk cache of built ONNX graphs, so only the first start pays for the build.

A graph is keyed by the sha256 of the weights file plus everything else the builder reads (config,
pooling, normalisation, flavour) and ``BUILDER_VERSION``, so changing any of them - or the builder
itself - yields a new file instead of a stale graph. A lower-precision variant (``quantize.py``)
is made from the fp32 graph and keyed like it, plus the precision and the quantizer's version.
Files are written to a temporary name and moved into place with ``os.replace``, so a concurrent
start sees either no file or a whole one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from embedrouter.engine.errors import ModelLoadError
from embedrouter.engine.model_dir import ModelSpec, load_weights
from embedrouter.engine.onnx_builder import build_model
from embedrouter.engine.quantize import quantize, quantizer_version

log = logging.getLogger(__name__)

# Bump whenever onnx_builder changes the graph it emits.
BUILDER_VERSION = "bert-onnx-3"

# How many graphs this process has built; lets tests tell a cache hit from a rebuild.
build_count = 0


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600; the cache may be shared by several service users.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def weights_sha256(path: Path, cache_dir: Path) -> str:
    """sha256 of ``path``, remembered in a sidecar keyed by (path, size, mtime, inode).

    Re-hashing 90 MB costs ~0.2 s per start; the sidecar makes a warm start skip it while any
    rewrite of the file (new size, mtime or inode) still forces a fresh hash.
    """
    path = path.resolve()
    try:
        st = path.stat()
    except OSError as exc:
        raise ModelLoadError(f"Cannot read {path}: {exc}") from exc
    stamp = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}
    sidecar = cache_dir / "sha256" / (hashlib.sha256(str(path).encode()).hexdigest()[:32] + ".json")
    try:
        known = json.loads(sidecar.read_text(encoding="utf-8"))
        if isinstance(known, dict) and known.get("stamp") == stamp:
            sha = known.get("sha256")
            if isinstance(sha, str) and len(sha) == 64:
                return sha
    except (OSError, ValueError):
        pass
    try:
        sha = _hash_file(path)
    except OSError as exc:
        raise ModelLoadError(f"Cannot read {path}: {exc}") from exc
    try:
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(sidecar, json.dumps({"stamp": stamp, "sha256": sha}).encode())
    except OSError as exc:
        log.warning("cannot write weights hash sidecar %s: %s", sidecar, exc)
    return sha


def graph_key(spec: ModelSpec, weights_sha: str, flavour: str, precision: str = "fp32") -> str:
    described: dict[str, object] = {
        "builder": BUILDER_VERSION,
        "flavour": flavour,
        "weights_sha256": weights_sha,
        "config": dataclasses.asdict(spec.config),
        "pooling": spec.pooling,
        "normalize": spec.normalize,
    }
    if precision != "fp32":  # fp32 keys stay what they were, so existing caches stay warm
        described["precision"] = precision
        described["quantizer"] = quantizer_version(precision)
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def graph_path(spec: ModelSpec, weights_sha: str, cache_dir: Path, flavour: str,
               precision: str = "fp32") -> Path:
    suffix = "" if precision == "fp32" else f".{precision}"
    return cache_dir / f"bert-{graph_key(spec, weights_sha, flavour, precision)[:32]}{suffix}.onnx"


def build_graph_bytes(spec: ModelSpec, flavour: str) -> bytes:
    global build_count
    model = build_model(spec, load_weights(spec), flavour=flavour)
    build_count += 1
    return model.SerializeToString()


def _variant_bytes(spec: ModelSpec, weights_sha: str, cache_dir: Path, flavour: str,
                   precision: str) -> bytes:
    """Builds a lower-precision variant from the fp32 graph (cached or built now)."""
    global build_count
    path, data = ensure_graph(spec, weights_sha, cache_dir, flavour)
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"Cannot read {path}: {exc}") from exc
    out = quantize(data, precision)
    build_count += 1
    return out


def ensure_graph(spec: ModelSpec, weights_sha: str, cache_dir: Path,
                 flavour: str, precision: str = "fp32") -> tuple[Path, bytes | None]:
    """Path of the cached graph of ``precision``, building it first if needed.

    Returns the serialized graph too when it was just built (so the caller need not read it back),
    or ``None`` when the cache already had it. If the cache cannot be written the graph is still
    returned, so a read-only cache dir costs a rebuild per start instead of failing the start.
    """
    path = graph_path(spec, weights_sha, cache_dir, flavour, precision)
    if path.is_file():
        return path, None
    if precision == "fp32":
        data = build_graph_bytes(spec, flavour)
    else:
        data = _variant_bytes(spec, weights_sha, cache_dir, flavour, precision)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, data)
    except OSError as exc:
        log.warning("cannot write ONNX cache %s: %s; serving from memory", path, exc)
    return path, data
