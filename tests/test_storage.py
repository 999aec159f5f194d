"""Storage on SQLite and on PostgreSQL: the same tests run against both."""

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import peewee
import pytest

from actors.recovery import settle_ledger
from api.client import Client
from api.ratelimit import RateLimiter
from domain.enums import Acquisition, SupplyLevel
from domain.factory import Destination, Factory, FactoryStatus, TaskPurpose, TaskState
from domain.navigation import Place
from domain.plan import Decision, resolve
from storage.db import DatabaseError, default_path, describe, open_database, resolve_url
from storage.migrations import MIGRATIONS, current_version, latest_version, migrate
from storage.repositories import Lease, LeaseLost, Storage
from tests.builders import market
from tests.conftest import ROOT, Raw
from tests.test_plan import AC_CHAIN, ac_markets

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def new_factory(fid="f-1", units=None, destination="hold"):
    plan = resolve("ADVANCED_CIRCUITRY", AC_CHAIN, ac_markets())
    f = Factory(id=fid, target="ADVANCED_CIRCUITRY", system="X1-T1", plan=plan, lot=40,
                units_wanted=units, min_supply=SupplyLevel.MODERATE,
                destination=Destination.parse(destination), reference={"COPPER": 70},
                held_at_start=3, created_at=T0)
    f.start(T0)
    return f


MAKE = Decision("ADVANCED_CIRCUITRY", Acquisition.FABRICATE, "X1-T1-A1",
                inputs=("ELECTRONICS", "MICROPROCESSORS"))
ELECTRONICS = Decision("ELECTRONICS", Acquisition.BUY, "X1-T1-A2")


def with_tasks(f):
    out = f.open_output(MAKE, 40, T0)
    feed = f.open_feed(f.stations()[out.station_here], ELECTRONICS, 40, T0)
    return out, feed


def test_schema_is_migrated_once_and_versioned(store):
    assert store.version == len(MIGRATIONS) == current_version(store.db)
    assert migrate(store.db) == store.version, "a second run changes nothing"
    tables = set(store.db.get_tables())
    assert {"factory_row", "task_row", "ship_assignment", "ledger_entry", "market_good",
            "market_history", "waypoint_row", "schema_version"} <= tables


def test_a_database_from_a_newer_version_is_refused(store):
    from storage.models import SchemaVersion

    SchemaVersion.create(version=store.version + 1, applied_at=datetime(2030, 1, 1))
    with pytest.raises(DatabaseError, match=rf"schema version {store.version + 1}, newer than "
                                            rf"the {store.version} this goods-factory knows"):
        migrate(store.db)


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path):
    db = open_database(str(tmp_path / "x" / "gf.db"))
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 15000
    db.close()


def _open_together(paths, barrier, results):
    """One of several processes opening each new file at the same moment as the others."""
    errors = []
    for path in paths:
        barrier.wait(30)
        try:
            Storage(open_database(path)).close()
        except DatabaseError as exc:
            errors.append(str(exc))
    results.put(errors)


def test_processes_opening_one_new_file_at_once_all_get_it(tmp_path):
    """The switch to WAL needs the file to itself; SQLite refused it at once, without
    waiting, to a process that opened the new file as another did (about one round in
    five here): the two-produce drill's first process exited with "database is locked"."""
    paths = [str(tmp_path / f"{i}.db") for i in range(25)]
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(6), ctx.Queue()
    procs = [ctx.Process(target=_open_together, args=(paths, barrier, results))
             for _ in range(6)]
    for p in procs:
        p.start()
    errors = [e for _ in procs for e in results.get(timeout=120)]
    for p in procs:
        p.join(30)
    assert errors == []


def test_where_the_database_lives(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.delenv("GOODS_FACTORY_DB", raising=False)
    assert default_path() == tmp_path / "goods-factory" / "goods-factory.db"
    assert resolve_url(None) == str(tmp_path / "goods-factory" / "goods-factory.db")
    monkeypatch.setenv("GOODS_FACTORY_DB", "postgresql://u:secret@h/db")
    assert resolve_url(None) == "postgresql://u:secret@h/db"
    assert resolve_url("/x.db") == "/x.db"
    assert describe("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    with pytest.raises(DatabaseError, match="cannot open database postgresql://u:\\*\\*\\*@"):
        open_database("postgresql://u:secret@127.0.0.1:1/db")


def test_factory_round_trip(store):
    f = new_factory(units=200, destination="construction:X1-T1-G")
    out, feed = with_tasks(f)
    f.assign(feed.id, "S-1", T0)
    f.lose(feed.id, "S-1", 0)
    feed.lost_by["S-1"] = 4
    store.factories.create(f, agent="AGENT", owner="host:1:a", now=T0)
    loaded = store.factories.load("f-1")
    assert loaded.plan.to_dict() == f.plan.to_dict()
    assert (loaded.status, loaded.started_at, loaded.destination, loaded.reference,
            loaded.held_at_start, loaded.units_wanted) == (
        FactoryStatus.ACTIVE, T0, f.destination, {"COPPER": 70}, 3, 200)
    assert set(loaded.tasks) == {out.id, feed.id}
    for tid, task in f.tasks.items():
        again = loaded.tasks[tid]
        assert (again.purpose, again.kind, again.state, again.source, again.destination,
                again.units_target, again.lot, again.station, again.above, again.inputs,
                again.ship, again.lost_by, again.keeps, again.created_at) == (
            task.purpose, task.kind, task.state, task.source, task.destination,
            task.units_target, task.lot, task.station, task.above, task.inputs, task.ship,
            task.lost_by, task.keeps, task.created_at)
    assert loaded.stations()[out.station_here].inputs == ("ELECTRONICS", "MICROPROCESSORS")
    with pytest.raises(KeyError):
        store.factories.load("nope")


def test_each_transition_is_saved_with_its_tasks(store):
    f = new_factory()
    store.factories.create(f, agent="AGENT", owner="o", now=T0)
    _out, feed = with_tasks(f)
    f.assign(feed.id, "S-1", T0)
    later = T0 + timedelta(seconds=30)
    [task] = f.fail_task(feed.id, T0, "4203 fuel", later)
    store.factories.save(f, [task], owner="o")
    again = store.factories.load("f-1").tasks[feed.id]
    assert (again.state, again.attempts, again.last_ship, again.not_before, again.last_error) \
        == (TaskState.READY, 1, "S-1", later, "4203 fuel")


def test_a_trip_that_landed_part_of_a_feed_is_remembered(store):
    """Its exporter may answer from the first trip: a restarted process must know when
    that landed, not only when the whole feed ends."""
    f = new_factory()
    store.factories.create(f, agent="AGENT", owner="o", now=T0)
    out, feed = with_tasks(f)
    f.assign(feed.id, "S-1", T0)
    landed = T0 + timedelta(minutes=5)
    task = f.trip_done(feed.id, landed, delivered=20)  # of the 40: one more trip
    assert (task.state, task.finished_at) == (TaskState.READY, None)
    store.factories.save(f, [out, task], owner="o")
    again = store.factories.load("f-1")
    assert again.tasks[feed.id].landed_at == landed


def test_a_task_touched_twice_in_one_pass_is_saved_once(store):
    """One pass may redecide a task and then move it on: PostgreSQL refuses an upsert that
    names one row twice, and a coordinator that cannot save stalls its factory."""
    f = new_factory()
    store.factories.create(f, agent="AGENT", owner="o", now=T0)
    _out, feed = with_tasks(f)
    first = f.assign(feed.id, "S-1", T0)
    [second] = f.fail_task(feed.id, T0, "4203 fuel", T0 + timedelta(seconds=30))
    store.factories.save(f, [first, second], owner="o")
    again = store.factories.load("f-1").tasks[feed.id]
    assert (again.state, again.attempts) == (TaskState.READY, 1)


def test_task_progress_and_spending_come_from_the_ledger(store):
    f = new_factory()
    store.factories.create(f, agent="AGENT", owner="o", now=T0)
    _out, leaf = with_tasks(f)
    store.factories.save(f, f.tasks.values(), owner="o")
    ledger = store.ledger
    for ship, kind, units, total in (("S-1", "PURCHASE", 30, 900), ("S-2", "PURCHASE", 10, 320),
                                     ("S-1", "SELL", 25, 2500), ("S-2", "SUPPLY", 4, 0)):
        entry = ledger.intend(agent="AGENT", ship=ship, waypoint=leaf.source, good=leaf.good,
                              kind=kind, units=units, now=T0, factory="f-1", task=leaf.id)
        ledger.confirm(entry, units=units, price_per_unit=total // units, total=total,
                       credits_after=None, server_time=T0, now=T0)
    lost = ledger.intend(agent="AGENT", ship="S-1", waypoint=leaf.source, good=leaf.good,
                         kind="PURCHASE", units=5, now=T0, factory="f-1", task=leaf.id)
    ledger.fail(lost, "did not happen", T0)
    refuel = ledger.intend(agent="AGENT", ship="S-1", waypoint=leaf.source, good="FUEL",
                           kind="REFUEL", units=2, now=T0, factory="f-1")
    ledger.confirm(refuel, units=2, price_per_unit=72, total=144, credits_after=None,
                   server_time=None, now=T0)
    task = store.factories.load("f-1").tasks[leaf.id]
    assert (task.units_bought, task.units_delivered, task.cost, task.revenue) == (
        40, 29, 1220, 2500)
    assert task.holders == {"S-1": 5, "S-2": 6}
    assert store.factories.load("f-1").credits_spent == 1220 + 144 - 2500
    assert store.factories.summary("f-1").credits_spent == 1220 + 144 - 2500
    assert [e.state for e in ledger.entries(agent="AGENT")].count("FAILED") == 1
    assert ledger.ship_holdings("S-1") == {("f-1", leaf.good): 5}


def test_a_v1_database_with_an_interrupted_factory_migrates_and_carries_on(tmp_path):
    from storage.models import database

    db = open_database(str(tmp_path / "old.db"))
    assert migrate(db, upto=1) == 1
    plan = resolve("ADVANCED_CIRCUITRY", AC_CHAIN, ac_markets())
    db.execute_sql(
        "INSERT INTO factory_row (id, agent, target, system, status, plan, lot, units_wanted, "
        "units_acquired, min_supply, round, created_at, started_at, owner, heartbeat_at, "
        "stop_requested) VALUES ('f-old', 'A', 'ADVANCED_CIRCUITRY', 'X1-T1', 'ACTIVE', ?, 40, "
        "NULL, 0, 'MODERATE', 1, ?, ?, 'host:1:x', ?, 0)",
        (json.dumps(plan.to_dict()), T0, T0, T0))
    for tid, path, kind, good, src, dest, state, lost in (
            ("f-old/r1/0", "0", "COLLECT", "ADVANCED_CIRCUITRY", "X1-T1-A1", None, "BLOCKED", 0),
            ("f-old/r1/0.0.1.0", "0.0.1.0", "SOURCE", "COPPER_ORE", "X1-T1-B2", "X1-T1-A3",
             "RUNNING", 7)):
        db.execute_sql(
            "INSERT INTO task_row (id, factory_id, round, node_path, kind, good, source, "
            "destination, units_target, depends_on, feed, state, ship, attempts, units_lost, "
            "started_at) VALUES (?, 'f-old', 1, ?, ?, ?, ?, ?, 40, '[]', 0, ?, 'S-1', 0, ?, ?)",
            (tid, path, kind, good, src, dest, state, lost, T0))
    database.initialize(db)
    store = Storage(db)
    assert store.version == latest_version() == 6
    f = store.factories.load("f-old")
    root, copper = f.tasks["f-old/r1/0"], f.tasks["f-old/r1/0.0.1.0"]
    assert (root.purpose, root.state, root.inputs) == (
        TaskPurpose.OUTPUT, TaskState.WAITING, ("ELECTRONICS", "MICROPROCESSORS"))
    assert (copper.purpose, copper.station, copper.above, copper.state, copper.lost_by) == (
        TaskPurpose.FEED, "COPPER@X1-T1-A3",
        ("ADVANCED_CIRCUITRY", "ELECTRONICS", "COPPER"), TaskState.RUNNING, {"S-1": 7})
    assert f.destination.keeps and f.stations()["ADVANCED_CIRCUITRY@X1-T1-A1"].waiting == [root]
    store.close()


def test_answer_delays_are_kept_per_system_latest_last(store):
    """What later runs learn from: the newest delays of the system, oldest first."""
    markets = store.markets
    for i, (waypoint, seconds) in enumerate([("X1-T1-A1", 200.0), ("X1-T1-B2", 310.5),
                                             ("X1-U9-C3", 999.0), ("X1-T1-A1", 150.0)]):
        markets.record_answer(waypoint, "FABRICS", T0 + timedelta(minutes=i), seconds)
    assert markets.answer_delays("X1-T1", most=10) == [200.0, 310.5, 150.0]
    assert markets.answer_delays("X1-T1", most=2) == [310.5, 150.0], "the latest two"
    assert markets.answer_delays("X1-U9", most=10) == [999.0]
    assert markets.answer_delays("X1-ZZ", most=10) == []


def test_the_rounds_each_answer_needed_are_kept_per_station_oldest_first(store):
    markets = store.markets
    for i, (waypoint, good, rounds) in enumerate([
            ("X1-T1-B7", "FABRICS", (4, 4)), ("X1-T1-A4", "CLOTHING", (2, 2)),
            ("X1-T1-B7", "FABRICS", (3, 4)), ("X1-T1-B7", "FABRICS", None),
            ("X1-U9-C3", "FABRICS", (1, 1))]):
        markets.record_answer(waypoint, good, T0 + timedelta(minutes=i), 120.0, rounds)
    assert markets.answer_rounds("X1-T1", most=10) == {
        ("X1-T1-B7", "FABRICS"): [(4, 4), (3, 4)], ("X1-T1-A4", "CLOTHING"): [(2, 2)]}
    assert markets.answer_rounds("X1-T1", most=1) == {
        ("X1-T1-B7", "FABRICS"): [(3, 4)], ("X1-T1-A4", "CLOTHING"): [(2, 2)]}, \
        "the latest of each exporter"
    assert markets.answer_delays("X1-T1", most=10) == [120.0] * 4, "every delay is kept"


def test_ledger_accounts_for_the_agents_credits(store):
    ledger = store.ledger
    assert ledger.expected_credits("A") is None
    ledger.record_balance("A", 175_000, T0)
    e = ledger.intend(agent="A", ship="S", waypoint="W", good="IRON", kind="PURCHASE",
                      units=10, now=T0)
    ledger.confirm(e, units=10, price_per_unit=50, total=500, credits_after=174_500,
                   server_time=T0, now=T0)
    ledger.intend(agent="A", ship="S", waypoint="W", good="IRON", kind="SELL", units=10, now=T0)
    assert ledger.expected_credits("A") == 174_500
    assert len(ledger.pending("A")) == 1 and ledger.pending("A", ship="T") == []
    assert ledger.matched_server_times("S") == {T0}


def test_a_balance_is_not_recorded_around_a_trade_in_flight(store):
    """Two processes resuming at once: one read the credits while the other's refuel was
    being charged, and the ledger lost the refuel. The opening line is written only when
    no trade was in flight around the reading."""
    ledger = store.ledger
    ledger.record_balance("A", 10_000, T0)

    def refuel_meanwhile() -> int:  # another process intends and is charged mid-read
        e = ledger.intend(agent="A", ship="S", waypoint="W", good="FUEL", kind="REFUEL",
                          units=4, now=T0)
        ledger.confirm(e, units=4, price_per_unit=49, total=196, credits_after=None,
                       server_time=T0, now=T0)
        return 10_000  # read before the server charged it

    assert not ledger.record_balance_when_quiet("A", refuel_meanwhile, T0)
    assert ledger.expected_credits("A") == 10_000 - 196, "the refuel is still counted"
    open_one = ledger.intend(agent="A", ship="S", waypoint="W", good="IRON",
                             kind="PURCHASE", units=10, now=T0)
    asked = []
    assert not ledger.record_balance_when_quiet("A", lambda: asked.append(1) or 0, T0)
    assert asked == [], "a trade in flight: the credits are not even read"
    ledger.fail(open_one, "did not happen", T0)
    assert ledger.record_balance_when_quiet("A", lambda: 9_804, T0)
    assert ledger.expected_credits("A") == 9_804


def test_a_balance_read_after_a_quiet_mark_is_recorded_only_if_nothing_came_since(store):
    """A process's first reading of the agent can open the ledger, with no second read,
    if the ledger was quiet before it (every agent's: the symbol comes with the reading)
    and nothing was written since."""
    ledger = store.ledger
    ledger.record_balance("B", 500, T0)
    mark = ledger.quiet_mark()
    assert mark is not None and ledger.record_balance_since("A", 10_000, mark, T0)
    assert ledger.expected_credits("A") == 10_000
    mark = ledger.quiet_mark()
    e = ledger.intend(agent="B", ship="S", waypoint="W", good="FUEL", kind="REFUEL",
                      units=4, now=T0)  # another agent's trade, after the mark
    assert not ledger.record_balance_since("A", 9_000, mark, T0)
    assert ledger.expected_credits("A") == 10_000, "the earlier balance stands"
    assert ledger.quiet_mark() is None, "a trade open anywhere: no mark"
    assert ledger.quiet_mark("A") is not None, "A's own ledger is quiet"
    ledger.fail(e, "did not happen", T0)
    assert ledger.record_balance_since("A", 9_000, ledger.quiet_mark(), T0)
    assert ledger.expected_credits("A") == 9_000


def test_lease_heartbeat_stop_and_orphans(store):
    f = new_factory()
    store.factories.create(f, agent="A", owner="host:1:a", now=T0)
    assert store.factories.heartbeat("f-1", "host:1:a", T0) == "ok"
    store.factories.request_stop("f-1")
    assert store.factories.heartbeat("f-1", "host:1:a", T0) == "stop"
    assert store.factories.heartbeat("f-1", "host:9:z", T0) == "lost"
    assert store.factories.orphaned(T0, timedelta(seconds=60), lambda owner: True) == []
    assert store.factories.orphaned(T0, timedelta(seconds=60), lambda owner: False) == ["f-1"]
    later = T0 + timedelta(minutes=5)
    assert store.factories.orphaned(later, timedelta(seconds=60), lambda owner: None) == ["f-1"]
    assert store.factories.orphaned(later, timedelta(seconds=60), lambda owner: True) == \
        ["f-1"], "a live pid that stopped heartbeating may be a reused one"
    assert store.factories.orphaned(T0, timedelta(seconds=60), lambda owner: None) == []
    store.assignments.claim("S-1", "host:1:a", T0, factory="f-1")
    [lease] = store.factories.orphans(later, timedelta(seconds=60), lambda owner: False)
    assert lease == Lease("f-1", "host:1:a", T0)
    assert not store.factories.take_over(Lease("f-1", "someone-else", T0), "host:2:b", later)
    assert not store.factories.take_over(Lease("f-1", "host:1:a", later), "host:2:b", later), \
        "the runner heartbeated since the lease was read: it is alive"
    assert store.assignments.get("S-1").owner == "host:1:a", "the loser moved nothing"
    assert store.factories.take_over(lease, "host:2:b", later)
    assert store.factories.summary("f-1").owner == "host:2:b"
    assert store.assignments.get("S-1").owner == "host:2:b", "its ships came along"
    assert not store.factories.take_over(lease, "host:3:c", later), "only once"
    with pytest.raises(LeaseLost):
        store.factories.save(f, f.tasks.values(), owner="host:1:a")
    store.factories.release("f-1", "host:2:b")
    assert store.factories.summary("f-1").owner is None
    assert store.factories.take_over(store.factories.lease("f-1"), "host:3:c", later)
    assert [s.id for s in store.factories.list("A")] == ["f-1"] == store.factories.open_ids()
    f.complete(later)
    store.factories.save(f, owner="host:3:c")
    assert store.factories.open_ids() == []


def test_one_owner_per_ship(store):
    a = store.assignments
    f = new_factory()
    store.factories.create(f, agent="A", owner="p1", now=T0)
    assert a.claim("S-1", "p1", T0, factory="f-1", task="t1")
    assert not a.claim("S-1", "p2", T0), "taken"
    assert a.get("S-1").owner == "p1"
    assert a.reassign("S-1", "p1", None, None, purpose="WATCH")
    assert not a.reassign("S-1", "p2", None, None)
    assert a.get("S-1").purpose == "WATCH"
    a.release("S-1", "p2")
    assert a.get("S-1") is not None, "only the owner releases"
    a.release("S-1", "p1")
    assert a.get("S-1") is None
    a.claim("S-2", "dead", T0, factory="f-1")
    a.claim("S-3", "alive", T0)
    assert a.release_dead(lambda owner: owner != "dead") == ["S-2"]
    a.claim("S-4", "old", T0, factory="f-1")
    a.release_factory("f-1")
    assert a.get("S-4") is None
    a.release_owner("alive")
    assert a.all() == []


def test_markets_keep_lists_quotes_and_history(store):
    m = store.markets
    listed = market("X1-T1-A1", exports=["IRON"], imports=["IRON_ORE"], exchange=["FUEL"],
                    quotes=False)
    m.record(listed)
    snap = m.snapshot("X1-T1-A1")
    assert snap.exports == {"IRON"} and snap.exchange == {"FUEL"} and not snap.has_quotes
    assert m.known_waypoints("X1-T1") == {"X1-T1-A1"} and m.known_waypoints("X1-T2") == set()
    quoted = market("X1-T1-A1", exports=["IRON"], imports=["IRON_ORE"], exchange=["FUEL"],
                    IRON=("HIGH", "STRONG", 85))
    m.record(type(quoted)(**{**quoted.__dict__, "observed_at": T0}))
    m.record(listed)  # a later read without a ship there keeps the last quotes
    snap = m.snapshot("X1-T1-A1")
    assert snap.quote("IRON").supply is SupplyLevel.HIGH and snap.observed_at == T0
    assert m.snapshots("X1-T1", fresh_since=T0 + timedelta(seconds=1))[0].quotes == {}
    later = market("X1-T1-A1", exports=["IRON"], imports=["IRON_ORE"], exchange=["FUEL"],
                   IRON=("LIMITED", "STRONG", 95))
    m.record(type(later)(**{**later.__dict__, "observed_at": T0 + timedelta(minutes=1)}))
    assert [(s, p) for _, s, p in m.history("X1-T1-A1", "IRON")] == [
        (SupplyLevel.HIGH, 85), (SupplyLevel.LIMITED, 95)]
    assert m.snapshot("X1-T1-ZZ") is None


def test_a_ship_position_is_kept_up_to_date_in_one_row(store):
    from api.models import Nav
    from storage.repositories import from_db

    flying = Nav("X1-T1", "X1-T1-B2", "IN_TRANSIT", "CRUISE", "X1-T1-A1", T0,
                 T0 + timedelta(minutes=3))
    store.ships.record("S-1", Nav("X1-T1", "X1-T1-A1", "DOCKED", "CRUISE", "X1-T1-A1",
                                  None, None), "HAULER", T0)
    store.ships.record("S-1", flying, "HAULER", T0 + timedelta(seconds=5))
    [row] = store.ships.in_system("X1-T1")
    assert (row.ship, row.waypoint, row.status, row.role) == (
        "S-1", "X1-T1-B2", "IN_TRANSIT", "HAULER")
    assert from_db(row.arrival) == T0 + timedelta(minutes=3)
    assert from_db(row.updated_at) == T0 + timedelta(seconds=5)
    assert store.ships.in_system("X1-T2") == []


def test_waypoints_and_fuel_places(store):
    class W:
        def __init__(self, symbol, x, traits):
            self.symbol, self.type, self.x, self.y, self.traits = symbol, "PLANET", x, 0, traits
            self.under_construction = symbol.endswith("B2")

    store.waypoints.save("X1-T1", [W("X1-T1-A1", 0, {"MARKETPLACE"}), W("X1-T1-B2", 50, set())])
    store.markets.record(market("X1-T1-A1", exchange=["FUEL"], quotes=False))
    assert store.waypoints.known("X1-T1") and not store.waypoints.known("X1-T9")
    assert store.waypoints.markets("X1-T1") == ["X1-T1-A1"]
    assert store.waypoints.under_construction("X1-T1") == ["X1-T1-B2"]
    assert store.waypoints.places("X1-T1") == {"X1-T1-A1": Place("X1-T1-A1", 0, 0, True),
                                               "X1-T1-B2": Place("X1-T1-B2", 50, 0, False)}


def _race(url, ships, barrier, results):
    storage = Storage(open_database(url))
    order = list(ships)
    random.Random(os.getpid()).shuffle(order)
    barrier.wait()
    won = [s for s in order if storage.assignments.claim(s, f"p{os.getpid()}",
                                                         datetime.now(UTC))]
    results.put(won)
    storage.close()


def test_two_processes_racing_for_ships_never_share_one(db_url):
    Storage(open_database(db_url)).close()  # schema first
    ships = [f"RACE-{i}" for i in range(40)]
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(db_url, ships, barrier, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    won = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert all(p.exitcode == 0 for p in procs)
    assert not set(won[0]) & set(won[1]), "no ship has two owners"
    assert sorted(won[0] + won[1]) == sorted(ships), "every ship has one"


def _race_take_over(url, factories, me, barrier, results):
    """One of two resumers: for each factory, read its lease, then try to take it over."""
    store = Storage(open_database(url))
    won = []
    for factory in factories:
        barrier.wait(30)
        now = datetime.now(UTC)
        leases = [lease for lease in store.factories.orphans(
            now, timedelta(seconds=60), lambda owner: not owner.startswith("dead"))
            if lease.factory == factory]
        if leases and store.factories.take_over(leases[0], me, now):
            won.append(factory)
    results.put((me, won))
    store.close()


def test_two_resumes_racing_for_one_factory_exactly_one_takes_it(db_url):
    store = Storage(open_database(db_url))
    trials = [f"f-race-{i}" for i in range(50)]
    for i, factory in enumerate(trials):
        f = new_factory(factory)
        store.factories.create(f, agent="A", owner="dead:1:x", now=T0)
        store.assignments.claim(f"S-{i}", "dead:1:x", T0, factory=factory)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race_take_over, args=(db_url, trials, me, barrier, results))
             for me in ("r1", "r2")]
    for p in procs:
        p.start()
    won = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    assert all(p.exitcode == 0 for p in procs)
    assert not set(won["r1"]) & set(won["r2"]), "never both"
    assert sorted(won["r1"] + won["r2"]) == sorted(trials), "always one"
    for i, factory in enumerate(trials):
        winner = "r1" if factory in won["r1"] else "r2"
        assert store.factories.summary(factory).owner == winner
        assert store.assignments.get(f"S-{i}").owner == winner
    store.close()


KILLED_MID_PURCHASE = textwrap.dedent("""
    import os, signal, sys
    from datetime import UTC, datetime
    from api.client import Client
    from api.ratelimit import RateLimiter
    from storage.db import open_database
    from storage.repositories import Storage
    url, base, token, ship = sys.argv[1:]
    store = Storage(open_database(url))
    client = Client(base, token=token, limiter=RateLimiter.unlimited())
    entry = store.ledger.intend(agent="KILLED", ship=ship, waypoint=client.ship(ship).nav.waypoint,
                                good="FUEL", kind="PURCHASE", units=7, now=datetime.now(UTC))
    client.purchase(ship, "FUEL", 7)
    os.kill(os.getpid(), signal.SIGKILL)  # dies between "intended" and "confirmed"
""")


def test_killed_between_intended_and_confirmed_then_reconciled(db_url, sim_factory):
    server = sim_factory(seed=5)
    raw = Raw(server.url)
    reg = raw.register("KILLED")
    ship = reg["ships"][0]["symbol"]
    store = Storage(open_database(db_url))
    store.ledger.record_balance("KILLED", reg["agent"]["credits"], datetime.now(UTC))
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_PURCHASE, db_url, server.url,
                           reg["token"], ship], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pending = store.ledger.pending("KILLED")
    assert len(pending) == 1 and pending[0].units == 7
    never_sent = store.ledger.intend(agent="KILLED", ship=ship, waypoint=pending[0].waypoint,
                                     good="FUEL", kind="PURCHASE", units=3,
                                     now=datetime.now(UTC))
    client = Client(server.url, token=reg["token"], limiter=RateLimiter.unlimited())
    settled = settle_ledger(store.ledger, client, "KILLED", datetime.now(UTC))
    assert sorted(s.outcome for s in settled) == ["CONFIRMED", "FAILED"]
    entries = {e.id: e for e in store.ledger.entries(agent="KILLED")}
    assert entries[never_sent].state == "FAILED"
    confirmed = entries[pending[0].id]
    assert confirmed.state == "CONFIRMED" and confirmed.total == 7 * confirmed.price_per_unit
    assert store.ledger.expected_credits("KILLED") == client.agent().credits
    assert client.cargo(ship).held("FUEL") == 7, "bought once, not twice"
    assert settle_ledger(store.ledger, client, "KILLED", datetime.now(UTC)) == []
    store.close()


def test_a_lost_ships_open_trade_is_decided_by_the_agents_balance(store, sim_factory):
    """The ship is gone (404): neither its hold nor the market's transactions can be
    read, so the balance decides, when nothing else is open to explain a difference."""
    server = sim_factory(seed=5)
    client = Client(server.url, token="", limiter=RateLimiter.unlimited())
    client = client.with_token(client.register("GONE", "COSMIC", "a").token)
    ship = client.ships()[0]
    here = ship.nav.waypoint
    market = client.market(here).snapshot
    good = sorted(g for g in market.exports | market.exchange if market.quote(g))[0]
    store.ledger.record_balance("GONE", client.agent().credits, datetime.now(UTC))
    client.dock(ship.symbol)
    bought = client.purchase(ship.symbol, good, 2)  # it happened; its answer was "lost"
    happened = store.ledger.intend(agent="GONE", ship=ship.symbol, waypoint=here, good=good,
                                   kind="PURCHASE", units=2, now=datetime.now(UTC),
                                   held_before=0,
                                   price_hint=bought.transaction.price_per_unit)
    server.game.lose_ship(ship.symbol)
    [settled] = settle_ledger(store.ledger, client, "GONE", datetime.now(UTC))
    assert settled.outcome == "CONFIRMED"
    assert store.ledger.expected_credits("GONE") == client.agent().credits
    never = store.ledger.intend(agent="GONE", ship=ship.symbol, waypoint=here, good="FUEL",
                                kind="REFUEL", units=4, now=datetime.now(UTC), held_before=10,
                                price_hint=70)
    other = store.ledger.intend(agent="GONE", ship="ELSEWHERE-9", waypoint=here, good=good,
                                kind="PURCHASE", units=1, now=datetime.now(UTC))
    assert {s.entry.id: s.outcome for s in settle_ledger(
        store.ledger, client, "GONE", datetime.now(UTC), ship=ship.symbol)} == {
        never: "UNKNOWN"}, "another entry is open: a difference could be either's"
    store.ledger.fail(other, "never sent", datetime.now(UTC))
    [settled] = settle_ledger(store.ledger, client, "GONE", datetime.now(UTC))
    assert (settled.entry.id, settled.outcome) == (never, "FAILED")
    assert store.ledger.get(happened).state == "CONFIRMED"


def test_integrity_errors_surface_outside_claims(store):
    f = new_factory()
    store.factories.create(f, agent="A", owner="o", now=T0)
    with pytest.raises(peewee.IntegrityError):
        store.factories.create(f, agent="A", owner="o", now=T0)
