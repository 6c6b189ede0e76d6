"""`embedrouter batch` end to end: rows/s in-process, through a live server, and on a 2-worker
local Ray cluster; and what resuming costs after the job is killed (SIGKILL) half-way.

The input is the 2,000-sentence corpus repeated to --rows rows ({"id", "text"}). Repeated as
it is, exact dedupe leaves 2,000 texts to embed, so that run mostly measures reading, dedupe
and writing; --distinct N makes the first N rows distinct (a copy number is appended to each
repeat), which measures embedding. Each path runs as a user would run it (a subprocess of the
CLI); its own summary gives the job time. The resume figure: the job is started, killed with
SIGKILL once half its chunks are in the checkpoint, and run again; the second run's time is
compared with an uninterrupted run's.

    .venv/bin/python bench/batch_bench.py [--rows 100000] [--distinct 0] [--repeats 1]
        [--paths inprocess server ray] [--ray-python .venv-ray/bin/python]

Ray needs the `ray` extra (scripts/test.sh builds .venv-ray); without it that path is skipped
with a printed reason. Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import http_bench as hb  # noqa: E402

MODEL = "sentence-transformers/all-minilm-l6-v2"
RAY_PYTHON = HERE.parent / ".venv-ray" / "bin" / "python"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_input(path: Path, rows: int, distinct: int) -> int:
    texts = hb.load_corpus()
    unique = set()
    with path.open("w") as f:
        for i in range(rows):
            text = texts[i % len(texts)]
            if i < distinct and i >= len(texts):
                text = f"{text} (copy {i // len(texts)})"
            unique.add(text)
            f.write(json.dumps({"id": i, "text": text}) + "\n")
    return len(unique)


def env(cache: Path, data: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("EMBEDROUTER_", "OPENROUTER_"))}
    e["EMBEDROUTER_CACHE_DIR"] = str(cache)
    e["EMBEDROUTER_DATA_DIR"] = str(data)
    return e


def cmd(python: str, src: Path, out: Path, extra: list[str]) -> list[str]:
    return [python, "-m", "embedrouter", "batch", str(src), "--column", "text", "--out",
            str(out), "--model", MODEL, "--json", "--no-progress", *extra]


def run_job(argv: list[str], e: dict[str, str]) -> tuple[dict[str, object], float]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=e)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def chunks_saved(out: Path) -> int:
    partial = out.with_name(out.name + ".partial")
    return len(list(partial.glob("chunk-*.npz"))) if partial.is_dir() else 0


def kill_half_way(argv: list[str], e: dict[str, str], out: Path, chunks: int) -> int:
    """Starts the job, SIGKILLs it (a crash: no clean-up runs) at half its chunks."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=e, start_new_session=True)
    while chunks_saved(out) < chunks // 2 and proc.poll() is None:
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the Ray driver's children too
    proc.wait()
    return chunks_saved(out)


@contextlib.contextmanager
def ray_cluster(ray_python: Path, cpus: int) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="rb", dir="/tmp")
    ray = ray_python.parent / "ray"
    log_file = open(Path(temp) / "start.log", "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(ray), "start", "--head", "--block", f"--port={port}",
                             f"--num-cpus={cpus}", "--node-ip-address=127.0.0.1",
                             "--disable-usage-stats", "--include-dashboard=false",
                             f"--temp-dir={temp}", "--object-store-memory=600000000"],
                            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            log_file.seek(0)
            if "Ray runtime started" in log_file.read():
                break
            if proc.poll() is not None:
                raise RuntimeError("ray start failed")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log_file.close()


def measure(name: str, argv_for, e: dict[str, str], tmp: Path, rows: int,  # type: ignore[no-untyped-def]
            repeats: int) -> dict[str, object]:
    full, walls = [], []
    report: dict[str, object] = {}
    for r in range(repeats):
        out = tmp / f"{name}-{r}.parquet"
        report, wall = run_job(argv_for(out), e)
        full.append(float(report["seconds"]))  # type: ignore[arg-type]
        walls.append(wall)
        log(f"{name} run {r + 1}: {report['seconds']} s job, {wall:.1f} s wall")
        out.unlink()
    chunks = int(report["chunks"])  # type: ignore[call-overload]
    out = tmp / f"{name}-killed.parquet"
    saved = kill_half_way(argv_for(out), e, out, chunks)
    resumed, _ = run_job(argv_for(out), e)
    log(f"{name} resume: {saved}/{chunks} chunks saved at the kill; {resumed['seconds']} s")
    job_s = statistics.median(full)
    return {"path": name, "rows": rows, "unique": report["unique_texts"], "job_s": job_s,
            "wall_s": statistics.median(walls), "rows_per_s": rows / job_s,
            "unique_per_s": int(report["unique_texts"]) / job_s,  # type: ignore[call-overload]
            "saved_at_kill": saved, "chunks": chunks, "resume_s": resumed["seconds"],
            "resume_embedded": resumed["embedded_texts"],
            "resume_ratio": float(resumed["seconds"]) / job_s}  # type: ignore[arg-type]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--distinct", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--paths", nargs="+", default=["inprocess", "server", "ray"])
    p.add_argument("--ray-python", type=Path, default=RAY_PYTHON)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    src = tmp / "in.jsonl"
    unique = make_input(src, args.rows, args.distinct)
    log(f"input: {args.rows} rows, {unique} distinct texts")
    cache = tmp / "onnx"
    e = env(cache, tmp / "data")
    common = ["--batch-size", str(args.batch_size)]
    results = []
    server = None
    try:
        if {"server", "ray"} & set(args.paths):
            server, key = hb.start_server(tmp / "server", cache)
            assert key is not None
        if "inprocess" in args.paths:
            results.append(measure("in-process", lambda o: cmd(
                sys.executable, src, o, [*common, "--concurrency", str(args.concurrency)]),
                e, tmp, args.rows, args.repeats))
        if "server" in args.paths and server is not None:
            results.append(measure("server", lambda o: cmd(
                sys.executable, src, o, [*common, "--concurrency", str(args.concurrency),
                                         "--url", server.base_url, "--key", key]),
                e, tmp, args.rows, args.repeats))
        if "ray" in args.paths and server is not None:
            if not args.ray_python.exists():
                log(f"ray skipped: {args.ray_python} missing (pip install -e '.[ray]')")
            else:
                with ray_cluster(args.ray_python, cpus=2) as address:
                    results.append(measure("ray (2 actors -> server)", lambda o: cmd(
                        str(args.ray_python), src, o,
                        [*common, "--concurrency", "2", "--ray", address, "--url",
                         server.base_url, "--key", key]), e, tmp, args.rows, args.repeats))
    finally:
        if server is not None:
            server.stop()
    print(f"{args.rows} rows, {unique} distinct texts, batch size {args.batch_size}, "
          f"{args.repeats} run(s) per path (median)")
    print("| path | job s | rows/s | distinct texts/s | killed at (chunks) | resume s | "
          "resumed/full |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: |")
    for r in results:
        print(f"| {r['path']} | {r['job_s']:.1f} | {r['rows_per_s']:.0f} | "
              f"{r['unique_per_s']:.0f} | {r['saved_at_kill']}/{r['chunks']} | "
              f"{float(r['resume_s']):.1f} | {r['resume_ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
