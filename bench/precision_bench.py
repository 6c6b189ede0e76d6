"""Precisions of the local model side by side, in one run: ONNX Runtime fp32 and int8 (dynamic
per-channel, the shipped recipe, plus s8-weight, per-tensor and static-QDQ variants) and OpenVINO
fp32 / bf16 / int8, every one built from the same fp32 graph; then the served precisions over HTTP.

    python bench/precision_bench.py [--repeats 3] [--quick] [--json OUT] [--no-http]
                                    [--st-python PATH] [--no-openvino]

Run it with a venv that has embedrouter and, for the OpenVINO rows, ``openvino`` and ``nncf``
(see bench/README.md, "Precisions"); rows whose runtime is missing are skipped with the reason.

1. **Build.** The fp32 graph is built by the engine into a temp cache (timed); each variant is
   made from that file (timed). Static QDQ (ORT) and OpenVINO int8 (NNCF) are calibrated on
   ``bench/calibration.jsonl``, 300 numpy docstrings, none of them in the corpus.
2. **In process.** Per round, every variant runs in a fresh child process: load, warm-up, one
   timed pass over the corpus in length-sorted batches of 32 (what ``LocalModel.embed`` does),
   then its VmHWM. Rounds interleave the variants; medians are reported. The first round's
   vectors give the cosine to ORT fp32 (mean, min) and the top-10 neighbour overlap: for each
   sentence, the share of its 10 nearest corpus neighbours under fp32 that it keeps.
3. **Over HTTP.** ``embedrouter serve`` with no config (so fp32 and int8 endpoints), the corpus
   in requests of 1-16 inputs at concurrency 32, once without ``provider`` (fp32) and once with
   ``provider: {"quantizations": ["int8"]}``; one short input p50 for each; the server's RSS
   and peak (VmHWM) after both. sentence-transformers fp32 (batch 32) runs in a child of
   ``--st-python`` (a venv with torch) each round as the peer.

Tokens/s are reported against this CPU's compute limit from issue 12 (21.9 MFLOP a token on 2
cores): fp32 10.7k, bf16 21.4k, int8 42.7k tokens/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from http_bench import (
    SHORT,
    close_conns,
    encode_bodies,
    load_corpus,
    med,
    open_conns,
    percentile,
    plan_requests,
    proc_memory_mb,
    run_load,
    short_latency,
    start_server,
    verdict,
)

HERE = Path(__file__).resolve().parent
CALIBRATION = HERE / "calibration.jsonl"
COMPUTE_LIMIT = {"fp32": 10_700, "bf16": 21_400, "int8": 42_700}  # tokens/s, issue 12
BATCH = 32

# Targets from issue 12 (bench, one run, this machine).
TARGET_INT8_VS_FP32_HTTP = 2.0
TARGET_INT8_VS_ST = 2.9
TARGET_BF16_VS_FP32 = 1.6
TARGET_SHORT_MS = {"fp32": 3.0, "int8": 2.0}
TARGET_RSS_MB = 500.0


def log(msg: str) -> None:
    print(f"[precision] {msg}", file=sys.stderr, flush=True)


@dataclass
class Variant:
    name: str
    runtime: str  # "ort" | "openvino"
    precision: str  # fp32 | bf16 | int8: which compute limit applies
    path: str
    build_s: float
    hint: str = ""  # OpenVINO INFERENCE_PRECISION_HINT
    served: str = ""  # the endpoint's quantization when the server serves this exact graph
    note: str = ""


# -- building ------------------------------------------------------------------------------


def batches(seqs: Sequence[Sequence[int]], size: int = BATCH) -> list[tuple[list[int], Any, Any]]:
    """Length-sorted batches as LocalModel.embed forms them: (rows, input_ids, attention_mask)."""
    import numpy as np

    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = []
    for start in range(0, len(order), size):
        rows = order[start:start + size]
        longest = max(len(seqs[i]) for i in rows)
        ids = np.zeros((len(rows), longest), dtype=np.int64)
        mask = np.zeros_like(ids)
        for j, i in enumerate(rows):
            ids[j, :len(seqs[i])] = seqs[i]
            mask[j, :len(seqs[i])] = 1
        out.append((rows, ids, mask))
    return out


def tokenized(texts: Sequence[str]) -> list[list[int]]:
    from embedrouter.engine import default_model_dir
    from embedrouter.engine.model import _load_tokenizer

    tok = _load_tokenizer(default_model_dir() / "tokenizer.json")
    return [[*enc.ids[:255], 102] if len(enc.ids) > 256 else enc.ids
            for enc in tok.encode_batch(list(texts), add_special_tokens=True)]


def _timed(fn: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def build_variants(work: Path, cal_texts: Sequence[str], openvino: bool) -> list[Variant]:
    from embedrouter.engine import LocalModel, default_model_dir, quantize

    model, fp32_s = _timed(lambda: LocalModel.load(default_model_dir(), cache_dir=work / "cache"))
    fp32_path = model.onnx_path
    fp32 = fp32_path.read_bytes()
    out = [Variant("ORT fp32 (shipped)", "ort", "fp32", str(fp32_path), fp32_s, served="fp32",
                   note="graph built from safetensors")]

    data, s = _timed(lambda: quantize.quantize(fp32, "int8"))
    shipped = "s8" if quantize.WEIGHTS_SIGNED else "u8"
    path = work / f"ort-int8-dyn-pc-{shipped}-l0f.onnx"
    path.write_bytes(data)
    out.append(Variant(f"ORT int8 dynamic per-channel, {shipped} weights, layer 0 FFN out fp32 "
                       "(shipped on this CPU)", "ort", "int8", str(path), s, served="int8"))
    # The recipe the other kind of CPU gets (VNNI: s8 weights; without: u8), same exclusion.
    other = "u8" if quantize.WEIGHTS_SIGNED else "s8"
    path = work / f"ort-int8-dyn-pc-{other}-l0f.onnx"
    _, s = _timed(lambda p=path: quantize.quantize_file(
        fp32_path, p, "int8", signed=not quantize.WEIGHTS_SIGNED))
    out.append(Variant(f"ORT int8 dynamic per-channel, {other} weights, layer 0 FFN out fp32 "
                       "(shipped without VNNI)" if other == "u8" else
                       f"ORT int8 dynamic per-channel, {other} weights, layer 0 FFN out fp32 "
                       "(shipped with VNNI)", "ort", "int8", str(path), s))

    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    for name, per_channel, wtype in (("s8 weights", True, QuantType.QInt8),
                                     ("per-tensor, u8 weights", False, QuantType.QUInt8)):
        path = work / f"ort-int8-dyn-{name.replace(' ', '').replace(',', '-')}.onnx"
        _, s = _timed(lambda p=path, pc=per_channel, w=wtype: quantize_dynamic(
            fp32_path, p, op_types_to_quantize=["MatMul"], per_channel=pc, weight_type=w,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}))
        out.append(Variant(f"ORT int8 dynamic {'per-channel, ' if per_channel else ''}{name}",
                           "ort", "int8", str(path), s))

    # Static QDQ and OpenVINO start from the opset-17-only flavour of the same graph (the same
    # function): neither the calibrator's shape inference nor OpenVINO's ONNX reader knows ORT's
    # MultiHeadAttention.
    from embedrouter.engine import onnx_cache
    from embedrouter.engine.model_dir import read_model_dir

    portable = work / "fp32-standard.onnx"
    portable.write_bytes(onnx_cache.build_graph_bytes(read_model_dir(default_model_dir()),
                                                      "standard"))
    cal = batches(tokenized(cal_texts), 16)
    path = work / "ort-int8-static-qdq.onnx"

    class Reader:
        def __init__(self) -> None:
            self._it = iter(cal)

        def get_next(self) -> dict[str, Any] | None:
            item = next(self._it, None)
            return None if item is None else {"input_ids": item[1], "attention_mask": item[2]}

    _, s = _timed(lambda: quantize_static(
        portable, path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"], extra_options={"MatMulConstBOnly": True}))
    out.append(Variant("ORT int8 static QDQ per-channel (MinMax calibration)", "ort", "int8",
                       str(path), s))

    if not openvino:
        return out
    import nncf
    import openvino as ov

    ir = work / "ov-fp32.xml"
    ov_model, s = _timed(lambda: ov.convert_model(str(portable)))
    ov.save_model(ov_model, ir, compress_to_fp16=False)
    out.append(Variant("OpenVINO fp32", "openvino", "fp32", str(ir), s, hint="f32"))
    out.append(Variant("OpenVINO bf16", "openvino", "bf16", str(ir), s, hint="bf16"))
    dataset = nncf.Dataset([{"input_ids": ids, "attention_mask": mask} for _, ids, mask in cal])
    q, s = _timed(lambda: nncf.quantize(ov.convert_model(str(portable)), dataset,
                                        model_type=nncf.ModelType.TRANSFORMER,
                                        subset_size=len(cal)))
    path = work / "ov-int8.xml"
    ov.save_model(q, path, compress_to_fp16=False)
    out.append(Variant("OpenVINO int8 (NNCF, transformer preset)", "openvino", "int8", str(path),
                       s, hint="f32"))
    return out


# -- one variant in a child process --------------------------------------------------------


def child(args: argparse.Namespace) -> int:
    """Loads one variant, runs the corpus once after a warm-up, prints JSON on stdout."""
    import numpy as np

    texts = load_corpus()[:args.sentences]
    work = batches(tokenized(texts))
    started = time.perf_counter()
    if args.child_runtime == "ort":
        from embedrouter.engine.model import _new_session, _session_options

        sess = _new_session(args.child_path, _session_options(None), args.child_precision)

        def run(ids: Any, mask: Any) -> Any:
            return sess.run(["embeddings"], {"input_ids": ids, "attention_mask": mask})[0]
        effective = "ONNX Runtime"
    else:
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(args.child_path, "CPU",
                                      {"INFERENCE_PRECISION_HINT": args.child_hint,
                                       "PERFORMANCE_HINT": "LATENCY"})
        effective = "OpenVINO " + compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        request = compiled.create_infer_request()

        def run(ids: Any, mask: Any) -> Any:
            return request.infer({"input_ids": ids, "attention_mask": mask})[0].copy()
    load_s = time.perf_counter() - started
    for _, ids, mask in work[:4] + work[-2:]:  # warm-up: short and long shapes
        run(ids, mask)
    out = np.empty((len(texts), 384), dtype=np.float32)
    started = time.perf_counter()
    for rows, ids, mask in work:
        out[rows] = run(ids, mask)
    seconds = time.perf_counter() - started
    if args.child_save:
        np.save(args.child_save, out)
    print(json.dumps({"rate": len(texts) / seconds, "load_s": load_s, "effective": effective,
                      **proc_memory_mb(os.getpid())}))
    return 0


def run_child(v: Variant, sentences: int, save: Path | None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child-runtime", v.runtime, "--child-path", v.path,
           "--child-hint", v.hint or "f32", "--child-precision", v.precision,
           "--sentences", str(sentences)]
    if save is not None:
        cmd += ["--child-save", str(save)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise RuntimeError(f"{v.name}: child failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


ST_CHILD = """
import json, sys, time
from sentence_transformers import SentenceTransformer
texts = [json.loads(l)["text"] for l in open(sys.argv[2]) if l.strip()][:int(sys.argv[3])]
m = SentenceTransformer(sys.argv[1], device="cpu")
m.encode(texts[:64], batch_size=32, normalize_embeddings=True)
t = time.perf_counter()
m.encode(texts, batch_size=32, normalize_embeddings=True)
print(json.dumps({"rate": len(texts) / (time.perf_counter() - t)}))
"""


def run_st(python: str, sentences: int) -> float:
    from embedrouter.engine import default_model_dir

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    res = subprocess.run([python, "-c", ST_CHILD, str(default_model_dir()),
                          str(HERE / "corpus.jsonl"), str(sentences)],
                         capture_output=True, text=True, timeout=1800, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"sentence-transformers child failed:\n{res.stderr[-3000:]}")
    return float(json.loads(res.stdout.strip().splitlines()[-1])["rate"])


# -- quality -------------------------------------------------------------------------------


def quality(ref: Any, got: Any, k: int = 10) -> dict[str, float]:
    import numpy as np

    def unit(x: Any) -> Any:
        x = np.asarray(x, dtype=np.float64)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    a, b = unit(ref), unit(got)
    cos = (a * b).sum(1)
    overlaps = []
    for m in (a, b):
        sims = m @ m.T
        np.fill_diagonal(sims, -np.inf)
        overlaps.append(np.argpartition(-sims, k, axis=1)[:, :k])
    top = float(np.mean([len(set(x) & set(y)) / k for x, y in zip(*overlaps, strict=True)]))
    return {"cos_mean": float(cos.mean()), "cos_min": float(cos.min()), "top10": top}


# -- over HTTP -----------------------------------------------------------------------------


def bodies(texts: Sequence[str], plan: Sequence[tuple[int, int]], precision: str
           ) -> list[tuple[bytes, int]]:
    """Base64 request bodies that pick ``precision`` (fp32: the model's default)."""
    extra = {} if precision == "fp32" else {"provider": {"quantizations": [precision]}}
    return encode_bodies(texts, plan, "base64", extra)


async def http_round(server: Any, key: str, texts: Sequence[str], plan: Any, precisions: Any,
                     short_n: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for precision in precisions:
        body = bodies(texts, plan, precision)
        conns = await open_conns("raw", server.base_url, key, 32, body[0][0])
        res = await run_load(conns, body)
        await close_conns(conns)
        short = bodies([SHORT], [(0, 1)], precision)[0][0]
        conns = await open_conns("raw", server.base_url, key, 1, short)
        lat = await short_latency(conns[0], short, short_n, warmup=30)
        await close_conns(conns)
        out[precision] = {"rate": res.rate, "short_p50_ms": percentile(lat, 50) * 1e3,
                          "short_p95_ms": percentile(lat, 95) * 1e3}
        log(f"  HTTP {precision}: c=32 {res.rate:.0f} sentences/s; one short input p50 "
            f"{out[precision]['short_p50_ms']:.2f} ms")
    return out


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="300 sentences, 1 repeat")
    p.add_argument("--json", type=Path)
    p.add_argument("--no-http", action="store_true")
    p.add_argument("--no-openvino", action="store_true")
    p.add_argument("--st-python", default=None,
                   help="python of a venv with sentence-transformers + torch (default: "
                        ".venv-infinity/bin/python when present)")
    p.add_argument("--short-requests", type=int, default=300)
    p.add_argument("--sentences", type=int, default=None)
    p.add_argument("--keep-tmp", action="store_true")
    p.add_argument("--child-runtime", help=argparse.SUPPRESS)
    p.add_argument("--child-path", help=argparse.SUPPRESS)
    p.add_argument("--child-hint", help=argparse.SUPPRESS)
    p.add_argument("--child-precision", help=argparse.SUPPRESS)
    p.add_argument("--child-save", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.short_requests = 1, 50
        args.sentences = args.sentences or 300
    args.sentences = args.sentences or 2000
    if args.st_python is None:
        default = HERE.parent / ".venv-infinity" / "bin" / "python"
        args.st_python = str(default) if default.exists() else ""
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_runtime:
        return child(args)
    openvino, ov_note = not args.no_openvino, ""
    if openvino:
        try:
            import nncf  # noqa: F401
            import openvino as ov  # noqa: F401
        except ImportError as exc:
            openvino, ov_note = False, f"OpenVINO rows skipped: {exc}"
            log(ov_note)
    tmp = Path(tempfile.mkdtemp(prefix="embedrouter-precision-"))
    try:
        results = bench(args, tmp, openvino)
    finally:
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    results["notes"] = [n for n in (ov_note,) if n]
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


def bench(args: argparse.Namespace, tmp: Path, openvino: bool) -> dict[str, Any]:
    import numpy as np

    texts = load_corpus()[:args.sentences]
    tokens = sum(map(len, tokenized(texts)))
    cal = load_corpus(CALIBRATION)
    log("building the variants from one fp32 graph...")
    variants = build_variants(tmp, cal, openvino)
    for v in variants:
        log(f"  {v.name}: {v.build_s:.1f} s")

    runs: dict[str, list[dict[str, Any]]] = {v.name: [] for v in variants}
    st_rates: list[float] = []
    http: list[dict[str, dict[str, float]]] = []
    server = key = None
    if not args.no_http:
        log("starting the server (no config: fp32 + int8 endpoints)...")
        server, key = start_server(tmp / "data", tmp / "cache")
    try:
        plan = plan_requests(len(texts))
        for rnd in range(args.repeats):
            log(f"round {rnd + 1}/{args.repeats}")
            for v in variants:
                save = tmp / f"{len(runs[v.name])}-{abs(hash(v.name))}.npy" if rnd == 0 else None
                res = run_child(v, len(texts), save)
                res["vectors"] = str(save) if save else None
                runs[v.name].append(res)
                log(f"  {v.name}: {res['rate']:.0f} sentences/s, VmHWM {res['VmHWM']:.0f} MB"
                    f" ({res['effective']})")
            if args.st_python:
                st_rates.append(run_st(args.st_python, len(texts)))
                log(f"  sentence-transformers fp32: {st_rates[-1]:.0f} sentences/s")
            if server is not None:
                http.append(asyncio.run(http_round(server, key, texts, plan, ("fp32", "int8"),
                                                   args.short_requests)))
        memory = proc_memory_mb(server.pid) if server is not None else {}
    finally:
        if server is not None:
            server.stop()

    ref = np.load(runs[variants[0].name][0]["vectors"])
    rows = []
    for v in variants:
        r = runs[v.name]
        rate = med([x["rate"] for x in r])
        row = {**asdict(v), "rate": rate, "rates": [x["rate"] for x in r],
               "tokens_per_s": rate * tokens / len(texts),
               "limit_share": rate * tokens / len(texts) / COMPUTE_LIMIT[v.precision],
               "VmHWM": med([x["VmHWM"] for x in r]), "effective": r[0]["effective"],
               **quality(ref, np.load(r[0]["vectors"]))}
        served = [h[v.served]["rate"] for h in http if v.served in h]
        row["http_rate"] = med(served) if served else None
        rows.append(row)
    out: dict[str, Any] = {"sentences": len(texts), "tokens": tokens, "repeats": args.repeats,
                           "cpus": os.cpu_count(), "variants": rows,
                           "st_rate": med(st_rates) if st_rates else None, "st_rates": st_rates,
                           "http": http, "server_memory_mb": memory}
    out["targets"] = evaluate(out)
    return out


def evaluate(r: dict[str, Any]) -> list[dict[str, str]]:
    by = {v["served"]: v for v in r["variants"] if v["served"]}
    t: list[dict[str, str]] = []
    fp, i8 = by["fp32"], by["int8"]
    if fp["http_rate"] and i8["http_rate"]:
        ratio = i8["http_rate"] / fp["http_rate"]
        t.append({"name": f"int8 / fp32 over HTTP c=32 >= {TARGET_INT8_VS_FP32_HTTP}x",
                  "measured": f"{ratio:.2f}x",
                  "result": verdict(ratio >= TARGET_INT8_VS_FP32_HTTP)})
        if r["st_rate"]:
            ratio = i8["http_rate"] / r["st_rate"]
            t.append({"name": f"int8 over HTTP c=32 / sentence-transformers fp32 >= "
                              f"{TARGET_INT8_VS_ST}x", "measured": f"{ratio:.2f}x",
                      "result": verdict(ratio >= TARGET_INT8_VS_ST)})
        for precision, limit in TARGET_SHORT_MS.items():
            p50 = med([h[precision]["short_p50_ms"] for h in r["http"]])
            t.append({"name": f"one short input over HTTP p50, {precision} <= {limit:g} ms",
                      "measured": f"{p50:.2f} ms", "result": verdict(p50 <= limit)})
        peak = max(r["server_memory_mb"].values())
        t.append({"name": f"server RSS with fp32 + int8 loaded <= {TARGET_RSS_MB:g} MB (peak)",
                  "measured": f"{peak:.0f} MB", "result": verdict(peak <= TARGET_RSS_MB)})
    for v in r["variants"]:
        if v["precision"] == "bf16":
            ratio = v["rate"] / next(x["rate"] for x in r["variants"]
                                     if x["runtime"] == v["runtime"] and x["precision"] == "fp32")
            t.append({"name": f"{v['name']} / fp32 in process >= {TARGET_BF16_VS_FP32}x "
                              "(only if shipped)", "measured": f"{ratio:.2f}x",
                      "result": "not shipped" if ratio < TARGET_BF16_VS_FP32 else "PASS"})
    return t


def _f(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def report(r: dict[str, Any]) -> str:
    lines = [f"{r['sentences']} sentences ({r['tokens']} tokens), {r['cpus']} cpus, medians of "
             f"{r['repeats']} interleaved rounds", ""]
    fp32 = r["variants"][0]["rate"]
    lines.append("| variant | build s | in-process sent/s | runs | vs ORT fp32 | tokens/s | "
                 "% of compute limit | over HTTP c=32 sent/s | cos mean | cos min | top-10 "
                 "overlap | VmHWM MB | runs as |")
    lines.append("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for v in r["variants"]:
        lines.append(
            f"| {v['name']} | {v['build_s']:.1f} | {v['rate']:.0f} | "
            f"{', '.join(f'{x:.0f}' for x in v['rates'])} | {v['rate'] / fp32:.2f}x | "
            f"{v['tokens_per_s']:.0f} | {v['limit_share']:.0%} ({v['precision']}) | "
            f"{_f(v['http_rate'], '.0f')} | {v['cos_mean']:.4f} | {v['cos_min']:.4f} | "
            f"{v['top10']:.3f} | {v['VmHWM']:.0f} | {v['effective']} |")
    if r["st_rate"]:
        lines.append(f"| sentence-transformers fp32 (torch) | | {r['st_rate']:.0f} | "
                     f"{', '.join(f'{x:.0f}' for x in r['st_rates'])} | "
                     f"{r['st_rate'] / fp32:.2f}x | | | | | | | | |")
    if r["http"]:
        lines.append("")
        lines.append("| over HTTP | fp32 | int8 |")
        lines.append("|---|---:|---:|")
        for name, key in (("c=32 sentences/s", "rate"), ("one short input p50 ms", "short_p50_ms"),
                          ("one short input p95 ms", "short_p95_ms")):
            vals = {p: med([h[p][key] for h in r["http"]]) for p in ("fp32", "int8")}
            runs = {p: ", ".join(f"{h[p][key]:.2f}" for h in r["http"]) for p in vals}
            lines.append(f"| {name} | {vals['fp32']:.2f} ({runs['fp32']}) | "
                         f"{vals['int8']:.2f} ({runs['int8']}) |")
        mem = r["server_memory_mb"]
        lines.append(f"| server VmRSS / VmHWM after both, MB | {mem.get('VmRSS', 0):.0f} / "
                     f"{mem.get('VmHWM', 0):.0f} | |")
    lines += ["", "| target | measured | result |", "|---|---:|---|"]
    lines += [f"| {t['name']} | {t['measured']} | {t['result']} |" for t in r["targets"]]
    lines += r.get("notes", [])
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
