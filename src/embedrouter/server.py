"""Composition root: build every service from settings, and run the ASGI app under uvicorn."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from pathlib import Path
from typing import Any

from embedrouter.api.app import App, Services
from embedrouter.api.parse import Limits
from embedrouter.api.tracing import Tracing
from embedrouter.bootstrap import announce_keys
from embedrouter.cache import VectorCache, build_cache
from embedrouter.catalog import build_catalog
from embedrouter.catalog.models import ModelFacts
from embedrouter.httpserver import (
    ConnectionLimits,
    effective_max_connections,
    protocol_class,
    raise_open_file_limit,
)
from embedrouter.httpserver.protocol import FD_RESERVE, MAX_LINGERING
from embedrouter.router import Router
from embedrouter.router.dispatch import Dispatcher
from embedrouter.settings import ModelConfig, Settings, SettingsError

log = logging.getLogger("embedrouter")


def _model_dir(cfg: ModelConfig) -> Path:
    from embedrouter.engine import default_model_dir

    return Path(cfg.path).expanduser() if cfg.path else default_model_dir()


def load_local_models(settings: Settings) -> dict[str, dict[str, object]]:
    """Load every local embeddings model at each of its precisions: slug -> precision -> model.

    Each graph is built once (a lower precision from the fp32 graph), then read from the cache.
    """
    from embedrouter.engine import LocalModel

    loaded: dict[str, dict[str, object]] = {}
    for cfg in settings.all_models():
        if "embeddings" not in cfg.output_modalities:
            continue
        loaded[cfg.slug] = dict(LocalModel.load_precisions(
            _model_dir(cfg), cfg.quantizations, cache_dir=settings.onnx_cache_dir,
            threads=session_threads(settings.engine_threads, settings.engine_forwards)))
    return loaded


def session_threads(threads: int | None, forwards: int, cores: int | None = None) -> int | None:
    """Intra-op threads per session: ``[engine] threads`` if set; else, with several forwards
    at once, the cores shared out between them (at least one each); else None (all cores)."""
    if threads is not None or forwards == 1:
        return threads
    if cores is None:
        from embedrouter.engine.model import usable_cores

        cores = usable_cores()
    return max(1, cores // forwards)


def model_facts(settings: Settings, models: dict[str, dict[str, object]]
                ) -> dict[str, ModelFacts]:
    facts = {}
    for cfg in settings.all_models():
        by_precision = models.get(cfg.slug)
        if not by_precision:
            continue
        model = next(iter(by_precision.values()))
        weights = _model_dir(cfg) / "model.safetensors"
        created = int(weights.stat().st_mtime) if weights.exists() else 0
        facts[cfg.slug] = ModelFacts(
            dimensions=model.dim,  # type: ignore[attr-defined]
            context_length=model.max_seq_length,  # type: ignore[attr-defined]
            upstream_id=cfg.hugging_face_id or cfg.slug,
            created=created,
            fingerprint=local_fingerprint(model, truncate=settings.truncate),
        )
    return facts


def local_fingerprint(model: object, *, truncate: bool) -> str:
    """What fixes a local model's vectors, for the vector cache's keys: the ONNX graph's name
    (a hash of builder version, quantization flavour, weights, config, pooling and
    normalization), the weights' and tokenizer's hashes, and the truncation policy."""
    import hashlib

    tokenizer = model.spec.tokenizer_path  # type: ignore[attr-defined]
    tok_sha = hashlib.sha256(tokenizer.read_bytes()).hexdigest()
    return (f"local:{model.onnx_path.stem}:{model.weights_sha256}:"  # type: ignore[attr-defined]
            f"tok={tok_sha}:truncate={truncate}")


async def build_router(settings: Settings, cache: VectorCache | None = None) -> Router:
    """Load the models, start their batchers and wire the router (shared by serve and embed).
    ``cache``: the vector cache the server built (the CLI's one-shot ``embed`` has none)."""
    from embedrouter.arrivals import Arrivals
    from embedrouter.engine import Batcher
    from embedrouter.engine.batcher import DEFAULT_MAX_BATCH_ATTENTION
    from embedrouter.engine.quantize import ACTIVATION_FACTOR
    from embedrouter.providers.local import LoadedModel, LocalProvider

    models = await asyncio.to_thread(load_local_models, settings)
    catalog = build_catalog(settings.all_models(), model_facts(settings, models),
                            settings.remote_models)
    # Load the OpenAI rank tables now (0.1-0.2 s each), not on the event loop at the first request.
    from embedrouter import tokens

    for mode in {m.token_ids for m in catalog.embedding_models()} & set(tokens.ENCODINGS):
        await asyncio.to_thread(tokens.encoding, mode)
    arrivals = Arrivals()
    loaded: dict[str, dict[str, LoadedModel]] = {}
    for slug, by_precision in models.items():
        for precision, model in by_precision.items():
            # Forwards at once each get their share of the activation budget, so the peak
            # stays what one forward alone may use.
            share = ACTIVATION_FACTOR[precision] * settings.engine_forwards
            batcher = Batcher(model,  # type: ignore[arg-type]
                              max_batch_tokens=max(settings.max_batch_tokens // share,
                                                   model.max_seq_length),  # type: ignore[attr-defined]
                              max_batch_attention=DEFAULT_MAX_BATCH_ATTENTION // share,
                              max_batch_size=settings.max_batch_size,
                              max_queue_items=settings.max_queue_items,
                              inline_max_tokens=settings.inline_max_tokens,
                              forwards=settings.engine_forwards, arrivals=arrivals)
            await batcher.start()
            loaded.setdefault(slug, {})[precision] = LoadedModel(
                model=model, batcher=batcher)  # type: ignore[arg-type]
    return Router(catalog, {"local": LocalProvider(loaded, truncate=settings.truncate)},
                  build_dispatcher(settings), deadline_s=settings.request_deadline_s,
                  cache=cache, arrivals=arrivals)


def build_dispatcher(settings: Settings) -> Dispatcher:
    """Adapters for the enabled providers that serve at least one remote model."""
    from embedrouter.providers.http import HttpClient
    from embedrouter.providers.registry import adapter_for

    used = {ep.provider for m in settings.remote_models for ep in m.endpoints}
    http = HttpClient()
    adapters = {s.config.name: adapter_for(s.config, http) for s in settings.providers
                if s.enabled and s.config.name in used}
    limits = {s.config.name: s.config.max_concurrency for s in settings.providers}
    dispatcher = Dispatcher(adapters, limits=limits)
    dispatcher.on_close(http.close)
    return dispatcher


async def build_accounts(settings: Settings, store: Any) -> Any:
    """Admission over the store: Redis counters when EMBEDROUTER_REDIS_URL is set (several
    instances), in-process ones otherwise; None when ``[accounts] enabled = false``."""
    from embedrouter.accounts.admission import Accounts
    from embedrouter.accounts.counters import MemoryCounters

    if not settings.accounts.enabled:
        return None
    if settings.redis_url:
        from embedrouter.accounts.redis_counters import RedisCounters

        counters: Any = RedisCounters(settings.redis_url, store, store,
                                      prefix=settings.redis_prefix)
        accounts = Accounts(store, counters, settings.accounts, reclaims=True)
    else:
        accounts = Accounts(store, MemoryCounters(store), settings.accounts)
    try:
        await accounts.start()
    except BaseException:
        await accounts.close()
        raise
    return accounts


async def build_services(settings: Settings) -> Services:
    from embedrouter.accounts import KeyService
    from embedrouter.store import open_store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(settings.resolved_database_url)
    cache = None
    accounts = None
    try:
        cache = await build_cache(settings.cache, settings.data_dir)
        accounts = await build_accounts(settings, store)
        router = await build_router(settings, cache)
    except BaseException:
        if cache is not None:
            await cache.close()
        if accounts is not None:
            await accounts.close()
        await store.close()
        raise
    reclaimer = None
    if accounts is not None and accounts.reclaims:
        reclaimer = asyncio.create_task(
            accounts.counters.run_reclaimer(settings.accounts.reclaim_every_s))

    async def close() -> None:
        if reclaimer is not None:
            reclaimer.cancel()
        await router.close()
        if cache is not None:
            await cache.close()
        if accounts is not None:
            await accounts.close()
        await store.close()

    return Services(router=router, catalog=router.catalog, keys=KeyService(store),
                    accounts=accounts, store=store,
                    max_body_bytes=settings.max_body_bytes,
                    limits=Limits(max_inputs=settings.max_inputs,
                                  max_input_chars=settings.max_input_chars),
                    close=close)


def create_app(settings: Settings) -> App:
    """The ASGI app; nothing is built until the server's lifespan starts it."""
    return App(lambda: build_services(settings), tracing=build_tracing(settings))


def build_tracing(settings: Settings) -> Tracing | None:
    """OTLP tracing when an endpoint is configured; None (no cost at all) otherwise."""
    if not settings.otlp_endpoint:
        return None
    try:
        return Tracing.otlp(settings.otlp_endpoint)
    except ImportError as exc:
        raise SettingsError(f"telemetry.otlp_endpoint is set but OpenTelemetry is not "
                            f"installed ({exc.name}): pip install 'embedrouter[otel]'") from None


async def bootstrap_keys(settings: Settings) -> tuple[str, str] | None:
    """On the very first start, create a management key and an inference key to print once."""
    from embedrouter.accounts import KeyService
    from embedrouter.store import open_store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(settings.resolved_database_url)
    try:
        keys = KeyService(store)
        management = await keys.ensure_bootstrap_key()
        if management is None:
            return None
        inference, _ = await keys.create("default")
        return management, inference
    finally:
        await store.close()


# Garbage-collector settings for serving. A proxied request allocates a few hundred containers
# (reply dicts, response rows, tasks), so CPython's default generation-0 threshold of 700 runs a
# collection every request or two, and each older-generation pass walks everything loaded at
# start (catalog, tokenizers, runtime). Measured in process at concurrency 32 (32-input proxied
# request): about 20% of the CPU per request went to the collector with the defaults, and
# freezing the startup heap plus a 10,000 threshold removed nearly all of it. Nearly all garbage
# is freed by reference counting; the collector only has cycles (exceptions, frames) to find.
GC_THRESHOLDS = (10_000, 50, 50)


def tune_gc() -> None:
    """Move everything built so far out of the collector's reach and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve(settings: Settings) -> int:
    """Run the server in the foreground until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Parsing and decoding of large requests run in worker threads; each time the event loop
    # needs the GIL back it may wait a whole switch interval, several times per request it
    # serves. 1 ms instead of 5 ms keeps other connections responsive while such work runs.
    sys.setswitchinterval(0.001)
    created = asyncio.run(bootstrap_keys(settings))
    if created is not None:
        # Shown once: only hashes are stored, so these cannot be shown again.
        announce_keys(*created, data_dir=settings.data_dir, stdout=sys.stdout)

    open_files = raise_open_file_limit()
    limits = ConnectionLimits(
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        keepalive_timeout_s=settings.keepalive_timeout_s,
        max_connections=effective_max_connections(settings.max_connections, open_files,
                                                  FD_RESERVE + MAX_LINGERING),
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        # httptools under our guards: timeouts, connection cap, JSON envelope on parse errors.
        http=protocol_class(limits),
        ws="none",
        lifespan="on",
        access_log=False,
        # Nothing here reads the client address, so uvicorn's X-Forwarded-For middleware would
        # be a layer of work on every request for no one.
        proxy_headers=False,
        log_level="warning",
        server_header=False,
        date_header=False,
    )
    server = uvicorn.Server(config)
    original_startup = server.startup

    async def startup(sockets: list | None = None) -> None:
        await original_startup(sockets=sockets)
        if server.started:
            host = settings.host if ":" not in settings.host else f"[{settings.host}]"
            port = settings.port
            if server.servers:
                port = server.servers[0].sockets[0].getsockname()[1]
            tune_gc()
            log.info("embedrouter ready on http://%s:%s/api/v1 (pid %s)", host, port, os.getpid())

    server.startup = startup  # type: ignore[method-assign]
    server.run()
    return 0 if server.started else 1
