"""A loaded local embedding model: tokenizer plus ONNX Runtime session, blocking calls only.

Concurrency is the Batcher's business; every method here is synchronous and thread-safe (the
tokenizer and ``InferenceSession.run`` both are), and ``run`` releases the GIL while it computes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from embedrouter.engine import onnx_cache
from embedrouter.engine.errors import ModelLoadError
from embedrouter.engine.model_dir import ModelSpec, read_model_dir
from embedrouter.engine.quantize import DISABLED_OPTIMIZERS, PRECISIONS

log = logging.getLogger(__name__)

DEFAULT_FLAVOUR = "mha"
# Characters to tokenize per allowed token before concluding a text is too long: English runs
# at about 4-5 characters a WordPiece token, so 16 leaves a wide margin at a bounded cost.
PROBE_CHARS_PER_TOKEN = 16


_shared_arena_lock = threading.Lock()
_shared_arena_registered = False


def _ensure_shared_arena() -> None:
    """Registers one CPU arena in ORT's process-wide environment, once per process.

    Sessions that opt in (``session.use_env_allocators``) take their activations from it instead
    of an arena each. Each arena grows to the largest batch its session has run and keeps it
    until an idle release, so a model served at two precisions held two such peaks: fp32 and int8
    after one batch of 64 x 128 each, 788 MB RSS with an arena per session, 573 MB with this one.
    ORT's environment is process-wide by design; this flag only mirrors it.
    """
    global _shared_arena_registered
    with _shared_arena_lock:
        if _shared_arena_registered:
            return
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                 ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(info, None)
        _shared_arena_registered = True


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (taskset, a container's cpuset),
    not the machine's count, which would put several spinning ORT threads on one core."""
    if hasattr(os, "sched_getaffinity"):  # not on macOS or Windows
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _session_options(threads: int | None) -> ort.SessionOptions:
    _ensure_shared_arena()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads or usable_cores()
    # Each forward runs its graph sequentially (one per Batcher worker thread; several only with
    # [engine] forwards, which shares the cores out), so inter-op threads would only compete
    # with the intra-op pools for the same cores.
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.use_env_allocators", "1")
    return so


def _new_session(source: str | bytes, options: ort.SessionOptions,
                 precision: str) -> ort.InferenceSession:
    """A CPU session for a graph file or bytes, with the optimisers its precision runs without
    (quantize.DISABLED_OPTIMIZERS)."""
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"],
                                disabled_optimizers=DISABLED_OPTIMIZERS.get(precision, []))


def _shrink_run_options() -> ort.RunOptions:
    # At the end of a run with this option ORT frees every CPU arena region not in use. Not set on
    # ordinary runs: re-allocating the activations of every batch costs ~10% more CPU per
    # sentence (batches of 32 corpus sentences, measured in CPU time).
    ro = ort.RunOptions()
    ro.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return ro


def _libc_malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """glibc's malloc_trim, or None where the C library has none (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None


_MALLOC_TRIM = _libc_malloc_trim()


WORD_EMBEDDINGS = "word_embeddings"  # onnx_builder's name for the table


def _word_embeddings(graph: tuple[Path, bytes | None]) -> ort.OrtValue:
    """The word-embedding table of a built fp32 graph, as an OrtValue sessions can share."""
    import gc

    import onnx
    from onnx import numpy_helper

    path, data = graph
    model = onnx.load_from_string(data) if data is not None else onnx.load(str(path))
    table = next((numpy_helper.to_array(t) for t in model.graph.initializer
                  if t.name == WORD_EMBEDDINGS), None)
    del model, data
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)  # the parsed graph was ~90 MB
    if table is None:
        raise ModelLoadError(f"{path}: no {WORD_EMBEDDINGS} initializer")
    # OrtValue borrows the array's buffer; it keeps a reference to it for as long as it lives.
    return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(table))


def _load_tokenizer(path: Path) -> Tokenizer:
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exception on malformed JSON
        raise ModelLoadError(f"Cannot load tokenizer {path}: {exc}") from exc
    # tokenizer.json often carries truncation to 128 and fixed padding; both would hide the real
    # token count, which the caller needs for context-length errors and usage accounting.
    tok.no_truncation()
    tok.no_padding()
    return tok


def _special_id(tok: Tokenizer, token: str, path: Path) -> int:
    token_id = tok.token_to_id(token)
    if token_id is None:
        raise ModelLoadError(f"{path}: tokenizer has no {token} token; not a BERT vocabulary")
    return token_id


class LocalModel:
    """Tokenizer + encoder for one BERT-family sentence-transformers model."""

    def __init__(self, spec: ModelSpec, tokenizer: Tokenizer, session: ort.InferenceSession, *,
                 weights_sha256: str, onnx_path: Path, built_onnx: bool,
                 precision: str = "fp32") -> None:
        self.spec = spec
        self.precision = precision
        self.model_dir = spec.path
        self.dim: int = spec.config.hidden_size
        self.max_seq_length: int = spec.max_seq_length
        self.vocab_size: int = spec.config.vocab_size
        self.weights_sha256 = weights_sha256
        self.onnx_path = onnx_path
        self.built_onnx = built_onnx
        self._tok = tokenizer
        self._session = session
        self._shared_table: ort.OrtValue | None = None
        self._shrink = _shrink_run_options()
        self.cls_id: int = _special_id(tokenizer, "[CLS]", spec.tokenizer_path)
        self.sep_id: int = _special_id(tokenizer, "[SEP]", spec.tokenizer_path)
        pad = tokenizer.token_to_id("[PAD]")
        self.pad_id: int = 0 if pad is None else pad
        if tokenizer.get_vocab_size() > self.vocab_size:
            raise ModelLoadError(
                f"{spec.tokenizer_path}: tokenizer has {tokenizer.get_vocab_size()} tokens but "
                f"the embedding table only {self.vocab_size} rows"
            )

    @classmethod
    def load(cls, model_dir: Path, *, cache_dir: Path, threads: int | None = None,
             flavour: str = DEFAULT_FLAVOUR, precision: str = "fp32") -> LocalModel:
        """The model at ``precision`` (see quantize.PRECISIONS), its graph built and cached on
        first use."""
        spec = read_model_dir(Path(model_dir))
        tokenizer = _load_tokenizer(spec.tokenizer_path)
        return cls._open(spec, tokenizer, Path(cache_dir), threads, flavour, precision)

    def with_precision(self, precision: str, *, cache_dir: Path, threads: int | None = None,
                       flavour: str = DEFAULT_FLAVOUR) -> LocalModel:
        """The same model at another precision, sharing this one's tokenizer."""
        return self._open(self.spec, self._tok, Path(cache_dir), threads, flavour, precision)

    @classmethod
    def load_precisions(cls, model_dir: Path, precisions: Sequence[str], *, cache_dir: Path,
                        threads: int | None = None, flavour: str = DEFAULT_FLAVOUR
                        ) -> dict[str, LocalModel]:
        """The model at each of ``precisions``: one tokenizer, and one copy of the word-embedding
        table for all of them (every precision keeps that table in fp32, 47 MB for
        all-MiniLM-L6-v2; the quantizer leaves the Gather alone)."""
        spec = read_model_dir(Path(model_dir))
        tokenizer = _load_tokenizer(spec.tokenizer_path)
        cache_dir = Path(cache_dir)
        shared = None
        if len(precisions) > 1:
            sha = onnx_cache.weights_sha256(spec.weights_path, cache_dir)
            shared = _word_embeddings(onnx_cache.ensure_graph(spec, sha, cache_dir, flavour))
        return {p: cls._open(spec, tokenizer, cache_dir, threads, flavour, p, shared)
                for p in precisions}

    @classmethod
    def _open(cls, spec: ModelSpec, tokenizer: Tokenizer, cache_dir: Path, threads: int | None,
              flavour: str, precision: str, shared: ort.OrtValue | None = None) -> LocalModel:
        if precision not in PRECISIONS:
            raise ModelLoadError(f"unknown precision {precision!r}; expected one of "
                                 f"{', '.join(PRECISIONS)}")
        sha = onnx_cache.weights_sha256(spec.weights_path, cache_dir)
        path, data = onnx_cache.ensure_graph(spec, sha, cache_dir, flavour, precision)
        options = _session_options(threads)
        if shared is not None:
            # The session reads the table from this buffer instead of its own copy.
            options.add_initializer(WORD_EMBEDDINGS, shared)
        if data is None:
            try:
                session = _new_session(str(path), options, precision)
            except Exception as exc:  # ORT's pybind errors share no useful base class
                # A cache file that ORT rejects (disk trouble, foreign writer) is rebuilt, not
                # trusted: the weights are the source of truth.
                log.warning("cached ONNX graph %s unusable (%s); rebuilding", path, exc)
                path.unlink(missing_ok=True)
                path, data = onnx_cache.ensure_graph(spec, sha, cache_dir, flavour, precision)
        built = data is not None
        if data is not None:
            session = _new_session(data, options, precision)
            # Building (quantizing above all) leaves freed heap that glibc would otherwise keep.
            del data
            if _MALLOC_TRIM is not None:
                _MALLOC_TRIM(0)
        model = cls(spec, tokenizer, session, weights_sha256=sha, onnx_path=path,
                    built_onnx=built, precision=precision)
        # The session reads the shared table in place and does not own it: keep it alive.
        model._shared_table = shared
        return model

    # -- tokens ------------------------------------------------------------------------------

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with [CLS]/[SEP], never truncated."""
        if not texts:
            return []
        return [enc.ids for enc in self._tok.encode_batch(list(texts), add_special_tokens=True)]

    def tokenize_capped(self, texts: Sequence[str], max_tokens: int
                        ) -> tuple[list[list[int]], list[bool]]:
        """Token ids as ``tokenize`` gives them, with the work per text bounded by ``max_tokens``.

        A text longer than ``max_tokens * PROBE_CHARS_PER_TOKEN`` characters is first tokenized
        only up to a whitespace break near that point. Whitespace splits words for the
        pre-tokenizer, so those ids are exactly the leading ids of the whole text: if there are
        already more than ``max_tokens`` of them the text is too long (or, truncated, identical to
        the whole text truncated), and the rest is never tokenized. The flag says which texts
        were cut, i.e. whose count is a lower bound.
        """
        probe = max_tokens * PROBE_CHARS_PER_TOKEN
        out: list[list[int]] = [[] for _ in texts]
        cut = [False] * len(texts)
        short = [i for i, t in enumerate(texts) if len(t) <= probe]
        for i, ids in zip(short, self.tokenize([texts[i] for i in short]), strict=True):
            out[i] = ids
        for i, text in enumerate(texts):
            if len(text) <= probe:
                continue
            end = max(text.rfind(c, probe // 2, probe) for c in " \n\t\r")
            if end > 0:
                head = self._tok.encode(text[:end], add_special_tokens=True).ids
                if len(head) > max_tokens:
                    out[i], cut[i] = head, True
                    continue
            out[i] = self._tok.encode(text, add_special_tokens=True).ids
        return out, cut

    def wrap_ids(self, ids: Sequence[int]) -> list[int]:
        """Adds [CLS] in front and [SEP] at the end where the caller left them out."""
        out = list(ids)
        if not out or out[0] != self.cls_id:
            out.insert(0, self.cls_id)
        if len(out) == 1 or out[-1] != self.sep_id:
            out.append(self.sep_id)
        return out

    def truncate(self, ids: list[int], limit: int) -> list[int]:
        """At most ``limit`` ids, still ending in [SEP] (so the encoder sees a closed sentence)."""
        if limit < 2:
            raise ValueError(f"truncation limit must be at least 2, got {limit}")
        if len(ids) <= limit:
            return ids
        return [*ids[: limit - 1], self.sep_id]

    # -- compute -----------------------------------------------------------------------------

    def forward(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
        """Blocking: embeds wrapped, truncated id sequences; (len(batch), dim) float32."""
        n = len(batch)
        if n == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        lengths = np.fromiter((len(seq) for seq in batch), dtype=np.int64, count=n)
        longest = int(lengths.max())
        if int(lengths.min()) == 0:
            raise ValueError("cannot embed an empty id sequence; wrap it with wrap_ids first")
        if longest > self.max_seq_length:
            raise ValueError(f"sequence of {longest} ids exceeds max_seq_length "
                             f"{self.max_seq_length}; truncate it first")
        mask = np.arange(longest, dtype=np.int64)[None, :] < lengths[:, None]
        ids = np.full((n, longest), self.pad_id, dtype=np.int64)
        ids[mask] = np.fromiter(itertools.chain.from_iterable(batch), dtype=np.int64,
                                count=int(lengths.sum()))
        if int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size:
            raise ValueError(f"token ids must lie in [0, {self.vocab_size})")
        (out,) = self._session.run(
            ["embeddings"], {"input_ids": ids, "attention_mask": mask.astype(np.int64)}
        )
        return np.asarray(out, dtype=np.float32)

    def release_memory(self) -> None:
        """Blocking: returns idle memory to the OS, for when the model has gone quiet.

        ORT's CPU arena keeps every region it grew for the largest batches (~350 MB above the
        ~210 MB the process needs at rest after 64 x 128 and 16 x 256 batches), and glibc keeps the
        freed heap of tokenizer threads and request bodies. A one-sequence run with arena
        shrinkage frees the arena's idle regions; malloc_trim(0) then gives glibc's free pages
        back. Both cost a few milliseconds, so the Batcher calls this only after an idle spell.
        """
        ids = np.array([[self.cls_id, self.sep_id]], dtype=np.int64)
        self._session.run(["embeddings"], {"input_ids": ids, "attention_mask": np.ones_like(ids)},
                          self._shrink)
        if _MALLOC_TRIM is not None:
            _MALLOC_TRIM(0)

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """In-process path: tokenize, truncate, length-sorted batches, rows back in input order."""
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        seqs = [self.truncate(ids, self.max_seq_length) for ids in self.tokenize(texts)]
        out = np.empty((len(seqs), self.dim), dtype=np.float32)
        # Sorting by length keeps the padding of each batch small.
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            out[rows] = self.forward([seqs[i] for i in rows])
        return out
