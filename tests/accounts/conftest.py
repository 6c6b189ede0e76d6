from __future__ import annotations

import pytest

from embedrouter.accounts import KeyService
from embedrouter.store import Store
from tests.store.backends import db_url, open_db, store  # noqa: F401  (fixtures, by import)


@pytest.fixture
def keys(store: Store) -> KeyService:  # noqa: F811
    """A KeyService over a fresh store, per backend."""
    return KeyService(store)
