"""The process's open-file limit, and the connection cap it allows."""

from __future__ import annotations

import logging

log = logging.getLogger("embedrouter.http")


def raise_open_file_limit() -> int | None:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return the soft limit now in force.

    Distributions default the soft limit to 1024 while allowing far more, and every
    connection holds a descriptor. None where the platform has no such limit (Windows).
    """
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return soft
    target = hard
    if target == resource.RLIM_INFINITY:
        # Linux refuses an infinite NOFILE soft limit; its real ceiling is fs.nr_open.
        target = _nr_open() or soft
    if target != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %s to %s: %s", soft, target,
                        exc)
    return soft


def _nr_open() -> int | None:
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def effective_max_connections(configured: int, open_file_limit: int | None,
                              reserve: int) -> int:
    """The configured cap, lowered so that accepted connections can never exhaust the
    descriptors the process needs (at least 1)."""
    if open_file_limit is None or open_file_limit == -1:
        return configured
    allowed = max(1, open_file_limit - reserve)
    if allowed < configured:
        log.warning("server.max_connections lowered from %d to %d: the open-file limit is %d",
                    configured, allowed, open_file_limit)
    return min(configured, allowed)
