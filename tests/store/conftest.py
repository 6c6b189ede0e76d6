from tests.store.backends import (  # noqa: F401  (fixtures and a hook, registered by import)
    db_url,
    open_db,
    pg_url,
    pytest_terminal_summary,
    store,
)
