"""Persistence behind small async interfaces; the only package that speaks SQL.

``open_store(url)`` picks the backend from the URL:

* ``sqlite:///abs/path/embedrouter.db``: the default, one file, folders created as needed;
* ``postgresql://user@host:5432/db`` (or ``postgres://``): shared by several instances.

Both run their numbered migrations at open and pass the same test suite.
"""

from __future__ import annotations

from pathlib import Path

from embedrouter.store.base import DuplicateKey, Store, StoreUnavailable
from embedrouter.store.migrations import SchemaTooNew
from embedrouter.store.records import KeyRecord

__all__ = [
    "DuplicateKey",
    "KeyRecord",
    "SchemaTooNew",
    "Store",
    "StoreUnavailable",
    "open_store",
    "sqlite_path",
]

_SQLITE_SCHEME = "sqlite://"
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def sqlite_path(database_url: str) -> Path:
    """The file named by a ``sqlite:///abs/path.db`` URL; raises ValueError on anything else."""
    if not database_url.startswith(_SQLITE_SCHEME):
        raise ValueError("not a sqlite:// URL")
    path = Path(database_url.removeprefix(_SQLITE_SCHEME))
    # A relative path would depend on the working directory of whichever process opens it,
    # and the server and the CLI must agree on one file.
    if not path.is_absolute() or path == Path("/"):
        raise ValueError(
            f"database_url {database_url!r}: SQLite needs an absolute file path, "
            "e.g. sqlite:///var/lib/embedrouter/embedrouter.db"
        )
    return path


async def open_store(database_url: str) -> Store:
    """Open the store named by ``database_url``, creating and migrating it as needed.

    Raises ValueError for an unsupported URL, StoreUnavailable if PostgreSQL cannot be reached,
    and SchemaTooNew if a newer embedrouter has already migrated the database.
    """
    if database_url.startswith(_SQLITE_SCHEME):
        from embedrouter.store.sqlite import open_sqlite

        return await open_sqlite(sqlite_path(database_url))
    if database_url.startswith(_POSTGRES_SCHEMES):
        # Imported here so that SQLite-only installs never load psycopg.
        from embedrouter.store.postgres import PostgresStore

        return await PostgresStore.open(database_url)
    scheme = database_url.split(":", 1)[0] if ":" in database_url else database_url[:20]
    raise ValueError(
        f"database_url: unsupported scheme {scheme!r}; use sqlite:///abs/path.db "
        "or postgresql://user@host/db"
    )
