"""``embedrouter batch``: options from the command line, a job, a one-line summary."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from embedrouter.batch.embedders import Target
from embedrouter.batch.errors import BatchError
from embedrouter.batch.job import JobOptions, dry_run, run


def options(args: argparse.Namespace) -> JobOptions:
    key = args.key or os.environ.get("EMBEDROUTER_API_KEY") or os.environ.get(
        "OPENROUTER_API_KEY")
    target = Target(model=args.model, url=args.url, key=key, dimensions=args.dimensions,
                    input_type=args.input_type, config=args.config, data_dir=args.data_dir)
    return JobOptions(input=Path(args.input), column=args.column, out=Path(args.out),
                      target=target, id_columns=args.id_columns, keep_text=args.keep_text,
                      batch_size=args.batch_size, concurrency=args.concurrency,
                      restart=args.restart, progress=not args.no_progress)


def _print(summary: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary))
        return
    for name, value in summary.items():
        print(f"{name:>18}: {value}")


def main(args: argparse.Namespace) -> int:
    opts = options(args)
    try:
        if args.dry_run:
            _print(dry_run(opts), args.json)
            return 0
        if args.ray:
            from embedrouter.batch.ray_runner import run_on_ray

            report = run_on_ray(opts, args.ray)
        else:
            report = run(opts)
    except BatchError as exc:
        print(f"embedrouter: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"embedrouter: interrupted; finished chunks are kept in {opts.out}.partial: "
              "run the same command again to resume", file=sys.stderr)
        return 130
    summary = report.as_dict()
    summary["rows_per_s"] = round(report.rows / report.seconds, 1) if report.seconds else None
    _print(summary, args.json)
    return 0
