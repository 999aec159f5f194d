"""Opening the database: SQLite (WAL) by default, PostgreSQL for fleets shared by processes."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import peewee
from playhouse.db_url import parse
from playhouse.pool import PooledPostgresqlDatabase
from playhouse.shortcuts import ReconnectMixin

DB_ENV = "GOODS_FACTORY_DB"
SQLITE_PRAGMAS = {  # in this order: the first waits for a lock the others may need
    "busy_timeout": 15_000,  # ms to wait for another writer before failing
    "journal_mode": "wal",  # readers never block the writer
    "foreign_keys": 1,
    "synchronous": "normal",  # safe with WAL; a power cut may lose the last commit only
}


class DatabaseError(Exception):
    """The database cannot be opened or used."""


# What a lost connection looks like: the server went away, or the backend was killed.
CONNECTION_LOST = (peewee.OperationalError, peewee.InterfaceError)


class Postgres(ReconnectMixin, PooledPostgresqlDatabase):
    """PostgreSQL with a pool of connections (one per thread at a time). A query outside a
    transaction that finds its connection dead reconnects and runs again; a transaction
    that does fails, its connection is dropped, and the caller tries again later."""

    reconnect_errors = (
        (peewee.OperationalError, "server closed the connection"),
        (peewee.OperationalError, "terminating connection"),
        (peewee.OperationalError, "could not receive data"),
        (peewee.OperationalError, "connection to server"),
        (peewee.InterfaceError, "connection already closed"),
        (peewee.InterfaceError, "cursor already closed"),
    )


def default_path() -> Path:
    """`$XDG_DATA_HOME/goods-factory/goods-factory.db` (or under ~/.local/share)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "goods-factory" / "goods-factory.db"


def resolve_url(db: str | None) -> str:
    """The database to use: `--db`, else $GOODS_FACTORY_DB, else the default file."""
    return db or os.environ.get(DB_ENV) or str(default_path())


def describe(url: str) -> str:
    """The URL without a password, for messages and logs."""
    parts = urlsplit(url)
    if parts.scheme.startswith("postgres") and parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def open_database(url: str) -> peewee.Database:
    """A connected database for a `postgresql://` URL, a `sqlite:///` URL or a file path."""
    scheme = urlsplit(url).scheme
    try:
        if scheme in ("postgres", "postgresql"):
            db = Postgres(max_connections=64, stale_timeout=300, timeout=15,
                          **parse(url))
            db.connect(reuse_if_open=True)
        else:
            path = Path(url[len("sqlite:///"):] if scheme == "sqlite" else url).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            db = peewee.SqliteDatabase(str(path), pragmas=SQLITE_PRAGMAS)
            _connect_sqlite(db)
    except (peewee.PeeweeException, OSError, ImportError) as exc:
        raise DatabaseError(f"cannot open database {describe(url)}: {exc}") from None
    return db


def _connect_sqlite(db: peewee.SqliteDatabase) -> None:
    """Connect, trying again while the file is locked, up to the busy timeout: the switch
    to WAL needs the file to itself and SQLite refuses it at once, without waiting, when
    another process opens the same new file at that moment (two `produce` started
    together under a supervisor, about one start in ten here)."""
    deadline = time.monotonic() + SQLITE_PRAGMAS["busy_timeout"] / 1000
    pause = 0.01
    while True:
        try:
            db.connect(reuse_if_open=True)
            return
        except peewee.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
            db.close()
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def is_sqlite(db: peewee.Database) -> bool:
    return isinstance(db, peewee.SqliteDatabase)


@contextmanager
def transaction(db: peewee.Database):
    """One atomic change. SQLite takes the write lock up front (BEGIN IMMEDIATE), so two
    writers queue on the busy timeout instead of failing when a read turns into a write.
    If the connection is lost, the change is rolled back with it and the connection is
    dropped, so that the next change opens a new one."""
    outermost = db.transaction_depth() == 0
    try:
        if outermost and is_sqlite(db):
            with db.atomic(lock_type="IMMEDIATE") as txn:
                yield txn
        else:
            with db.atomic() as txn:
                yield txn
    except CONNECTION_LOST:
        if outermost and not is_sqlite(db):
            _drop_connection(db)
        raise


def _drop_connection(db: peewee.Database) -> None:
    try:
        if isinstance(db, PooledPostgresqlDatabase):
            db.manual_close()
        else:
            db.close()
    except Exception:  # it is already broken; a new one is opened on next use
        pass


class Table:
    """A model's table for statements written once and run many times. Peewee builds a
    query's SQL afresh on every call, and on the hottest paths (every pass saves the
    factory, every ship move writes its position, every claim checks the assignments)
    that was most of the bot's CPU. The SQL here is plain and reads the same on SQLite
    and PostgreSQL; values go through the fields' own conversions both ways."""

    def __init__(self, db: peewee.Database, model: type[peewee.Model]):
        self.db = db
        self.param = db.param
        self.fields = list(model._meta.sorted_fields)
        self._by_name = {f.name: f for f in self.fields}
        self.name = self.quote(model._meta.table_name)
        self.columns = ", ".join(self.col(f.name) for f in self.fields)

    def quote(self, name: str) -> str:
        return f"{self.db.quote[0]}{name}{self.db.quote[-1]}"

    def col(self, field: str) -> str:
        return self.quote(self._by_name[field].column_name)

    def equal(self, *fields: str) -> str:
        """`a = ? AND b = ?` for the named fields."""
        return " AND ".join(f"{self.col(f)} = {self.param}" for f in fields)

    def select(self, where: str = "", order: str = "") -> str:
        sql = f"SELECT {self.columns} FROM {self.name}"
        return sql + (f" WHERE {where}" if where else "") + (f" ORDER BY {order}" if order else "")

    def update(self, fields: Iterable[str], where: str) -> str:
        """`UPDATE … SET a = ?, b = ? WHERE …`: the new values first, then `where`'s."""
        sets = ", ".join(f"{self.col(f)} = {self.param}" for f in fields)
        return f"UPDATE {self.name} SET {sets} WHERE {where}"

    def values(self, row: Mapping[str, object], fields: Iterable[str],
               missing_null: bool = False) -> tuple:
        """The database's values of `row`'s `fields` (by field name): a missing one is an
        error, or NULL with `missing_null`."""
        if missing_null:
            return tuple(self._by_name[f].db_value(row.get(f)) for f in fields)
        return tuple(self._by_name[f].db_value(row[f]) for f in fields)

    def rows(self, sql: str, params: tuple = ()) -> list[dict]:
        """Run a `select` and give each row by field name, as Python values."""
        cursor = self.db.execute_sql(sql, params)
        fields = self.fields
        return [{f.name: f.python_value(v) for f, v in zip(fields, row, strict=True)}
                for row in cursor.fetchall()]

    def run(self, sql: str, params: tuple = ()) -> int:
        """Run a change; the number of rows it touched."""
        return self.db.rows_affected(self.db.execute_sql(sql, params))


class Upsert:
    """One `INSERT … ON CONFLICT (key) DO UPDATE` (or a plain INSERT without `key`) for a
    model, built once and run with plain parameters (see `Table`)."""

    def __init__(self, db: peewee.Database, model: type[peewee.Model],
                 key: tuple[str, ...] = (), update: tuple[str, ...] = ()):
        self.db = db
        self.table = t = Table(db, model)
        self.fields = [f.name for f in t.fields if not isinstance(f, peewee.AutoField)]
        columns = ", ".join(t.col(f) for f in self.fields)
        values = ", ".join(db.param for _ in self.fields)
        self.sql = f"INSERT INTO {t.name} ({columns}) VALUES ({values})"
        if key:
            sets = ", ".join(f"{t.col(f)} = EXCLUDED.{t.col(f)}" for f in update)
            self.sql += f" ON CONFLICT ({', '.join(t.col(k) for k in key)}) " + (
                f"DO UPDATE SET {sets}" if update else "DO NOTHING")
        # PostgreSQL gives a new row's id only when asked; SQLite's cursor keeps it
        key_column = t.quote(model._meta.primary_key.column_name)
        self._returning = "" if is_sqlite(db) else f" RETURNING {key_column}"

    def run(self, rows: Iterable[Mapping[str, object]]) -> None:
        """Write `rows` (by field name; a missing field is NULL) inside the caller's
        transaction."""
        params = [self.table.values(row, self.fields, missing_null=True) for row in rows]
        if len(params) == 1:
            self.db.execute_sql(self.sql, params[0])
        elif params:
            self.db.cursor().executemany(self.sql, params)

    def insert(self, row: Mapping[str, object]) -> int:
        """Write one new `row` inside the caller's transaction; its id."""
        cursor = self.db.execute_sql(self.sql + self._returning,
                                     self.table.values(row, self.fields, missing_null=True))
        return cursor.fetchone()[0] if self._returning else cursor.lastrowid
