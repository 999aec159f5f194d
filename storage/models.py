"""The tables. Times are naive UTC; the repositories convert at the boundary."""

from __future__ import annotations

import peewee

database = peewee.DatabaseProxy()


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class SchemaVersion(BaseModel):
    version = peewee.IntegerField()
    applied_at = peewee.DateTimeField()


class FactoryRow(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=64)
    agent = peewee.CharField(max_length=32)
    target = peewee.CharField(max_length=64)
    system = peewee.CharField(max_length=32)
    status = peewee.CharField(max_length=16, index=True)
    plan = peewee.TextField(null=True)  # the tree in the seed's JSON schema, once planned
    lot = peewee.IntegerField()
    units_wanted = peewee.IntegerField(null=True)
    units_acquired = peewee.IntegerField(default=0)
    min_supply = peewee.CharField(max_length=16)
    destination = peewee.CharField(max_length=160, default="hold")  # Destination as text
    strict_supply = peewee.BooleanField(default=False)
    reference = peewee.TextField(default="{}")  # JSON: good -> first price seen
    held_at_start = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField()
    started_at = peewee.DateTimeField(null=True)
    finished_at = peewee.DateTimeField(null=True)
    error = peewee.TextField(null=True)
    owner = peewee.CharField(max_length=128, null=True)  # host:pid:nonce of the runner
    heartbeat_at = peewee.DateTimeField(null=True)
    stop_requested = peewee.BooleanField(default=False)


class TaskRow(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=128)
    factory = peewee.ForeignKeyField(FactoryRow, backref="tasks", on_delete="CASCADE")
    purpose = peewee.CharField(max_length=16)  # OUTPUT or FEED
    kind = peewee.CharField(max_length=16)  # SOURCE or COLLECT
    good = peewee.CharField(max_length=64)
    source = peewee.CharField(max_length=64)
    destination = peewee.CharField(max_length=64, null=True)
    units_target = peewee.IntegerField()
    lot = peewee.IntegerField(default=1)
    station = peewee.CharField(max_length=160, null=True)  # FEED: GOOD@WAYPOINT it feeds
    above = peewee.TextField(default="[]")  # JSON: goods made above it
    inputs = peewee.TextField(default="[]")  # JSON: what its exporter is fed (COLLECT)
    below_threshold = peewee.BooleanField(default=False)
    state = peewee.CharField(max_length=16, index=True)
    ship = peewee.CharField(max_length=64, null=True)
    last_ship = peewee.CharField(max_length=64, null=True)
    attempts = peewee.IntegerField(default=0)  # units and credits live in the ledger
    trips = peewee.IntegerField(default=0)
    lost_by = peewee.TextField(default="{}")  # JSON: ship -> units gone with it
    not_before = peewee.DateTimeField(null=True)
    waiting_since = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(null=True)
    started_at = peewee.DateTimeField(null=True)
    finished_at = peewee.DateTimeField(null=True)
    last_error = peewee.TextField(null=True)
    landed_at = peewee.DateTimeField(null=True)  # a trip of it last delivered


class ShipAssignment(BaseModel):
    """Who a ship works for. The primary key makes two owners impossible."""

    ship = peewee.CharField(primary_key=True, max_length=64)
    factory = peewee.ForeignKeyField(FactoryRow, null=True, on_delete="CASCADE")
    task = peewee.CharField(max_length=128, null=True)
    purpose = peewee.CharField(max_length=16)  # TASK or WATCH
    owner = peewee.CharField(max_length=128)
    assigned_at = peewee.DateTimeField()


class WaypointRow(BaseModel):
    symbol = peewee.CharField(primary_key=True, max_length=64)
    system = peewee.CharField(max_length=32, index=True)
    type = peewee.CharField(max_length=32)
    x = peewee.IntegerField()
    y = peewee.IntegerField()
    traits = peewee.TextField(default="[]")
    under_construction = peewee.BooleanField(default=False)


class MarketGood(BaseModel):
    """The latest word on one good at one market: its role, and quotes when seen."""

    waypoint = peewee.CharField(max_length=64)
    system = peewee.CharField(max_length=32, index=True)
    good = peewee.CharField(max_length=64)
    type = peewee.CharField(max_length=16)  # EXPORT, IMPORT or EXCHANGE
    supply = peewee.CharField(max_length=16, null=True)
    activity = peewee.CharField(max_length=16, null=True)
    trade_volume = peewee.IntegerField(null=True)
    purchase_price = peewee.IntegerField(null=True)
    sell_price = peewee.IntegerField(null=True)
    observed_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((("waypoint", "good"), True),)


class ShipPosition(BaseModel):
    """Where each ship is or is flying, as the running process last saw it: for
    dashboards, which read the database and never the API."""

    ship = peewee.CharField(primary_key=True, max_length=64)
    system = peewee.CharField(max_length=32, index=True)
    waypoint = peewee.CharField(max_length=64)  # the destination while in transit
    status = peewee.CharField(max_length=16)
    origin = peewee.CharField(max_length=64, null=True)
    departure = peewee.DateTimeField(null=True)
    arrival = peewee.DateTimeField(null=True)
    role = peewee.CharField(max_length=32, null=True)
    updated_at = peewee.DateTimeField()


class MarketHistory(BaseModel):
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


class AnswerDelay(BaseModel):
    """How long after one of our rounds of inputs landed an exporter's supply rose: the
    game does not publish how fast markets make goods, so the bot learns it, and a new
    run in the system starts from what earlier ones saw."""

    system = peewee.CharField(max_length=32)
    waypoint = peewee.CharField(max_length=64)
    good = peewee.CharField(max_length=64)
    landed_at = peewee.DateTimeField()
    seconds = peewee.FloatField()
    # the rounds of ours the answer says the exporter needs, at least and at most
    # (`feeding.answer_rounds`); NULL where it says nothing of them
    rounds_least = peewee.IntegerField(null=True)
    rounds_most = peewee.IntegerField(null=True)

    class Meta:
        indexes = ((("system", "landed_at"), False),)


class LedgerEntry(BaseModel):
    """Every credit that moves: written INTENDED before the request, CONFIRMED after."""

    agent = peewee.CharField(max_length=32, index=True)
    factory = peewee.CharField(max_length=64, null=True, index=True)
    task = peewee.CharField(max_length=128, null=True, index=True)
    ship = peewee.CharField(max_length=64)
    waypoint = peewee.CharField(max_length=64)
    good = peewee.CharField(max_length=64)
    # PURCHASE, SELL, REFUEL, SHIP, SUPPLY, DELIVER, CONTRACT or BALANCE
    kind = peewee.CharField(max_length=16)
    units = peewee.IntegerField()
    state = peewee.CharField(max_length=16, index=True)  # INTENDED, CONFIRMED or FAILED
    price_per_unit = peewee.IntegerField(null=True)
    total = peewee.BigIntegerField(null=True)
    credits_after = peewee.BigIntegerField(null=True)
    intended_at = peewee.DateTimeField()
    confirmed_at = peewee.DateTimeField(null=True)
    server_time = peewee.DateTimeField(null=True)
    note = peewee.TextField(null=True)
    # What the ship held of the good (or of fuel, or how many ships the agent had) when it
    # was intended: after a crash, the server's count tells whether it happened.
    held_before = peewee.IntegerField(null=True)
    price_hint = peewee.IntegerField(null=True)  # the quoted price, if no bill is found
    owner = peewee.CharField(max_length=128, null=True)  # the process that sent it


TABLES = [SchemaVersion, FactoryRow, TaskRow, ShipAssignment, WaypointRow, MarketGood,
          MarketHistory, LedgerEntry]
