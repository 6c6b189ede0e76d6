"""Command line: `embedrouter serve | keys | credits | usage | embed | batch`. Thin: the packages
own the logic."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from embedrouter import __version__


def _settings(args: argparse.Namespace, **overrides: Any) -> Any:
    from embedrouter.settings import SettingsError, load_settings

    try:
        return load_settings(
            Path(args.config) if getattr(args, "config", None) else None,
            overrides={"data_dir": args.data_dir, **overrides},
        )
    except SettingsError as exc:
        print(f"embedrouter: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None,
                   help="state directory (default ./.embedrouter, env EMBEDROUTER_DATA_DIR)")
    p.add_argument("--config", default=None, help="TOML config file")


def _cmd_serve(args: argparse.Namespace) -> int:
    from embedrouter.server import serve

    return serve(_settings(args, host=args.host, port=args.port))


async def _with_store(args: argparse.Namespace, action: Any) -> Any:
    from embedrouter.store import open_store

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = await open_store(settings.resolved_database_url)
    try:
        return await action(store, settings)
    finally:
        await store.close()


async def _with_keys(args: argparse.Namespace, action: Any) -> Any:
    from embedrouter.accounts import KeyService

    return await _with_store(args, lambda store, _: action(KeyService(store)))


def _usd_arg(text: str) -> int:
    from embedrouter.accounts.money import parse_usd

    try:
        return parse_usd(text, field="USD")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_keys_create(args: argparse.Namespace) -> int:
    async def act(keys: Any) -> str:
        plaintext, _ = await keys.create(args.label, management=args.management,
                                         limit_nanos=args.limit, limit_reset=args.limit_reset,
                                         rpm=args.rpm, tpm=args.tpm,
                                         cache_policy=args.cache_policy)
        return plaintext

    print(asyncio.run(_with_keys(args, act)))
    return 0


def _cmd_keys_list(args: argparse.Namespace) -> int:
    async def act(keys: Any) -> list[Any]:
        return await keys.list()

    records = asyncio.run(_with_keys(args, act))
    if args.json:
        print(json.dumps([{"hash": r.key_hash, "label": r.label, "key": r.display,
                           "management": r.is_management, "disabled": r.disabled,
                           "created_at": r.created_at,
                           "cache_policy": r.cache_policy or "default"} for r in records],
                         indent=2))
        return 0
    print(f"{'HASH':<16} {'KEY':<22} {'KIND':<10} {'STATE':<8} LABEL")
    for r in records:
        kind = "management" if r.is_management else "inference"
        state = "disabled" if r.disabled else "active"
        print(f"{r.key_hash[:16]:<16} {r.display:<22} {kind:<10} {state:<8} {r.label}")
    return 0


def _cmd_keys_disable(args: argparse.Namespace) -> int:
    from embedrouter.errors import EmbedRouterError

    async def act(keys: Any) -> Any:
        return await keys.disable(args.key)

    try:
        record = asyncio.run(_with_keys(args, act))
    except EmbedRouterError as exc:
        print(f"embedrouter: {exc.message}", file=sys.stderr)
        return 1
    print(f"disabled {record.display} ({record.label})")
    return 0


def _cmd_credits_add(args: argparse.Namespace) -> int:
    import secrets
    import time

    from embedrouter.accounts.money import MAX_NANOS, from_nanos

    async def act(store: Any, _: Any) -> int:
        if await store.credits_total() + args.amount > MAX_NANOS:
            raise ValueError(f"the balance may not exceed {from_nanos(MAX_NANOS)} USD")
        return int(await store.add_credits(f"grant-{secrets.token_hex(8)}", args.amount,
                                           int(time.time() * 1000), args.note or ""))

    total = asyncio.run(_with_store(args, act))
    print(f"added ${from_nanos(args.amount)}; total credits ${from_nanos(total)}")
    return 0


def _cmd_credits_show(args: argparse.Namespace) -> int:
    from embedrouter.accounts.money import from_nanos
    from embedrouter.accounts.usage import balance

    async def act(store: Any, settings: Any) -> Any:
        return await balance(store), settings.accounts

    b, cfg = asyncio.run(_with_store(args, act))
    if not cfg.enabled:
        mode = "accounting off ([accounts] enabled = false): nothing is recorded"
    elif cfg.enforce_credits:
        mode = "enforced: requests the balance cannot pay for get 402"
    else:
        mode = ("unmetered: usage is recorded, nothing is refused for money "
                "(set [accounts] enforce_credits = true to enforce)")
    print(f"credits   ${from_nanos(b.credits)}")
    print(f"used      ${from_nanos(b.spent)}")
    print(f"balance   ${from_nanos(b.available)}")
    print(f"mode      {mode}")
    return 0


def _since_ms(text: str | None) -> int:
    from datetime import UTC, datetime

    if not text:
        return 0
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"embedrouter: --since: expected a date like 2026-01-31, got {text!r}"
                         ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _cmd_usage(args: argparse.Namespace) -> int:
    from embedrouter.accounts import KeyService
    from embedrouter.accounts.money import from_nanos

    since = _since_ms(args.since)

    async def act(store: Any, _: Any) -> Any:
        keys = {k.key_hash: k for k in await store.list_keys()}
        key_hash = (await KeyService(store).get(args.key)).key_hash if args.key else None
        return keys, await store.usage_report(key_hash, since)

    keys, rows = asyncio.run(_with_store(args, act))
    print(f"{'KEY':<22} {'LABEL':<20} {'MODEL':<44} {'REQUESTS':>9} {'TOKENS':>12} COST (USD)")
    total = 0
    for r in rows:
        key = keys.get(r.key_hash)
        shown, label = (key.display, key.label) if key else (r.key_hash[:16], "(deleted)")
        print(f"{shown:<22} {label[:20]:<20} {r.model[:44]:<44} {r.requests:>9} "
              f"{r.tokens:>12} {from_nanos(r.cost_nanos)}")
        total += r.cost_nanos
    print(f"{'total':<22} {'':<20} {'':<44} {sum(r.requests for r in rows):>9} "
          f"{sum(r.tokens for r in rows):>12} {from_nanos(total)}")
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    """Embed in-process, no server: same validation and pipeline as POST /embeddings."""
    from embedrouter.api.encode import embeddings_body, generation_id
    from embedrouter.api.parse import Limits, parse_embedding_request
    from embedrouter.errors import EmbedRouterError
    from embedrouter.server import build_router

    settings = _settings(args)
    body = {"model": args.model, "input": list(args.text),
            "encoding_format": args.encoding_format}
    if args.dimensions:
        body["dimensions"] = args.dimensions
    if args.input_type:
        body["input_type"] = args.input_type

    async def run() -> bytes:
        router = await build_router(settings)
        try:
            request = parse_embedding_request(body, Limits(settings.max_inputs,
                                                           settings.max_input_chars))
            result = await router.embed(request)
            return embeddings_body(result, request.encoding_format, generation_id())
        finally:
            await router.close()

    try:
        out = asyncio.run(run())
    except EmbedRouterError as exc:
        print(f"embedrouter: {exc.message}", file=sys.stderr)
        return 1
    sys.stdout.write(out.decode() + "\n")
    return 0


def _cmd_batch(args: argparse.Namespace) -> int:
    """Embed a file's column into parquet, resumably; the logic lives in embedrouter.batch."""
    try:
        from embedrouter.batch.command import main
    except ImportError as exc:
        print(f"embedrouter: batch needs the batch extra (pip install 'embedrouter[batch]'): "
              f"{exc}", file=sys.stderr)
        return 2
    return main(args)


def _cmd_providers(args: argparse.Namespace) -> int:
    """Every provider the catalog knows, enabled or not, and why; with the models it serves."""
    settings = _settings(args)
    serving: dict[str, list[str]] = {}
    for model in settings.remote_models:
        for ep in model.endpoints:
            serving.setdefault(ep.provider, []).append(model.slug)
    rows = [{"name": s.config.name, "kind": s.config.kind, "display_name": s.config.shown_name,
             "enabled": s.enabled, "why": s.reason, "source": "builtin" if s.builtin else "config",
             "base_url": s.config.base_url, "models": sorted(serving.get(s.config.name, []))}
            for s in settings.providers]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'PROVIDER':<18} {'KIND':<8} {'STATE':<9} {'MODELS':>6}  WHY")
    for r in rows:
        state = "enabled" if r["enabled"] else "disabled"
        print(f"{r['name']:<18} {r['kind']:<8} {state:<9} {len(r['models']):>6}  {r['why']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from embedrouter.store.records import KEY_CACHE_POLICIES

    parser = argparse.ArgumentParser(prog="embedrouter", description=__doc__)
    parser.add_argument("--version", action="version", version=f"embedrouter {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the HTTP server")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8000; 0 picks one)")
    _common(p)
    p.set_defaults(func=_cmd_serve)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_cmd",
                                                                        required=True)
    p = keys.add_parser("create", help="create a key and print it (shown only once)")
    p.add_argument("--label", required=True)
    p.add_argument("--management", action="store_true", help="an admin key (cannot embed)")
    p.add_argument("--limit", type=_usd_arg, default=None, metavar="USD",
                   help="spend limit in USD (default: none)")
    p.add_argument("--limit-reset", choices=["daily", "weekly", "monthly"], default=None,
                   help="the limit counts per UTC day, week or month (default: all time)")
    p.add_argument("--rpm", type=int, default=None, help="requests per minute for this key")
    p.add_argument("--tpm", type=int, default=None, help="tokens per minute for this key")
    p.add_argument("--cache-policy", choices=KEY_CACHE_POLICIES, default=None,
                   help="vector cache for this key's requests: default (Cache-Control "
                        "decides), no-cache (never read, still written) or no-store (neither)")
    _common(p)
    p.set_defaults(func=_cmd_keys_create)
    p = keys.add_parser("list", help="list keys (never their secret)")
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=_cmd_keys_list)
    p = keys.add_parser("disable", help="disable a key by the key itself or its hash (prefix)")
    p.add_argument("key", metavar="KEY_OR_HASH")
    _common(p)
    p.set_defaults(func=_cmd_keys_disable)

    credits = sub.add_parser("credits", help="the account's credit balance").add_subparsers(
        dest="credits_cmd", required=True)
    p = credits.add_parser("add", help="add credits (USD)")
    p.add_argument("amount", type=_usd_arg, metavar="USD")
    p.add_argument("--note", default=None, help="kept with the grant in the ledger")
    _common(p)
    p.set_defaults(func=_cmd_credits_add)
    p = credits.add_parser("show", help="credits, usage, balance and whether they are enforced")
    _common(p)
    p.set_defaults(func=_cmd_credits_show)

    p = sub.add_parser("usage", help="requests, tokens and cost per key and model")
    p.add_argument("--key", default=None, help="one key: the key, its hash or a hash prefix")
    p.add_argument("--since", default=None, metavar="DATE", help="e.g. 2026-01-31 (UTC)")
    _common(p)
    p.set_defaults(func=_cmd_usage)

    p = sub.add_parser("providers", help="list remote providers: enabled or not, and why")
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=_cmd_providers)

    p = sub.add_parser("embed", help="embed texts in-process and print the JSON response")
    p.add_argument("text", nargs="+")
    p.add_argument("--model", default="sentence-transformers/all-minilm-l6-v2")
    p.add_argument("--encoding-format", choices=["float", "base64"], default="float")
    p.add_argument("--dimensions", type=int, default=None)
    p.add_argument("--input-type", default=None)
    _common(p)
    p.set_defaults(func=_cmd_embed)

    from embedrouter.batch.arguments import add_arguments

    p = sub.add_parser("batch", help="embed a jsonl/csv/parquet column into a parquet file")
    add_arguments(p)
    _common(p)
    p.set_defaults(func=_cmd_batch)
    return parser


def _failure_message(exc: Exception) -> str:
    """What to tell the operator about a failed command: one line, no traceback."""
    import sqlite3

    from embedrouter.errors import EmbedRouterError
    from embedrouter.settings import SettingsError

    if isinstance(exc, EmbedRouterError):
        cause = exc.__cause__
        # A locked or broken SQLite file: its own words ("database is locked") say what to do.
        # Other causes (a PostgreSQL driver's) are not echoed: they may name hosts and users.
        if isinstance(cause, sqlite3.Error):
            return f"{exc.message} ({cause})"
        return exc.message
    if isinstance(exc, SettingsError):
        return f"configuration error: {exc}"
    if isinstance(exc, sqlite3.Error):
        return f"database error: {exc}"
    if isinstance(exc, OSError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # The CLI never prints a traceback: every failure is one line and a non-zero exit.
        print(f"embedrouter: {_failure_message(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
