"""The options of ``embedrouter batch``; light to import, since every CLI command builds them."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="INPUT", help="a .jsonl, .csv or .parquet file")
    p.add_argument("--column", required=True, help="the column holding the texts")
    p.add_argument("--out", required=True, help="the .parquet file to write")
    p.add_argument("--model", required=True, help="model slug, e.g. openai/text-embedding-3-small")
    p.add_argument("--url", default=None,
                   help="an OpenRouter-compatible base URL (e.g. http://127.0.0.1:8000/api/v1); "
                        "without it the model runs in this process, no server needed")
    p.add_argument("--key", default=None,
                   help="API key for --url (default: env EMBEDROUTER_API_KEY or "
                        "OPENROUTER_API_KEY)")
    p.add_argument("--id-column", action="append", default=None, dest="id_columns",
                   help="a column to keep beside the vector (repeatable; default: every column "
                        "but the text column)")
    p.add_argument("--keep-text", action="store_true", help="keep the text column too")
    p.add_argument("--dimensions", type=int, default=None)
    p.add_argument("--input-type", default=None)
    p.add_argument("--batch-size", type=int, default=128, help="texts per request (default 128)")
    p.add_argument("--concurrency", type=int, default=4,
                   help="requests in flight (default 4); with --ray, the number of actors")
    p.add_argument("--restart", action="store_true",
                   help="discard a checkpoint left by a different job instead of refusing")
    p.add_argument("--dry-run", action="store_true",
                   help="print the token count and cost, send nothing")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run on the Ray cluster at ADDRESS (e.g. 127.0.0.1:6379, or auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
