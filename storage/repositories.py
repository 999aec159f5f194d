"""Repositories: the database in the domain's words. Each method is one transaction."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import peewee

from domain.enums import ActivityLevel, SupplyLevel, TradeType
from domain.factory import (
    Destination,
    Factory,
    FactoryStatus,
    Task,
    TaskKind,
    TaskPurpose,
    TaskState,
)
from domain.markets import MarketSnapshot, Quote, system_of
from domain.navigation import Place
from domain.plan import PlanNode
from storage.db import Table, Upsert, is_sqlite, transaction
from storage.migrations import migrate
from storage.models import (
    AnswerDelay,
    FactoryRow,
    LedgerEntry,
    MarketGood,
    MarketHistory,
    ShipAssignment,
    ShipPosition,
    TaskRow,
    WaypointRow,
)

OPEN_STATUSES = (FactoryStatus.PENDING.value, FactoryStatus.ACTIVE.value)


def to_db(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


def from_db(moment: datetime | str | None) -> datetime | None:
    if moment is None:
        return None
    if isinstance(moment, str):  # SQLite hands back what it could not parse
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- factories and tasks -------------------------------------------------------------------


class LeaseLost(Exception):
    """Another process runs this factory now: whoever held it must let go, touching nothing."""


@dataclass(frozen=True)
class Lease:
    """Who ran a factory and when they last said so, as read at one moment."""

    factory: str
    owner: str | None
    heartbeat_at: datetime | None


def _same(field, value):
    """`field = value`, where None matches NULL."""
    return field.is_null() if value is None else field == value


@dataclass(frozen=True)
class FactorySummary:
    id: str
    agent: str
    target: str
    system: str
    status: FactoryStatus
    units_wanted: int | None
    units_acquired: int
    credits_spent: int
    created_at: datetime
    finished_at: datetime | None
    owner: str | None
    heartbeat_at: datetime | None
    stop_requested: bool
    error: str | None

    def to_dict(self) -> dict:
        """What `list --json` and the dashboard show of a factory."""
        return {"id": self.id, "agent": self.agent, "target": self.target,
                "system": self.system, "status": self.status.value,
                "units_wanted": self.units_wanted, "units_acquired": self.units_acquired,
                "credits_spent": self.credits_spent, "created_at": self.created_at.isoformat(),
                "error": self.error}


FACTORY_FIELDS = ("target", "system", "status", "plan", "lot", "units_wanted", "units_acquired",
                  "min_supply", "destination", "strict_supply", "reference", "held_at_start",
                  "created_at", "started_at", "finished_at", "error")


class FactoryRepository:
    def __init__(self, db: peewee.Database):
        self.db = db
        self._t = t = Table(db, FactoryRow)
        self._save_held = t.update(FACTORY_FIELDS, t.equal("id", "owner"))  # the lease's holder
        self._save_free = t.update(FACTORY_FIELDS, f"{t.equal('id')} AND {t.col('owner')} "
                                   "IS NULL")  # nobody holds it
        self._beat = t.update(("heartbeat_at",), t.equal("id", "owner"))
        self._stop_asked = f"SELECT {t.col('stop_requested')} FROM {t.name} " \
                           f"WHERE {t.equal('id')}"
        self._load = t.select(t.equal("id"))
        self._ledger = LedgerRepository(db)
        self._tt = Table(db, TaskRow)
        self._load_tasks = self._tt.select(self._tt.equal("factory"))
        self._tasks = Upsert(db, TaskRow, key=("id",), update=tuple(
            f.name for f in TaskRow._meta.sorted_fields if f.name != "id"))

    def create(self, factory: Factory, agent: str, owner: str | None, now: datetime) -> None:
        with transaction(self.db):
            FactoryRow.create(id=factory.id, agent=agent, owner=owner, heartbeat_at=to_db(now),
                              **self._factory_fields(factory))
            self._upsert_tasks(factory.tasks.values())

    def save(self, factory: Factory, tasks: Iterable[Task] = (), *, owner: str | None) -> None:
        """Write the factory and the tasks a transition touched, atomically, if `owner`
        still holds its lease (None: nobody may hold it); otherwise raise LeaseLost and
        write nothing, so a runner that lost its factory can never overwrite the new one."""
        t = self._t
        values = t.values(self._factory_fields(factory), FACTORY_FIELDS)
        with transaction(self.db):
            written = t.run(self._save_held, (*values, factory.id, owner)) if owner is not None \
                else t.run(self._save_free, (*values, factory.id))
            if written != 1:
                raise LeaseLost(f"factory {factory.id} is no longer held by {owner}")
            self._upsert_tasks(tasks)

    def load(self, factory_id: str) -> Factory:
        """The factory with its tasks; units and credits come from the ledger."""
        found = self._t.rows(self._load, (factory_id,))
        if not found:
            raise KeyError(factory_id)
        row = found[0]
        factory = Factory(
            id=row["id"], target=row["target"], system=row["system"],
            plan=PlanNode.from_dict(json.loads(row["plan"])) if row["plan"] else None,
            lot=row["lot"],
            units_wanted=row["units_wanted"], min_supply=SupplyLevel.parse(row["min_supply"]),
            destination=Destination.parse_stored(row["destination"]),
            strict_supply=row["strict_supply"], reference=json.loads(row["reference"] or "{}"),
            held_at_start=row["held_at_start"], status=FactoryStatus(row["status"]),
            created_at=from_db(row["created_at"]), started_at=from_db(row["started_at"]),
            finished_at=from_db(row["finished_at"]), error=row["error"])
        progress = self._ledger.task_progress(factory_id)
        for t in self._tt.rows(self._load_tasks, (factory_id,)):
            p = progress.get(t["id"], Progress())
            factory.tasks[t["id"]] = Task(
                id=t["id"], factory_id=factory_id, purpose=TaskPurpose(t["purpose"]),
                kind=TaskKind(t["kind"]), good=t["good"], source=t["source"],
                destination=t["destination"],
                units_target=t["units_target"], lot=t["lot"], station=t["station"],
                above=tuple(json.loads(t["above"])), inputs=tuple(json.loads(t["inputs"])),
                below_threshold=t["below_threshold"],
                keeps=t["purpose"] == TaskPurpose.OUTPUT.value and factory.destination.keeps,
                state=TaskState(t["state"]), ship=t["ship"],
                last_ship=t["last_ship"], attempts=t["attempts"], trips=t["trips"],
                not_before=from_db(t["not_before"]), waiting_since=from_db(t["waiting_since"]),
                created_at=from_db(t["created_at"]), started_at=from_db(t["started_at"]),
                finished_at=from_db(t["finished_at"]), landed_at=from_db(t["landed_at"]),
                last_error=t["last_error"], bought_by=p.bought_by, delivered_by=p.delivered_by,
                lost_by=json.loads(t["lost_by"] or "{}"), cost=p.cost, revenue=p.revenue)
        factory.credits_spent = self._ledger.factory_spend(factory_id)
        return factory

    def summary(self, factory_id: str) -> FactorySummary | None:
        row = FactoryRow.get_or_none(FactoryRow.id == factory_id)
        return None if row is None else _summary(row, self._ledger.factory_spend(row.id))

    def list(self, agent: str | None = None) -> list[FactorySummary]:
        query = FactoryRow.select().order_by(FactoryRow.created_at)
        if agent:
            query = query.where(FactoryRow.agent == agent)
        return [_summary(r, self._ledger.factory_spend(r.id)) for r in query]

    def open_ids(self, agent: str | None = None) -> list[str]:
        query = FactoryRow.select(FactoryRow.id).where(FactoryRow.status.in_(OPEN_STATUSES))
        if agent:
            query = query.where(FactoryRow.agent == agent)
        return [r.id for r in query.order_by(FactoryRow.created_at)]

    def orphans(self, now: datetime, stale_after: timedelta,
                alive: Callable[[str], bool | None], agent: str | None = None) -> list[Lease]:
        """The leases of open factories nobody runs: their owner is known dead, or silent
        too long (a live pid may be a reused one, or a hung process). Take one over with
        `take_over`, which fails if the lease changed since it was read here."""
        query = FactoryRow.select(FactoryRow.id, FactoryRow.owner, FactoryRow.heartbeat_at).where(
            FactoryRow.status.in_(OPEN_STATUSES))
        if agent:
            query = query.where(FactoryRow.agent == agent)
        out = []
        for row in query.order_by(FactoryRow.created_at):
            lease = Lease(row.id, row.owner, from_db(row.heartbeat_at))
            stale = lease.heartbeat_at is None or now - lease.heartbeat_at > stale_after
            if not lease.owner or alive(lease.owner) is False or stale:
                out.append(lease)
        return out

    def orphaned(self, now: datetime, stale_after: timedelta,
                 alive: Callable[[str], bool | None], agent: str | None = None) -> list[str]:
        return [lease.factory for lease in self.orphans(now, stale_after, alive, agent)]

    def lease(self, factory_id: str) -> Lease | None:
        row = FactoryRow.get_or_none(FactoryRow.id == factory_id)
        return None if row is None else Lease(row.id, row.owner, from_db(row.heartbeat_at))

    def take_over(self, lease: Lease, owner: str, now: datetime) -> bool:
        """Become the factory's runner if its lease is still exactly `lease` (one
        compare-and-set), and take its ships along in the same transaction. The loser
        changes nothing."""
        with transaction(self.db):
            query = FactoryRow.update(owner=owner, heartbeat_at=to_db(now)).where(
                FactoryRow.id == lease.factory, FactoryRow.status.in_(OPEN_STATUSES),
                _same(FactoryRow.owner, lease.owner),
                _same(FactoryRow.heartbeat_at, to_db(lease.heartbeat_at)))
            if query.execute() != 1:
                return False
            ShipAssignment.update(owner=owner).where(
                ShipAssignment.factory == lease.factory).execute()
            return True

    def heartbeat(self, factory_id: str, owner: str, now: datetime) -> str:
        """Refresh the lease. Returns "stop" when `stop ID` asked for it, "lost" when another
        process has taken the factory over, else "ok"."""
        with transaction(self.db):
            if not self._t.run(self._beat, (to_db(now), factory_id, owner)):
                return "lost"
            row = self.db.execute_sql(self._stop_asked, (factory_id,)).fetchone()
            return "stop" if row and row[0] else "ok"

    def request_stop(self, factory_id: str) -> None:
        FactoryRow.update(stop_requested=True).where(FactoryRow.id == factory_id).execute()

    def release(self, factory_id: str, owner: str) -> None:
        """The runner lets go (clean shutdown): resume may take it at once."""
        FactoryRow.update(owner=None, heartbeat_at=None).where(
            FactoryRow.id == factory_id, FactoryRow.owner == owner).execute()

    @staticmethod
    def _factory_fields(f: Factory) -> dict:
        return {"target": f.target, "system": f.system, "status": f.status.value,
                "plan": json.dumps(f.plan.to_dict()) if f.plan else None, "lot": f.lot,
                "units_wanted": f.units_wanted, "units_acquired": f.units_acquired,
                "min_supply": f.min_supply.name, "destination": f.destination.stored(),
                "strict_supply": f.strict_supply, "reference": json.dumps(f.reference),
                "held_at_start": f.held_at_start, "created_at": to_db(f.created_at),
                "started_at": to_db(f.started_at), "finished_at": to_db(f.finished_at),
                "error": f.error}

    def _upsert_tasks(self, tasks: Iterable[Task]) -> None:
        """One row per task, however often a pass touched it (PostgreSQL refuses an
        upsert that names a row twice)."""
        once = {t.id: t for t in tasks}
        rows = [{
            "id": t.id, "factory": t.factory_id, "purpose": t.purpose.value,
            "kind": t.kind.value, "good": t.good, "source": t.source,
            "destination": t.destination, "units_target": t.units_target, "lot": t.lot,
            "station": t.station, "above": json.dumps(list(t.above)),
            "inputs": json.dumps(list(t.inputs)), "below_threshold": t.below_threshold,
            "state": t.state.value, "ship": t.ship, "last_ship": t.last_ship,
            "attempts": t.attempts, "trips": t.trips, "lost_by": json.dumps(t.lost_by),
            "not_before": to_db(t.not_before), "waiting_since": to_db(t.waiting_since),
            "created_at": to_db(t.created_at), "started_at": to_db(t.started_at),
            "finished_at": to_db(t.finished_at), "landed_at": to_db(t.landed_at),
            "last_error": t.last_error,
        } for t in once.values()]
        self._tasks.run(rows)


def _summary(row: FactoryRow, spent: int) -> FactorySummary:
    return FactorySummary(row.id, row.agent, row.target, row.system, FactoryStatus(row.status),
                          row.units_wanted, row.units_acquired, spent,
                          from_db(row.created_at), from_db(row.finished_at), row.owner,
                          from_db(row.heartbeat_at), row.stop_requested, row.error)


# --- ship assignments ----------------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    ship: str
    owner: str
    factory: str | None
    task: str | None
    purpose: str


class AssignmentRepository:
    TASK, WATCH = "TASK", "WATCH"

    def __init__(self, db: peewee.Database):
        self.db = db
        self._t = t = Table(db, ShipAssignment)
        self._claim = Upsert(db, ShipAssignment)
        self._all = t.select()
        self._get = t.select(t.equal("ship"))
        self._reassign = t.update(("factory", "task", "purpose"), t.equal("ship", "owner"))
        self._release = f"DELETE FROM {t.name} WHERE {t.equal('ship', 'owner')}"

    def claim(self, ship: str, owner: str, now: datetime, factory: str | None = None,
              task: str | None = None, purpose: str = TASK) -> bool:
        """Take `ship` unless someone has it; the database's key decides races."""
        try:
            with transaction(self.db):
                self._claim.run([{"ship": ship, "owner": owner, "factory": factory,
                                  "task": task, "purpose": purpose,
                                  "assigned_at": to_db(now)}])
            return True
        except peewee.IntegrityError:
            return False

    def reassign(self, ship: str, owner: str, factory: str | None, task: str | None,
                 purpose: str = TASK) -> bool:
        """Change the work of a ship this owner already holds."""
        with transaction(self.db):
            return self._t.run(self._reassign, (factory, task, purpose, ship, owner)) == 1

    def release(self, ship: str, owner: str) -> None:
        with transaction(self.db):
            self._t.run(self._release, (ship, owner))

    def release_owner(self, owner: str) -> None:
        with transaction(self.db):
            ShipAssignment.delete().where(ShipAssignment.owner == owner).execute()

    def release_factory(self, factory: str, keep: Iterable[str] = ()) -> None:
        """Free the factory's ships, but those in `keep` (still on a job for it)."""
        query = ShipAssignment.delete().where(ShipAssignment.factory == factory)
        if keep := list(keep):
            query = query.where(ShipAssignment.ship.not_in(keep))
        with transaction(self.db):
            query.execute()

    def release_dead(self, alive: Callable[[str], bool | None]) -> list[str]:
        """Free ships whose owner is known dead and whose factory nobody resumed."""
        freed = [a.ship for a in self.all() if alive(a.owner) is False]
        if freed:
            with transaction(self.db):
                ShipAssignment.delete().where(ShipAssignment.ship.in_(freed)).execute()
        return freed

    def all(self) -> list[Assignment]:
        return [_assignment(a) for a in self._t.rows(self._all)]

    def get(self, ship: str) -> Assignment | None:
        found = self._t.rows(self._get, (ship,))
        return _assignment(found[0]) if found else None


def _assignment(row: dict) -> Assignment:
    return Assignment(row["ship"], row["owner"], row["factory"], row["task"], row["purpose"])


# --- waypoints and markets -----------------------------------------------------------------


class WaypointRepository:
    def __init__(self, db: peewee.Database):
        self.db = db
        w, g = Table(db, WaypointRow), Table(db, MarketGood)
        self._w = w
        self._in_system = w.select(w.equal("system"))
        self._fuel = (f"SELECT {g.col('waypoint')} FROM {g.name} WHERE "
                      f"{g.equal('system', 'good')} AND {g.col('type')} <> {g.param}")

    def save(self, system: str, waypoints: Iterable) -> None:
        """Cache a system's waypoints (objects with symbol, type, x, y and traits)."""
        rows = [{"symbol": w.symbol, "system": system, "type": w.type, "x": w.x, "y": w.y,
                 "traits": json.dumps(sorted(w.traits)),
                 "under_construction": w.under_construction} for w in waypoints]
        with transaction(self.db):
            WaypointRow.delete().where(WaypointRow.system == system).execute()
            for chunk in peewee.chunked(rows, 200):
                WaypointRow.insert_many(chunk).execute()

    def known(self, system: str) -> bool:
        return WaypointRow.select().where(WaypointRow.system == system).exists()

    def under_construction(self, system: str) -> list[str]:
        return [w.symbol for w in WaypointRow.select(WaypointRow.symbol).where(
            WaypointRow.system == system, WaypointRow.under_construction)]

    def markets(self, system: str) -> list[str]:
        return [w.symbol for w in WaypointRow.select().where(WaypointRow.system == system)
                if "MARKETPLACE" in json.loads(w.traits)]

    def places(self, system: str) -> dict[str, Place]:
        """Positions, with `sells_fuel` for markets known to sell FUEL."""
        fuel = {row[0] for row in self.db.execute_sql(
            self._fuel, (system, "FUEL", TradeType.IMPORT.value)).fetchall()}
        return {w["symbol"]: Place(w["symbol"], w["x"], w["y"], w["symbol"] in fuel)
                for w in self._w.rows(self._in_system, (system,))}


class ShipRepository:
    """Positions and routes of the ships, as last seen by a running process."""

    def __init__(self, db: peewee.Database):
        self.db = db
        self._upsert = Upsert(db, ShipPosition, key=("ship",), update=(
            "system", "waypoint", "status", "origin", "departure", "arrival", "role",
            "updated_at"))
        t = Table(db, ShipPosition)
        self._position = (f"SELECT {t.col('waypoint')}, {t.col('status')} FROM {t.name} "
                          f"WHERE {t.equal('ship')}")

    def record(self, symbol: str, nav, role: str | None, now: datetime) -> None:
        row = {"ship": symbol, "system": nav.system, "waypoint": nav.waypoint,
               "status": nav.status, "origin": nav.origin, "departure": to_db(nav.departure),
               "arrival": to_db(nav.arrival), "role": role, "updated_at": to_db(now)}
        with transaction(self.db):
            self._upsert.run([row])

    def position(self, symbol: str) -> tuple[str, str] | None:
        """(waypoint, status) of the ship as the last process to see it move recorded."""
        row = self.db.execute_sql(self._position, (symbol,)).fetchone()
        return (row[0], row[1]) if row else None

    def in_system(self, system: str) -> list[ShipPosition]:
        return list(ShipPosition.select().where(ShipPosition.system == system)
                    .order_by(ShipPosition.ship))


class MarketRepository:
    def __init__(self, db: peewee.Database):
        self.db = db
        key = ("waypoint", "good")
        self._listed = Upsert(db, MarketGood, key=key, update=("type",))
        self._quoted = Upsert(db, MarketGood, key=key, update=(
            "type", "supply", "activity", "trade_volume", "purchase_price", "sell_price",
            "observed_at"))
        self._history = Upsert(db, MarketHistory)
        self._t = t = Table(db, MarketGood)
        order = f"{t.col('waypoint')}, {t.col('good')}"
        self._of_system = t.select(t.equal("system"), order=order)
        self._of_market = t.select(t.equal("system", "waypoint"), order=order)
        self._answer = Upsert(db, AnswerDelay)
        a = Table(db, AnswerDelay)
        self._answers = (f"SELECT {a.col('seconds')} FROM {a.name} WHERE {a.equal('system')} "
                         f"ORDER BY {a.col('landed_at')} DESC, {a.col('id')} DESC LIMIT {a.param}")
        self._rounds = (f"SELECT {a.col('waypoint')}, {a.col('good')}, {a.col('rounds_least')}, "
                        f"{a.col('rounds_most')} FROM {a.name} WHERE {a.equal('system')} AND "
                        f"{a.col('rounds_least')} IS NOT NULL ORDER BY {a.col('landed_at')}, "
                        f"{a.col('id')}")

    def record(self, *snapshots: MarketSnapshot) -> None:
        """Store readings in one transaction: their lists always, their quotes (and the
        quotes' history) when present."""
        listed, quoted, history = [], [], []
        for snapshot in snapshots:
            observed = to_db(snapshot.observed_at)
            roles = [(g, TradeType.EXPORT) for g in snapshot.exports] + \
                    [(g, TradeType.IMPORT) for g in snapshot.imports] + \
                    [(g, TradeType.EXCHANGE) for g in snapshot.exchange]
            for good, role in roles:
                row = {"waypoint": snapshot.waypoint, "system": snapshot.system, "good": good,
                       "type": role.value}
                q = snapshot.quote(good)
                if q is None or observed is None:
                    listed.append(row)
                    continue
                quote = {"supply": q.supply.name,
                         "activity": q.activity.name if q.activity else None,
                         "trade_volume": q.trade_volume, "purchase_price": q.purchase_price,
                         "sell_price": q.sell_price, "observed_at": observed}
                quoted.append({**row, **quote})
                history.append({"waypoint": snapshot.waypoint, "good": good, **quote})
        with transaction(self.db):
            self._listed.run(listed)
            self._quoted.run(quoted)
            self._history.run(history)

    def record_answer(self, waypoint: str, good: str, landed_at: datetime,
                      seconds: float, rounds: tuple[int, int] | None = None) -> None:
        """An exporter's supply rose `seconds` after our round landed there, having
        needed `rounds` of ours (at least, at most)."""
        least, most = rounds or (None, None)
        with transaction(self.db):
            self._answer.run([{"system": system_of(waypoint), "waypoint": waypoint,
                               "good": good, "landed_at": to_db(landed_at),
                               "seconds": seconds, "rounds_least": least,
                               "rounds_most": most}])

    def answer_delays(self, system: str, most: int) -> list[float]:
        """The `most` latest answer delays seen in `system`, oldest first."""
        rows = self.db.execute_sql(self._answers, (system, most)).fetchall()
        return [row[0] for row in reversed(rows)]

    def answer_rounds(self, system: str, most: int
                      ) -> dict[tuple[str, str], list[tuple[int, int]]]:
        """What the `most` latest answers of each exporter of `system` said of the rounds
        it needs, by (waypoint, good), oldest first (the rows age with the history)."""
        out: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for waypoint, good, least, at_most in self.db.execute_sql(self._rounds, (system,)):
            out.setdefault((waypoint, good), []).append((least, at_most))
        return {station: seen[-most:] for station, seen in out.items()}

    def known_waypoints(self, system: str) -> set[str]:
        """Markets whose lists are stored (they never change within a reset)."""
        return {r.waypoint for r in MarketGood.select(MarketGood.waypoint).where(
            MarketGood.system == system).distinct()}

    def snapshots(self, system: str, fresh_since: datetime | None = None,
                  waypoint: str | None = None) -> list[MarketSnapshot]:
        """What is known of each market of `system` (or of one `waypoint`); quotes older
        than `fresh_since` are left out, so the planner asks for them again."""
        found = self._t.rows(self._of_system, (system,)) if waypoint is None else \
            self._t.rows(self._of_market, (system, waypoint))
        by_market: dict[str, list[dict]] = {}
        for row in found:
            by_market.setdefault(row["waypoint"], []).append(row)
        out = []
        for waypoint, rows in by_market.items():
            quotes, seen = {}, []
            for r in rows:
                observed = from_db(r["observed_at"])
                if r["supply"] and observed and (fresh_since is None or observed >= fresh_since):
                    quotes[r["good"]] = Quote(
                        r["good"], TradeType(r["type"]), SupplyLevel.parse(r["supply"]),
                        ActivityLevel.parse_optional(r["activity"]), r["trade_volume"],
                        r["purchase_price"], r["sell_price"])
                    seen.append(observed)

            def role(t: TradeType, rows=rows) -> frozenset[str]:
                return frozenset(r["good"] for r in rows if r["type"] == t.value)

            out.append(MarketSnapshot(waypoint, role(TradeType.EXPORT), role(TradeType.IMPORT),
                                      role(TradeType.EXCHANGE), quotes,
                                      min(seen) if seen else None))
        return out

    def snapshot(self, waypoint: str) -> MarketSnapshot | None:
        found = self.snapshots(system_of(waypoint), waypoint=waypoint)
        return found[0] if found else None

    def forget_history(self, before: datetime) -> tuple[int, int]:
        """Drop the readings taken and the answer delays seen before `before`; how many of
        each went. The latest quote of each good stays in `MarketGood` whatever its age."""
        with transaction(self.db):
            return (MarketHistory.delete().where(
                        MarketHistory.observed_at < to_db(before)).execute(),
                    AnswerDelay.delete().where(AnswerDelay.landed_at < to_db(before)).execute())

    def history(self, waypoint: str, good: str) -> list[tuple[datetime, SupplyLevel, int]]:
        return [(from_db(h.observed_at), SupplyLevel.parse(h.supply), h.purchase_price)
                for h in MarketHistory.select().where(
                    MarketHistory.waypoint == waypoint, MarketHistory.good == good
                ).order_by(MarketHistory.observed_at)]


# --- the ledger ----------------------------------------------------------------------------


@dataclass
class Progress:
    """A task's progress as the ledger tells it."""

    bought_by: dict[str, int] = field(default_factory=dict)
    delivered_by: dict[str, int] = field(default_factory=dict)
    cost: int = 0
    revenue: int = 0


@dataclass(frozen=True)
class QuietMark:
    """The ledger's newest line (of one agent, or of all: None) when nothing was open,
    taken before a balance is read (see `LedgerRepository.quiet_mark`)."""

    agent: str | None
    newest: int | None


@dataclass(frozen=True)
class LedgerRecord:
    id: int
    agent: str
    factory: str | None
    task: str | None
    ship: str
    waypoint: str
    good: str
    kind: str
    units: int
    state: str
    price_per_unit: int | None
    total: int | None
    credits_after: int | None
    intended_at: datetime
    server_time: datetime | None
    held_before: int | None = None
    price_hint: int | None = None
    owner: str | None = None

    @property
    def signed_total(self) -> int:
        """Credits this entry moved: negative for spending."""
        if self.state != LedgerRepository.CONFIRMED or self.total is None:
            return 0
        return self.total if self.kind in ("SELL", "BALANCE", "CONTRACT") else -self.total


class LedgerRepository:
    INTENDED, CONFIRMED, FAILED = "INTENDED", "CONFIRMED", "FAILED"
    SPENDING = ("PURCHASE", "REFUEL", "SHIP")
    DELIVERIES = ("SELL", "SUPPLY", "DELIVER")

    FILTERS = ("agent", "factory", "state", "ship")
    CONFIRMED_FIELDS = ("state", "units", "price_per_unit", "total", "credits_after",
                        "server_time", "confirmed_at")

    def __init__(self, db: peewee.Database):
        self.db = db
        self._t = t = Table(db, LedgerEntry)
        self._insert = Upsert(db, LedgerEntry)
        # one statement per combination of filters `entries` is given
        self._entries = {used: t.select(t.equal(*used), order=t.col("id"))
                         for used in _subsets(self.FILTERS)}
        self._progress = t.select(f"{t.equal('factory', 'state')} AND {t.col('task')} "
                                  "IS NOT NULL")
        self._task_progress = t.select(t.equal("factory", "state", "task"))
        self._get = t.select(t.equal("id"))
        self._holdings = t.select(f"{t.equal('ship', 'state')} AND {t.col('kind')} IN "
                                  f"({', '.join(t.param for _ in ('PURCHASE', *self.DELIVERIES))})")
        self._confirm = t.update(self.CONFIRMED_FIELDS, t.equal("id"))
        self._newest_any = f"SELECT MAX({t.col('id')}) FROM {t.name}"
        self._newest = f"{self._newest_any} WHERE {t.equal('agent')}"
        self._newest_of_ship = f"{self._newest} AND {t.equal('ship')}"

    def intend(self, *, agent: str, ship: str, waypoint: str, good: str, kind: str,
               units: int, now: datetime, factory: str | None = None,
               task: str | None = None, held_before: int | None = None,
               price_hint: int | None = None, owner: str | None = None) -> int:
        """Write down a trade before sending it, so a crash cannot hide it. `held_before`
        is what the ship held of the good (of fuel, for a refuel; the fleet's size, for a
        ship) just before: the server's count after a crash tells whether it happened."""
        with transaction(self.db):
            return self._insert.insert({
                "agent": agent, "ship": ship, "waypoint": waypoint, "good": good,
                "kind": kind, "units": units, "state": self.INTENDED,
                "intended_at": to_db(now), "factory": factory, "task": task,
                "held_before": held_before, "price_hint": price_hint, "owner": owner})

    def confirm(self, entry: int, *, units: int, price_per_unit: int, total: int,
                credits_after: int | None, server_time: datetime | None, now: datetime) -> None:
        row = {"state": self.CONFIRMED, "units": units, "price_per_unit": price_per_unit,
               "total": total, "credits_after": credits_after,
               "server_time": to_db(server_time), "confirmed_at": to_db(now)}
        with transaction(self.db):
            self._t.run(self._confirm, (*self._t.values(row, self.CONFIRMED_FIELDS), entry))

    def fail(self, entry: int, note: str, now: datetime) -> None:
        with transaction(self.db):
            LedgerEntry.update(state=self.FAILED, note=note, confirmed_at=to_db(now)).where(
                LedgerEntry.id == entry).execute()

    def record_balance(self, agent: str, credits: int, now: datetime) -> None:
        """The agent's credits as the server reported them: the ledger's opening line."""
        with transaction(self.db):
            self._insert.insert({
                "agent": agent, "ship": "", "waypoint": "", "good": "", "kind": "BALANCE",
                "units": 0, "state": self.CONFIRMED, "total": credits,
                "credits_after": credits, "intended_at": to_db(now),
                "confirmed_at": to_db(now)})

    def record_balance_when_quiet(self, agent: str, read: Callable[[], int],
                                  now: datetime) -> bool:
        """Record the credits `read` gives as the opening line, unless a trade of the agent
        was in flight around the reading, in this process or another: one intended before
        the line and charged after the reading would be in neither the balance nor the
        lines after it (two processes resuming at once lost a refuel so). Returns whether
        it was recorded; if not, the last balance stands."""
        mark = self.quiet_mark(agent)
        return mark is not None and self.record_balance_since(agent, read(), mark, now)

    def quiet_mark(self, agent: str | None = None) -> QuietMark | None:
        """Where the ledger of `agent` (of every agent, None) stands before the credits are
        read, or None if a trade is open: nothing may be open before the reading, and
        `record_balance_since` records it only if no line came after the mark. (The
        newest line first: a trade intended after it has a newer line.)"""
        newest = self._newest_line(agent)
        if self.pending(agent):
            return None
        return QuietMark(agent, newest)

    def record_balance_since(self, agent: str, credits: int, mark: QuietMark,
                             now: datetime) -> bool:
        """Record `credits`, read after `mark`, as the opening line if, under a lock, the
        ledger has no line newer than the mark; returns whether it was recorded."""
        with transaction(self.db):
            if not is_sqlite(self.db):  # SQLite's transaction holds the write lock already
                self.db.execute_sql(f"LOCK TABLE {self._t.name} IN SHARE ROW EXCLUSIVE MODE")
            if self._newest_line(mark.agent) != mark.newest:
                return False
            self.record_balance(agent, credits, now)
        return True

    def _newest_line(self, agent: str | None) -> int | None:
        if agent is None:
            return self.db.execute_sql(self._newest_any).fetchone()[0]
        return self.db.execute_sql(self._newest, (agent,)).fetchone()[0]

    def entries(self, agent: str | None = None, factory: str | None = None,
                state: str | None = None, ship: str | None = None) -> list[LedgerRecord]:
        given = {"agent": agent, "factory": factory, "state": state, "ship": ship}
        used = tuple(f for f in self.FILTERS if given[f] is not None)
        return [_record(e) for e in self._t.rows(self._entries[used],
                                                  tuple(given[f] for f in used))]

    def get(self, entry: int) -> LedgerRecord:
        found = self._t.rows(self._get, (entry,))
        if not found:
            raise KeyError(entry)
        return _record(found[0])

    def newest_of_ship(self, agent: str, ship: str) -> int | None:
        """The id of the ship's latest line, by any process: a ship's hold changes only
        with a line here, so an unchanged id means nobody traded with it since."""
        return self.db.execute_sql(self._newest_of_ship, (agent, ship)).fetchone()[0]

    def pending(self, agent: str | None = None, ship: str | None = None) -> list[LedgerRecord]:
        return self.entries(agent=agent, state=self.INTENDED, ship=ship)

    def matched_server_times(self, ship: str) -> set[datetime]:
        """Server timestamps already matched to entries of `ship` (reconciliation)."""
        return {from_db(e.server_time) for e in LedgerEntry.select(LedgerEntry.server_time)
                .where(LedgerEntry.ship == ship, LedgerEntry.server_time.is_null(False))}

    def task_progress(self, factory: str, task: str | None = None) -> dict[str, Progress]:
        """task -> units bought and delivered by each ship, and the credits they moved,
        from confirmed entries (a sale, a construction supply and a contract delivery all
        deliver)."""
        out: dict[str, Progress] = {}
        rows = self._t.rows(self._progress, (factory, self.CONFIRMED)) if task is None else \
            self._t.rows(self._task_progress, (factory, self.CONFIRMED, task))
        for e in rows:
            p = out.setdefault(e["task"], Progress())
            ship, units, total = e["ship"], e["units"], e["total"] or 0
            if e["kind"] == "PURCHASE":
                p.bought_by[ship] = p.bought_by.get(ship, 0) + units
                p.cost += total
            elif e["kind"] in self.DELIVERIES:
                p.delivered_by[ship] = p.delivered_by.get(ship, 0) + units
                p.revenue += total
        return out

    def ship_holdings(self, ship: str) -> dict[tuple[str | None, str], int]:
        """(factory, good) -> units the ledger says this ship bought and has not delivered
        (a factory of None: goods bought outside any factory)."""
        out: dict[tuple[str | None, str], int] = {}
        for e in self._t.rows(self._holdings, (ship, self.CONFIRMED, "PURCHASE",
                                               *self.DELIVERIES)):
            sign = 1 if e["kind"] == "PURCHASE" else -1
            key = (e["factory"], e["good"])
            out[key] = out.get(key, 0) + sign * e["units"]
        return {k: v for k, v in out.items() if v > 0}

    def expected_credits(self, agent: str) -> int | None:
        """The agent's credits as the ledger accounts for them: the last balance read from
        the server plus every confirmed entry since. None before any balance."""
        total = None
        for e in self.entries(agent=agent):
            total = e.total if e.kind == "BALANCE" else (
                None if total is None else total + e.signed_total)
        return total

    def factory_spend(self, factory: str) -> int:
        """Credits a factory spent net of sales: goods, fuel and all."""
        return -sum(e.signed_total for e in self.entries(factory=factory))


def _record(e: dict) -> LedgerRecord:
    """An entry from its row, by field name."""
    return LedgerRecord(e["id"], e["agent"], e["factory"], e["task"], e["ship"], e["waypoint"],
                        e["good"], e["kind"], e["units"], e["state"], e["price_per_unit"],
                        e["total"], e["credits_after"], from_db(e["intended_at"]),
                        from_db(e["server_time"]), e["held_before"], e["price_hint"],
                        e["owner"])


def _subsets(names: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every subset of `names`, each in their order."""
    return [tuple(n for i, n in enumerate(names) if mask >> i & 1)
            for mask in range(1 << len(names))]


# --- all of it -----------------------------------------------------------------------------


class Storage:
    """The repositories over one database, with its schema brought up to date."""

    def __init__(self, db: peewee.Database):
        self.db = db
        self.version = migrate(db)
        self.factories = FactoryRepository(db)
        self.assignments = AssignmentRepository(db)
        self.waypoints = WaypointRepository(db)
        self.markets = MarketRepository(db)
        self.ledger = LedgerRepository(db)
        self.ships = ShipRepository(db)

    def close(self) -> None:
        self.db.close()
