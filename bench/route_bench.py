"""Route table: the hand-written dispatch (a dict lookup) against Starlette's router, in one run.

    python bench/route_bench.py [--requests 3000] [--repeats 5] [--concurrency 32]

The issue's rule: with about twenty routes, use Starlette's router if it costs <= 3% of
throughput at concurrency 32. Two servers run the same embedrouter App under uvicorn (uvloop,
httptools); in one, ``App._dispatch`` is replaced by Starlette's matching (``Route.matches`` over
the same table, in order, FULL then PARTIAL -> 405, exactly what ``starlette.routing.Router``
does) with the path-parameter routes written as Starlette paths. Everything else (auth,
envelope, metrics, compression) is the same code.

Two requests, each at ``--concurrency`` keep-alive connections, in interleaved rounds:
``GET /api/v1/health`` (the cheapest route, listed last in Starlette's table: the worst case
for a linear matcher, and where routing is the largest share of the work) and
``POST /api/v1/embeddings`` with one short input (the route that matters). Medians of
``--repeats`` rounds; the ratio is Starlette / hand-written.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import http_bench as hb  # sibling scripts, not a package
import orjson
import proxy_bench as pb
from accounts_bench import wait_ready

SERVER = textwrap.dedent('''
    import sys
    import uvicorn
    from embedrouter.api import errors as _e
    from embedrouter.api.views import API_PREFIX
    from embedrouter.errors import MethodNotAllowed, NotFound
    from embedrouter.server import create_app
    from embedrouter.settings import load_settings

    variant, port = sys.argv[1], int(sys.argv[2])
    app = create_app(load_settings())

    if variant == "starlette":
        from starlette.routing import Match, Route

        async def _unused(request):  # Route needs an endpoint; dispatch calls ours
            return None

        table = []
        for path, methods in app._routes.items():
            if path not in ("/health", f"{API_PREFIX}/health"):
                table.append((Route(path, _unused, methods=list(methods)), methods, None))
        table.append((Route(f"{API_PREFIX}/keys/{{key_hash}}", _unused,
                            methods=["GET", "PATCH", "DELETE"]), None, "keys"))
        table.append((Route(f"{API_PREFIX}/models/{{author}}/{{name}}/endpoints", _unused,
                            methods=["GET"]), None, "endpoints"))
        for path in ("/health", f"{API_PREFIX}/health"):
            table.append((Route(path, _unused, methods=["GET"]), app._routes[path], None))

        async def dispatch(request):
            scope = {"type": "http", "path": request.path, "method": request.method,
                     "root_path": ""}
            allowed = None
            for route, methods, kind in table:
                match, child = route.matches(scope)
                if match is Match.NONE:
                    continue
                if kind == "keys":
                    methods = app._key_routes(request.path)
                elif kind == "endpoints":
                    slug = "/".join((child["path_params"]["author"],
                                     child["path_params"]["name"]))
                    methods = {"GET": lambda r, s=slug: app._endpoints(s)}
                if match is Match.FULL:
                    if request.method == "HEAD" and "GET" in methods:
                        status, _, extra = await methods["GET"](request)
                        return status, b"", extra
                    return await methods[request.method](request)
                allowed = allowed or methods
            if allowed:
                raise MethodNotAllowed(request.method, sorted(allowed))
            raise NotFound(f"No route for {request.method} {request.path}")

        app._dispatch = dispatch

    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning")
''')


class GetConnection(hb.RawConnection):
    """A keep-alive connection that sends one fixed GET."""

    def __init__(self, base_url: str, path: str) -> None:
        super().__init__(base_url, "unused")
        self.head = (f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n").encode()

    async def get(self) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.head)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        data = await self.reader.readexactly(length)
        return int(head[9:12]), data


async def load_get(port: int, n: int, conc: int) -> float:
    conns = [GetConnection(f"http://127.0.0.1:{port}/api/v1", "/api/v1/health")
             for _ in range(conc)]
    await asyncio.gather(*(c.get() for c in conns))
    cursor = iter(range(n))

    async def worker(c: GetConnection) -> None:
        for _ in cursor:
            status, _ = await c.get()
            assert status == 200

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    wall = time.perf_counter() - start
    await hb.close_conns(conns)
    return n / wall


async def load_embed(port: int, key: str, n: int, conc: int) -> float:
    body = orjson.dumps({"model": hb.MODEL, "input": hb.SHORT, "encoding_format": "base64"})
    conns = await hb.open_conns("raw", f"http://127.0.0.1:{port}/api/v1", key, conc, body)
    result = await hb.run_load(conns, [(body, 1)] * n)
    await hb.close_conns(conns)
    return result.requests / result.wall_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    procs = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        env = {**os.environ, "EMBEDROUTER_DATA_DIR": str(tmp)}
        key = subprocess.run([sys.executable, "-m", "embedrouter", "keys", "create", "--label",
                              "bench"], env=env, capture_output=True, text=True,
                             check=True).stdout.strip()
        ports = {}
        try:
            for variant in ("hand-written", "starlette"):
                port = pb.free_port()
                procs.append(pb.spawn([sys.executable, "-c", SERVER,
                                       variant.replace("hand-written", "dict"), str(port)],
                                      env=env))
                wait_ready(f"http://127.0.0.1:{port}/health")
                ports[variant] = port
            rates: dict[tuple[str, str], list[float]] = {}
            for label, run in (
                    ("GET /health", lambda p: load_get(p, args.requests, args.concurrency)),
                    ("POST /embeddings", lambda p: load_embed(p, key, args.requests // 3,
                                                              args.concurrency))):
                for port in ports.values():
                    asyncio.run(run(port))  # warm-up
                for r in range(args.repeats):
                    for variant, port in ports.items():
                        rate = asyncio.run(run(port))
                        rates.setdefault((label, variant), []).append(rate)
                        hb.log(f"{label} round {r + 1} {variant}: {rate:.0f} req/s")
        finally:
            for p in procs:
                pb.stop(p)
    print(f"\n{'request':<18} {'dispatch':<13} {'req/s':>8}  runs")
    verdicts = []
    for label in ("GET /health", "POST /embeddings"):
        med = {v: statistics.median(rates[(label, v)]) for v in ports}
        for v in ports:
            runs = ", ".join(f"{x:.0f}" for x in rates[(label, v)])
            print(f"{label:<18} {v:<13} {med[v]:>8.0f}  {runs}")
        ratio = med["starlette"] / med["hand-written"]
        verdicts.append(ratio >= 0.97)
        print(f"{label:<18} starlette / hand-written = {ratio:.3f}")
    print("\nrule: use Starlette's router if it costs <= 3% (ratio >= 0.97) at concurrency "
          f"{args.concurrency}: {'USE STARLETTE' if all(verdicts) else 'KEEP HAND-WRITTEN'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
