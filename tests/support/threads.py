"""Run one callable on several threads at once (for races between processes sharing a file)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def at_once(fn: Callable[[], T], n: int) -> tuple[list[T], list[BaseException]]:
    """Start ``n`` threads running ``fn`` together and wait for all: their results and what
    they raised, each in completion order."""
    results: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(fn())
        except BaseException as exc:  # collected for the caller's assertion
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors
