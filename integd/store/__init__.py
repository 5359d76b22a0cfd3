"""integd's SQLite store: the database core (`integd.store.db`) that every repository builds on.

Example::

    from integd.store import Database
    db = await Database.open(path, migrations)
"""

from integd.store.db import (
    ConstraintViolation,
    Database,
    Migration,
    SchemaTooNew,
    StoreCorrupt,
    StoreError,
    translate,
)

__all__ = [
    "ConstraintViolation",
    "Database",
    "Migration",
    "SchemaTooNew",
    "StoreCorrupt",
    "StoreError",
    "translate",
]
