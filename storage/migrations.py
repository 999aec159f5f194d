"""Ordered schema migrations behind a schema-version table.

Each migration runs once, in its own transaction, in order. Two processes starting at
once serialise on a lock (PostgreSQL advisory lock, SQLite's write lock). A new
migration is appended to MIGRATIONS and uses `playhouse.migrate` for changes to tables
that already hold data.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import peewee

from storage import models
from storage.db import DatabaseError, is_sqlite, transaction

MIGRATION_LOCK = 7_305_114  # an arbitrary advisory-lock key for this program


def _v1_initial(db: peewee.Database) -> None:
    db.create_tables([t for t in models.TABLES if t is not models.SchemaVersion])


MIGRATIONS: list[tuple[int, str, Callable[[peewee.Database], None]]] = [
    (1, "initial tables", _v1_initial),
]


def current_version(db: peewee.Database) -> int:
    if not db.table_exists(models.SchemaVersion._meta.table_name):
        return 0
    row = models.SchemaVersion.select(peewee.fn.MAX(models.SchemaVersion.version)).scalar()
    return row or 0


def latest_version() -> int:
    return MIGRATIONS[-1][0]


def migrate(db: peewee.Database) -> int:
    """Bring the schema to the newest version; returns it. A database written by a newer
    goods-factory is refused: this one would misread it."""
    models.database.initialize(db)
    with transaction(db):
        if not is_sqlite(db):
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        db.create_tables([models.SchemaVersion])
        version = current_version(db)
        if version > latest_version():
            raise DatabaseError(f"the database is at schema version {version}, newer than the "
                                f"{latest_version()} this goods-factory knows: upgrade "
                                "goods-factory (or use another --db)")
        for number, _name, step in MIGRATIONS:
            if number > version:
                step(db)
                models.SchemaVersion.create(version=number,
                                            applied_at=datetime.now(UTC).replace(tzinfo=None))
                version = number
    return version
