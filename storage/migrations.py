"""Ordered schema migrations behind a schema-version table.

Each migration runs once, in its own transaction, in order. Two processes starting at
once serialise on a lock (PostgreSQL advisory lock, SQLite's write lock). A migration
never uses the live models (they follow the newest schema): v1 creates its tables from a
frozen copy, and later ones change tables with `playhouse.migrate` and plain queries.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import peewee
from playhouse import migrate as pm

from storage import models
from storage.db import DatabaseError, is_sqlite, transaction

MIGRATION_LOCK = 7_305_114  # an arbitrary advisory-lock key for this program


def _v1_initial(db: peewee.Database) -> None:
    """The first schema, frozen as it shipped."""

    class V1(peewee.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class FactoryRow(V1):
        id = peewee.CharField(primary_key=True, max_length=64)
        agent = peewee.CharField(max_length=32)
        target = peewee.CharField(max_length=64)
        system = peewee.CharField(max_length=32)
        status = peewee.CharField(max_length=16, index=True)
        plan = peewee.TextField(null=True)
        lot = peewee.IntegerField()
        units_wanted = peewee.IntegerField(null=True)
        units_acquired = peewee.IntegerField(default=0)
        min_supply = peewee.CharField(max_length=16)
        round = peewee.IntegerField(default=0)
        created_at = peewee.DateTimeField()
        started_at = peewee.DateTimeField(null=True)
        finished_at = peewee.DateTimeField(null=True)
        error = peewee.TextField(null=True)
        owner = peewee.CharField(max_length=128, null=True)
        heartbeat_at = peewee.DateTimeField(null=True)
        stop_requested = peewee.BooleanField(default=False)

    class TaskRow(V1):
        id = peewee.CharField(primary_key=True, max_length=128)
        factory = peewee.ForeignKeyField(FactoryRow, on_delete="CASCADE")
        round = peewee.IntegerField()
        node_path = peewee.CharField(max_length=64)
        kind = peewee.CharField(max_length=16)
        good = peewee.CharField(max_length=64)
        source = peewee.CharField(max_length=64)
        destination = peewee.CharField(max_length=64, null=True)
        units_target = peewee.IntegerField()
        depends_on = peewee.TextField(default="[]")
        feed = peewee.IntegerField(default=0)
        state = peewee.CharField(max_length=16, index=True)
        ship = peewee.CharField(max_length=64, null=True)
        last_ship = peewee.CharField(max_length=64, null=True)
        attempts = peewee.IntegerField(default=0)
        units_lost = peewee.IntegerField(default=0)
        not_before = peewee.DateTimeField(null=True)
        inputs_done_at = peewee.DateTimeField(null=True)
        started_at = peewee.DateTimeField(null=True)
        finished_at = peewee.DateTimeField(null=True)
        last_error = peewee.TextField(null=True)

    class ShipAssignment(V1):
        ship = peewee.CharField(primary_key=True, max_length=64)
        factory = peewee.ForeignKeyField(FactoryRow, null=True, on_delete="CASCADE")
        task = peewee.CharField(max_length=128, null=True)
        purpose = peewee.CharField(max_length=16)
        owner = peewee.CharField(max_length=128)
        assigned_at = peewee.DateTimeField()

    class WaypointRow(V1):
        symbol = peewee.CharField(primary_key=True, max_length=64)
        system = peewee.CharField(max_length=32, index=True)
        type = peewee.CharField(max_length=32)
        x = peewee.IntegerField()
        y = peewee.IntegerField()
        traits = peewee.TextField(default="[]")

    class MarketGood(V1):
        waypoint = peewee.CharField(max_length=64)
        system = peewee.CharField(max_length=32, index=True)
        good = peewee.CharField(max_length=64)
        type = peewee.CharField(max_length=16)
        supply = peewee.CharField(max_length=16, null=True)
        activity = peewee.CharField(max_length=16, null=True)
        trade_volume = peewee.IntegerField(null=True)
        purchase_price = peewee.IntegerField(null=True)
        sell_price = peewee.IntegerField(null=True)
        observed_at = peewee.DateTimeField(null=True)

        class Meta:
            indexes = ((("waypoint", "good"), True),)

    class MarketHistory(V1):
        waypoint = peewee.CharField(max_length=64)
        good = peewee.CharField(max_length=64)
        supply = peewee.CharField(max_length=16)
        activity = peewee.CharField(max_length=16, null=True)
        trade_volume = peewee.IntegerField()
        purchase_price = peewee.IntegerField()
        sell_price = peewee.IntegerField()
        observed_at = peewee.DateTimeField()

        class Meta:
            indexes = ((("waypoint", "good", "observed_at"), False),)

    class LedgerEntry(V1):
        agent = peewee.CharField(max_length=32, index=True)
        factory = peewee.CharField(max_length=64, null=True, index=True)
        task = peewee.CharField(max_length=128, null=True, index=True)
        ship = peewee.CharField(max_length=64)
        waypoint = peewee.CharField(max_length=64)
        good = peewee.CharField(max_length=64)
        kind = peewee.CharField(max_length=16)
        units = peewee.IntegerField()
        state = peewee.CharField(max_length=16, index=True)
        price_per_unit = peewee.IntegerField(null=True)
        total = peewee.BigIntegerField(null=True)
        credits_after = peewee.BigIntegerField(null=True)
        intended_at = peewee.DateTimeField()
        confirmed_at = peewee.DateTimeField(null=True)
        server_time = peewee.DateTimeField(null=True)
        note = peewee.TextField(null=True)

    db.create_tables([FactoryRow, TaskRow, ShipAssignment, WaypointRow, MarketGood,
                      MarketHistory, LedgerEntry])


def _migrator(db: peewee.Database) -> pm.SchemaMigrator:
    """The schema migrator for the database's engine."""
    return pm.SqliteMigrator(db) if is_sqlite(db) else pm.PostgresqlMigrator(db)


def _v2_lots_and_stations(db: peewee.Database) -> None:
    """Rounds of a task tree become lots, feeds and stations; destinations, reference
    prices and cargo evidence for the ledger. Open factories carry on where they were."""
    m = _migrator(db)
    # New columns are nullable with a default: on SQLite, a NOT NULL one is added by
    # rebuilding the table, and dropping the old factory table would cascade to its tasks.
    pm.migrate(
        m.add_column("factory_row", "destination",
                     peewee.CharField(max_length=160, null=True, default="hold")),
        m.add_column("factory_row", "strict_supply",
                     peewee.BooleanField(null=True, default=False)),
        m.add_column("factory_row", "reference", peewee.TextField(null=True, default="{}")),
        m.add_column("factory_row", "held_at_start", peewee.IntegerField(null=True, default=0)),
        m.add_column("task_row", "purpose",
                     peewee.CharField(max_length=16, null=True, default="FEED")),
        m.add_column("task_row", "lot", peewee.IntegerField(null=True, default=1)),
        m.add_column("task_row", "station", peewee.CharField(max_length=160, null=True)),
        m.add_column("task_row", "above", peewee.TextField(null=True, default="[]")),
        m.add_column("task_row", "inputs", peewee.TextField(null=True, default="[]")),
        m.add_column("task_row", "below_threshold",
                     peewee.BooleanField(null=True, default=False)),
        m.add_column("task_row", "trips", peewee.IntegerField(null=True, default=0)),
        m.add_column("task_row", "lost_by", peewee.TextField(null=True, default="{}")),
        m.rename_column("task_row", "inputs_done_at", "waiting_since"),
        m.add_column("task_row", "created_at", peewee.DateTimeField(null=True)),
        m.add_column("ledger_entry", "held_before", peewee.IntegerField(null=True)),
        m.add_column("ledger_entry", "price_hint", peewee.IntegerField(null=True)),
        m.add_column("ledger_entry", "owner", peewee.CharField(max_length=128, null=True)),
        m.add_column("waypoint_row", "under_construction",
                     peewee.BooleanField(null=True, default=False)),
    )
    plans = {fid: json.loads(plan) for fid, plan in db.execute_sql(
        "SELECT id, plan FROM factory_row WHERE plan IS NOT NULL").fetchall()}
    created = dict(db.execute_sql("SELECT id, created_at FROM factory_row").fetchall())
    rows = db.execute_sql("SELECT id, factory_id, round, node_path, feed, state, "
                          "units_lost, last_ship, ship, started_at FROM task_row").fetchall()
    for tid, fid, round_, path, feed, state, lost, last_ship, ship, started in rows:
        nodes = _nodes(plans.get(fid))
        node, parent = nodes.get(path), nodes.get(path.rsplit(".", 1)[0]) if "." in path \
            else None
        above = []
        cursor = path
        while "." in cursor:
            cursor = cursor.rsplit(".", 1)[0]
            if cursor in nodes:
                above.insert(0, nodes[cursor]["good"])
        fields = {
            "purpose": "OUTPUT" if path == "0" else "FEED",
            "lot": round_ if path == "0" else feed + 1,
            "station": f"{parent['good']}@{parent.get('waypoint')}" if parent else None,
            "above": json.dumps(above),
            "inputs": json.dumps([c["good"] for c in (node or {}).get("children", [])]),
            "state": "WAITING" if state == "BLOCKED" else state,
            "lost_by": json.dumps({last_ship or ship or "unknown": lost} if lost else {}),
            "created_at": started or created.get(fid),
        }
        sets = ", ".join(f"{k} = {db.param}" for k in fields)
        db.execute_sql(f"UPDATE task_row SET {sets} WHERE id = {db.param}",
                       (*fields.values(), tid))
    pm.migrate(
        m.drop_column("factory_row", "round"),
        *(m.drop_column("task_row", c) for c in ("round", "node_path", "depends_on", "feed",
                                                 "units_lost")),
    )


def _nodes(plan: dict | None) -> dict[str, dict]:
    """path -> node of a plan in the seed's JSON schema."""
    out: dict[str, dict] = {}

    def walk(node: dict, path: str) -> None:
        out[path] = node
        for i, child in enumerate(node.get("children", [])):
            walk(child, f"{path}.{i}")

    if plan:
        walk(plan, "0")
    return out


def _v3_ship_positions(db: peewee.Database) -> None:
    """Ship positions, for dashboards that read the database."""

    class ShipPosition(peewee.Model):
        ship = peewee.CharField(primary_key=True, max_length=64)
        system = peewee.CharField(max_length=32, index=True)
        waypoint = peewee.CharField(max_length=64)
        status = peewee.CharField(max_length=16)
        origin = peewee.CharField(max_length=64, null=True)
        departure = peewee.DateTimeField(null=True)
        arrival = peewee.DateTimeField(null=True)
        role = peewee.CharField(max_length=32, null=True)
        updated_at = peewee.DateTimeField()

        class Meta:
            database = db
            legacy_table_names = False

    db.create_tables([ShipPosition])


def _v4_answer_delays(db: peewee.Database) -> None:
    """How long exporters took to answer our rounds, kept across runs."""

    class AnswerDelay(peewee.Model):
        system = peewee.CharField(max_length=32)
        waypoint = peewee.CharField(max_length=64)
        good = peewee.CharField(max_length=64)
        landed_at = peewee.DateTimeField()
        seconds = peewee.FloatField()

        class Meta:
            database = db
            legacy_table_names = False
            indexes = ((("system", "landed_at"), False),)

    db.create_tables([AnswerDelay])


def _v5_task_landings(db: peewee.Database) -> None:
    """When a trip of a task last delivered: a lot carried in several trips starts its
    exporter off with the first."""
    m = _migrator(db)
    pm.migrate(m.add_column("task_row", "landed_at", peewee.DateTimeField(null=True)))


def _v6_answer_rounds(db: peewee.Database) -> None:
    """How many rounds each answer says its exporter needs."""
    m = _migrator(db)
    pm.migrate(m.add_column("answer_delay", "rounds_least", peewee.IntegerField(null=True)),
               m.add_column("answer_delay", "rounds_most", peewee.IntegerField(null=True)))


MIGRATIONS: list[tuple[int, str, Callable[[peewee.Database], None]]] = [
    (1, "initial tables", _v1_initial),
    (2, "lots, feeds and stations; destinations; cargo evidence", _v2_lots_and_stations),
    (3, "ship positions", _v3_ship_positions),
    (4, "answer delays", _v4_answer_delays),
    (5, "task landings", _v5_task_landings),
    (6, "rounds per answer", _v6_answer_rounds),
]


def latest_version() -> int:
    return MIGRATIONS[-1][0]


def current_version(db: peewee.Database) -> int:
    if not db.table_exists(models.SchemaVersion._meta.table_name):
        return 0
    row = models.SchemaVersion.select(peewee.fn.MAX(models.SchemaVersion.version)).scalar()
    return row or 0


def migrate(db: peewee.Database, upto: int | None = None) -> int:
    """Bring the schema to the newest version (or to `upto`, for tests); returns it. A
    database written by a newer goods-factory is refused: this one would misread it."""
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
            if number > version and (upto is None or number <= upto):
                step(db)
                models.SchemaVersion.create(version=number,
                                            applied_at=datetime.now(UTC).replace(tzinfo=None))
                version = number
    return version
