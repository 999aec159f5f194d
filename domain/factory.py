"""The factory aggregate: lots of the target, the stations fed to make goods, and the ship
tasks that move goods between markets.

A *task* moves one good from the market where it is bought to where it is needed:

- an OUTPUT task carries one lot of the target to the factory's destination;
- a FEED task carries an input to an exporter, to make a good the factory needs there.

A task whose market holds the good at the supply threshold is READY. One whose market is
an exporter below the threshold (a *station*) WAITS while the factory feeds that exporter
its imports, lot after lot, until the export answers. A task takes as many trips as its
lot needs; a partial load is never done, except for a made input on its way to the
exporter it feeds, which goes as it comes. Units and credits come from the ledger (the
repository loads them). The actors only carry out what this module decides; every method
takes `now` and does no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from domain.enums import Acquisition, SupplyLevel
from domain.errors import DomainError, InvalidTransition
from domain.plan import Decision, PlanNode

MAX_ATTEMPTS = 5


class FactoryStatus(StrEnum):
    PENDING = "PENDING"  # reading the markets that decide the first lot
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"

    @property
    def finished(self) -> bool:
        return self in (FactoryStatus.COMPLETED, FactoryStatus.FAILED, FactoryStatus.STOPPED)


class TaskKind(StrEnum):
    SOURCE = "SOURCE"  # bought where it is sold at the threshold
    COLLECT = "COLLECT"  # bought from its exporter once feeding lifted the supply


class TaskPurpose(StrEnum):
    OUTPUT = "OUTPUT"  # a lot of the target, for the factory's destination
    FEED = "FEED"  # an input, sold to the exporter of a good the factory needs


class TaskState(StrEnum):
    WAITING = "WAITING"  # its exporter's supply is below the threshold: being fed
    READY = "READY"  # may be given to a ship (after `not_before`)
    RUNNING = "RUNNING"  # a ship is on it
    DONE = "DONE"
    FAILED = "FAILED"  # out of attempts
    CANCELLED = "CANCELLED"


class DeliverKind(StrEnum):
    HOLD = "hold"  # keep the goods in the hold
    SELL = "sell"  # sell them at a market
    CONSTRUCTION = "construction"  # supply a construction site
    CONTRACT = "contract"  # deliver them on a procurement contract


class DestinationError(DomainError):
    """A `--deliver` value that names no destination."""


@dataclass(frozen=True)
class Destination:
    """Where the factory's product goes."""

    kind: DeliverKind = DeliverKind.HOLD
    waypoint: str | None = None
    contract: str | None = None

    @property
    def keeps(self) -> bool:
        return self.kind is DeliverKind.HOLD

    @classmethod
    def parse(cls, text: str | None) -> Destination:
        """`hold`, `sell:WAYPOINT`, `construction[:WAYPOINT]` or `contract:ID`."""
        raw = (text or "hold").strip()
        name, _, arg = raw.partition(":")
        try:
            kind = DeliverKind(name.lower())
        except ValueError:
            raise DestinationError(f"unknown destination {raw!r}: use hold, sell:WAYPOINT, "
                                   "construction[:WAYPOINT] or contract:ID") from None
        arg = arg.strip() or None
        if kind is DeliverKind.SELL and not arg:
            raise DestinationError("sell needs a market: sell:WAYPOINT")
        if kind is DeliverKind.CONTRACT and not arg:
            raise DestinationError("contract needs its id: contract:ID")
        if kind is DeliverKind.HOLD and arg:
            raise DestinationError("hold takes no argument")
        if kind is DeliverKind.CONTRACT:
            return cls(kind, None, arg)
        return cls(kind, arg.upper() if arg else None)

    def resolved(self, waypoint: str) -> Destination:
        return Destination(self.kind, waypoint, self.contract)

    def stored(self) -> str:
        return json.dumps({"kind": self.kind.value, "waypoint": self.waypoint,
                           "contract": self.contract})

    @classmethod
    def parse_stored(cls, text: str | None) -> Destination:
        if not text or not text.startswith("{"):
            return cls.parse(text)
        data = json.loads(text)
        return cls(DeliverKind(data["kind"]), data.get("waypoint"), data.get("contract"))

    def __str__(self) -> str:
        if self.kind is DeliverKind.CONTRACT:
            return f"contract:{self.contract}" + (f" at {self.waypoint}" if self.waypoint else "")
        return self.kind.value + (f":{self.waypoint}" if self.waypoint else "")


def station_key(good: str, waypoint: str) -> str:
    return f"{good}@{waypoint}"


@dataclass
class Task:
    id: str
    factory_id: str
    purpose: TaskPurpose
    kind: TaskKind
    good: str
    source: str
    destination: str | None  # an exporter (FEED), or None: the factory's destination
    units_target: int
    lot: int = 1  # OUTPUT: the lot's number; FEED: the feed's number at its station
    station: str | None = None  # FEED: the station it feeds (GOOD@WAYPOINT)
    above: tuple[str, ...] = ()  # goods being made above this one, nearest last
    inputs: tuple[str, ...] = ()  # COLLECT: what its exporter is fed
    below_threshold: bool = False  # a raw material, bought whatever the supply
    keeps: bool = False  # an output kept in the hold: what is bought is there to stay
    state: TaskState = TaskState.READY
    ship: str | None = None
    last_ship: str | None = None
    attempts: int = 0
    trips: int = 0
    not_before: datetime | None = None
    waiting_since: datetime | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    landed_at: datetime | None = None  # a trip of it last delivered (the lot may go on)
    last_error: str | None = None
    # Progress, from the ledger: units per ship, and the credits they moved.
    bought_by: dict[str, int] = field(default_factory=dict)
    delivered_by: dict[str, int] = field(default_factory=dict)
    lost_by: dict[str, int] = field(default_factory=dict)  # gone with a lost ship
    cost: int = 0
    revenue: int = 0

    @property
    def units_bought(self) -> int:
        return sum(self.bought_by.values())

    @property
    def landed(self) -> datetime | None:
        """When what it delivered last landed: its last delivering trip (a lot carried in
        several trips starts the exporter off with the first), or its end."""
        return self.landed_at or (self.finished_at if self.units_delivered else None)

    @property
    def units_delivered(self) -> int:
        return sum(self.delivered_by.values())

    @property
    def units_lost(self) -> int:
        return sum(self.lost_by.values())

    def held_by(self, ship: str) -> int:
        """Units this ship bought for the task and still carries."""
        return max(0, self.bought_by.get(ship, 0) - self.delivered_by.get(ship, 0)
                   - self.lost_by.get(ship, 0))

    @property
    def holders(self) -> dict[str, int]:
        ships = set(self.bought_by) | set(self.delivered_by)
        return {s: n for s in sorted(ships) if (n := self.held_by(s)) > 0}

    @property
    def units_held(self) -> int:
        return sum(self.holders.values())

    @property
    def carriers(self) -> dict[str, int]:
        """Ships carrying goods of this task that still have to be delivered."""
        return {} if self.keeps else self.holders

    @property
    def to_deliver(self) -> int:
        return sum(self.carriers.values())

    @property
    def units_acquired(self) -> int:
        """Bought and not lost: delivered or on its way."""
        return self.units_bought - self.units_lost

    @property
    def to_buy(self) -> int:
        return max(0, self.units_target - self.units_acquired)

    @property
    def depth(self) -> int:
        """Levels below the target: the output is 0, its inputs 1, theirs 2…"""
        return len(self.above)

    @property
    def station_here(self) -> str:
        """The station this task buys from (meaningful for COLLECT tasks)."""
        return station_key(self.good, self.source)

    @property
    def finished(self) -> bool:
        return self.state in (TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED)


@dataclass
class Station:
    """An exporter the factory makes a good at: who waits for it, and what it was fed."""

    good: str
    waypoint: str
    inputs: tuple[str, ...]
    above: tuple[str, ...]
    lot: int  # units of a lot (the factory's)
    collects: list[Task] = field(default_factory=list)
    feeds: list[Task] = field(default_factory=list)

    @property
    def key(self) -> str:
        return station_key(self.good, self.waypoint)

    def lots(self, feed: Task) -> int:
        """The lots a feed carries (one task may carry several in one hold)."""
        return max(1, -(-feed.units_target // self.lot))

    def lots_landed(self, feed: Task) -> int:
        """The lots of a feed delivered so far: a lot counts once any of it landed."""
        if not feed.units_delivered:
            return 0
        return min(self.lots(feed), -(-feed.units_delivered // self.lot))

    @property
    def waiting(self) -> list[Task]:
        return [t for t in self.collects if t.state is TaskState.WAITING]

    @property
    def open(self) -> bool:
        return any(not t.finished for t in self.collects)

    @property
    def feeding(self) -> bool:
        """A lot of inputs is still on its way (its landing is the time to look)."""
        return any(not t.finished for t in self.feeds)

    def feeds_of(self, good: str) -> list[Task]:
        return [t for t in self.feeds if t.good == good]

    def fed(self) -> dict[str, int]:
        """Units of each input delivered to the exporter so far."""
        out = dict.fromkeys(self.inputs, 0)
        for t in self.feeds:
            out[t.good] = out.get(t.good, 0) + t.units_delivered
        return out

    @property
    def since(self) -> datetime | None:
        """When the first feed was decided."""
        return min((t.created_at for t in self.feeds if t.created_at), default=None)

    @property
    def last_landed(self) -> datetime | None:
        """When a feed last delivered to the exporter (the first trip of a lot carried in
        several counts: the exporter may answer it while the rest is on its way)."""
        return max((at for t in self.feeds if t.units_delivered and (at := t.landed)),
                   default=None)

    @property
    def last_finished(self) -> datetime | None:
        """When a feed last finished delivering (a lot still partly on its way not
        counted): standing by for output waits for it, since the ship carrying the rest
        is to carry on rather than stand by."""
        return max((t.finished_at for t in self.feeds if t.units_delivered and t.finished_at),
                   default=None)


@dataclass
class Factory:
    id: str
    target: str
    system: str
    plan: PlanNode | None  # the tree as last decided, for status; None until planned
    lot: int
    units_wanted: int | None = None  # None: one load of whatever is available
    min_supply: SupplyLevel = SupplyLevel.MODERATE
    destination: Destination = field(default_factory=Destination)
    strict_supply: bool = False
    reference: dict[str, int] = field(default_factory=dict)  # first prices seen, per good
    held_at_start: int = 0  # target units our holds carried when it was created
    status: FactoryStatus = FactoryStatus.PENDING
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    credits_spent: int = 0
    max_attempts: int = MAX_ATTEMPTS

    # --- lifecycle -------------------------------------------------------------------

    def start(self, now: datetime, plan: PlanNode | None = None) -> None:
        """PENDING -> ACTIVE: the first lot has been decided."""
        self._require(FactoryStatus.PENDING, "start")
        self.plan = plan or self.plan
        self.status = FactoryStatus.ACTIVE
        self.started_at = now

    def complete(self, now: datetime) -> None:
        self._require(FactoryStatus.ACTIVE, "complete")
        self.status = FactoryStatus.COMPLETED
        self.finished_at = now

    def fail(self, reason: str, now: datetime) -> list[Task]:
        if self.status.finished:
            raise InvalidTransition(f"factory {self.id} is already {self.status.value}")
        self.status = FactoryStatus.FAILED
        self.error = reason
        self.finished_at = now
        return self._cancel_open_tasks(now)

    def stop(self, now: datetime) -> list[Task]:
        """The user's `stop`: final; work under way is cancelled."""
        if self.status.finished:
            raise InvalidTransition(f"factory {self.id} is already {self.status.value}")
        self.status = FactoryStatus.STOPPED
        self.finished_at = now
        return self._cancel_open_tasks(now)

    def cap_wanted(self, units: int) -> None:
        """The destination needs no more than `units` in all (a construction site's or a
        contract's remaining need, plus what was already delivered)."""
        self.units_wanted = units if self.units_wanted is None else min(self.units_wanted,
                                                                         units)

    # --- quantities ------------------------------------------------------------------

    def outputs(self) -> list[Task]:
        return sorted((t for t in self.tasks.values() if t.purpose is TaskPurpose.OUTPUT),
                      key=lambda t: t.lot)

    @property
    def units_acquired(self) -> int:
        """Units of the target held (`hold`) or delivered to the destination so far."""
        keeps = self.destination.keeps
        got = sum(t.units_acquired if keeps else t.units_delivered for t in self.outputs())
        return got + self.held_at_start

    def in_flight(self) -> int:
        """Units of the target that open lots still have to bring."""
        keeps = self.destination.keeps
        return sum(t.to_buy if keeps else max(0, t.units_target - t.units_delivered)
                   for t in self.outputs() if not t.finished)

    @property
    def reached(self) -> bool:
        """Whether the factory has what it was asked for."""
        if self.units_wanted is None:  # one load of whatever is available
            return any(t.state is TaskState.DONE for t in self.outputs())
        return self.units_acquired >= self.units_wanted

    def lots_to_open(self, max_open: int) -> list[int]:
        """Sizes of the output lots to open now: several at once, none beyond the order."""
        if self.status is not FactoryStatus.ACTIVE or self.reached:
            return []
        open_lots = [t for t in self.outputs() if not t.finished]
        if self.units_wanted is None:
            return [] if self.outputs() else [self.lot]
        left = self.units_wanted - self.units_acquired - self.in_flight()
        sizes = []
        while left > 0 and len(open_lots) + len(sizes) < max_open:
            sizes.append(min(self.lot, left))
            left -= sizes[-1]
        return sizes

    # --- stations ----------------------------------------------------------------------

    def stations(self) -> dict[str, Station]:
        """Every exporter the factory has waited at, with its collects and feeds."""
        out: dict[str, Station] = {}
        for t in self.tasks.values():
            if t.kind is TaskKind.COLLECT:
                st = out.setdefault(t.station_here, Station(t.good, t.source, t.inputs,
                                                            t.above, self.lot))
                st.collects.append(t)
        for t in self.tasks.values():
            if t.purpose is TaskPurpose.FEED and t.station in out:
                out[t.station].feeds.append(t)
        return out

    # --- opening work ------------------------------------------------------------------

    def open_output(self, decision: Decision, units: int, now: datetime) -> Task:
        number = 1 + max((t.lot for t in self.outputs()), default=0)
        task = self._new_task(f"{self.id}/out{number}", TaskPurpose.OUTPUT, decision, units,
                              None, number, None, (), now)
        return task

    def open_feed(self, station: Station, decision: Decision, units: int,
                  now: datetime) -> Task:
        number = 1 + len(station.feeds_of(decision.good))
        seq = 1 + sum(1 for t in self.tasks.values() if t.purpose is TaskPurpose.FEED)
        return self._new_task(f"{self.id}/feed{seq}", TaskPurpose.FEED, decision, units,
                              station.waypoint, number, station.key,
                              (*station.above, station.good), now)

    def redirect(self, task_id: str, decision: Decision, now: datetime) -> Task:
        """Get the rest of a task's units elsewhere (its market fell below the threshold, or
        a better one came up). Goods already held stay with it."""
        task = self._task(task_id, (TaskState.READY, TaskState.WAITING), "redirect")
        self._apply(task, decision, now)
        return task

    def _new_task(self, task_id: str, purpose: TaskPurpose, decision: Decision, units: int,
                  destination: str | None, number: int, station: str | None,
                  above: tuple[str, ...], now: datetime) -> Task:
        self._require(FactoryStatus.ACTIVE, "open a task for")
        task = Task(task_id, self.id, purpose, TaskKind.SOURCE, decision.good,
                    decision.waypoint, destination, units, number, station, above,
                    keeps=purpose is TaskPurpose.OUTPUT and self.destination.keeps,
                    created_at=now)
        self._apply(task, decision, now)
        self.tasks[task.id] = task
        return task

    @staticmethod
    def _apply(task: Task, decision: Decision, now: datetime) -> None:
        task.source = decision.waypoint
        task.below_threshold = decision.below_threshold
        if decision.method is Acquisition.FABRICATE:
            task.kind, task.inputs = TaskKind.COLLECT, decision.inputs
            task.state, task.waiting_since = TaskState.WAITING, now
        else:
            task.kind, task.inputs = TaskKind.SOURCE, ()
            task.state, task.waiting_since = TaskState.READY, None

    # --- queries ---------------------------------------------------------------------

    def running(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.state is TaskState.RUNNING]

    def waiting(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.state is TaskState.WAITING]

    def open_tasks(self) -> list[Task]:
        return [t for t in self.tasks.values() if not t.finished]

    def ready(self, now: datetime) -> list[Task]:
        """READY tasks whose back-off is over."""
        return [t for t in self.tasks.values() if t.state is TaskState.READY
                and (t.not_before is None or t.not_before <= now)]

    def more_lots_to_come(self) -> bool:
        """Whether lots beyond the open ones are still to be opened: then the fleet's
        throughput decides when the order is done, not one lot's path."""
        return self.units_wanted is not None and \
            self.units_wanted - self.units_acquired - self.in_flight() > 0

    def wanted_remaining(self) -> int | None:
        if self.units_wanted is None:
            return None
        return max(0, self.units_wanted - self.units_acquired)

    # --- task transitions ------------------------------------------------------------

    def assign(self, task_id: str, ship: str, now: datetime) -> Task:
        task = self._task(task_id, (TaskState.READY,), "assign")
        if task.not_before and task.not_before > now:
            raise InvalidTransition(f"task {task_id} is backing off until {task.not_before}")
        task.state = TaskState.RUNNING
        task.ship = ship
        task.started_at = task.started_at or now
        return task

    def supply_ready(self, task_id: str) -> Task:
        """The watcher saw the exporter's supply at the threshold."""
        task = self._task(task_id, (TaskState.WAITING,), "mark ready")
        task.state = TaskState.READY
        task.not_before = None
        return task

    def record_purchase(self, task_id: str, ship: str, units: int, price: int) -> Task:
        task = self._known(task_id)
        task.bought_by[ship] = task.bought_by.get(ship, 0) + units
        task.cost += price
        self.credits_spent += price
        return task

    def record_delivery(self, task_id: str, ship: str, units: int, price: int) -> Task:
        """Units left the hold at the destination (sold, supplied or delivered)."""
        task = self._known(task_id)
        task.delivered_by[ship] = task.delivered_by.get(ship, 0) + units
        task.revenue += price
        self.credits_spent -= price
        return task

    def record_fuel(self, price: int) -> None:
        self.credits_spent += price

    def trip_done(self, task_id: str, now: datetime, supply_fell: bool = False,
                  delivered: int = 0) -> Task:
        """A ship finished a trip (that `delivered` units). The task is DONE when its lot
        is complete; otherwise another trip follows, after a new supply signal if its
        market fell below the threshold."""
        task = self._task(task_id, (TaskState.RUNNING,), "finish a trip of")
        task.trips += 1
        if delivered:
            task.landed_at = now
        task.last_ship, task.ship = task.ship, None
        if self._complete(task):
            task.state = TaskState.DONE
            task.finished_at = now
        elif supply_fell and task.kind is TaskKind.COLLECT and not task.to_deliver:
            task.state, task.waiting_since = TaskState.WAITING, now
        else:
            task.state = TaskState.READY
        return task

    def _complete(self, task: Task) -> bool:
        if task.to_deliver:
            return False
        if task.purpose is TaskPurpose.OUTPUT and self.units_wanted is None:
            return task.units_acquired > 0  # one load of whatever was there
        if task.purpose is TaskPurpose.FEED and task.kind is TaskKind.COLLECT:
            # a made input goes as it comes: the exporter it feeds is better stocked now
            # than after waiting for the next batch, and feeding decides whether to go on
            return task.units_delivered > 0
        return task.units_acquired >= task.units_target

    def not_ready(self, task_id: str, now: datetime, reason: str, retry_at: datetime
                  ) -> list[Task]:
        """The ship could buy nothing (supply fell, or the price is above the ceiling):
        a collect waits for a new supply signal, a source backs off without spending an
        attempt (and is redirected if its seller fell below the threshold). The verdict
        is the market's, so the other lots ready to buy the same good there wait too: a
        ship would otherwise take the next one straight back to the same quote, lot after
        lot. Returns the tasks this touched."""
        task = self._task(task_id, (TaskState.RUNNING,), "mark not ready")
        task.last_ship, task.ship = task.ship, None
        task.last_error = reason
        same = [t for t in self.tasks.values() if t is not task and t.state is TaskState.READY
                and t.source == task.source and t.good == task.good and t.to_buy]
        for t in (task, *same):
            if t.kind is TaskKind.COLLECT and not t.to_deliver:
                t.state, t.waiting_since = TaskState.WAITING, now
            else:
                t.state = TaskState.READY
                t.not_before = max(retry_at, t.not_before or retry_at)
        return [task, *same]

    def fail_task(self, task_id: str, now: datetime, error: str, retry_at: datetime
                  ) -> list[Task]:
        """A ship failed; retry later (on another ship) or, out of attempts, fail the
        factory. Returns the tasks this touched."""
        task = self._task(task_id, (TaskState.RUNNING,), "fail")
        task.attempts += 1
        task.last_error = error
        task.last_ship, task.ship = task.ship, None
        if task.attempts >= self.max_attempts:
            task.state = TaskState.FAILED
            task.finished_at = now
            return [task, *self.fail(f"{task.purpose.value.lower()} {task.good} failed "
                                     f"{task.attempts} times: {error}", now)]
        task.state = TaskState.READY
        task.not_before = retry_at
        return [task]

    def release(self, task_id: str) -> Task:
        """Take a task off a ship that is gone, busy elsewhere or stopped, without counting
        an attempt."""
        task = self._task(task_id, (TaskState.RUNNING,), "release")
        task.last_ship, task.ship = task.ship, None
        task.state = TaskState.READY
        return task

    def lose(self, task_id: str, ship: str, units: int | None = None) -> Task:
        """Write off what `ship` held for the task (all of it when `units` is None): the
        ship is gone, or the goods are not in its hold."""
        task = self._known(task_id)
        gone = task.held_by(ship) if units is None else min(units, task.held_by(ship))
        if gone:
            task.lost_by[ship] = task.lost_by.get(ship, 0) + gone
        return task

    def drop_idle_feeds(self, now: datetime, answered: set[str]) -> list[Task]:
        """Cancel feeds not yet started for stations whose export `answered` (reached the
        threshold) or where no lot is open any more; a later wait opens new ones."""
        needed = {key for key, st in self.stations().items()
                  if st.open and key not in answered}
        dropped = []
        for t in self.tasks.values():
            if t.purpose is TaskPurpose.FEED and t.state is TaskState.READY \
                    and not t.units_acquired and t.station not in needed:
                t.state, t.finished_at = TaskState.CANCELLED, now
                dropped.append(t)
        return dropped

    # --- the end -----------------------------------------------------------------------

    def wind_down(self, now: datetime) -> list[Task]:
        """The target is reached: open work that holds nothing is cancelled; work that holds
        goods only delivers them. Returns the tasks touched."""
        touched = []
        for t in self.open_tasks():
            if t.state is TaskState.RUNNING:
                continue
            if t.to_deliver:
                if t.units_target != t.units_acquired or t.state is not TaskState.READY:
                    t.units_target = t.units_acquired  # deliver what is held, buy no more
                    t.state, t.not_before = TaskState.READY, None
                    touched.append(t)
                continue
            t.state, t.finished_at = TaskState.CANCELLED, now
            touched.append(t)
        return touched

    @property
    def settled(self) -> bool:
        """Nothing is moving any more: every task is finished."""
        return not self.open_tasks()

    # --- internals -------------------------------------------------------------------

    def _cancel_open_tasks(self, now: datetime) -> list[Task]:
        touched = []
        for task in self.tasks.values():
            if not task.finished:
                task.state = TaskState.CANCELLED
                task.finished_at = now
                touched.append(task)
        return touched

    def _known(self, task_id: str) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            raise InvalidTransition(f"no task {task_id} in factory {self.id}")
        return task

    def _task(self, task_id: str, expected: tuple[TaskState, ...], verb: str) -> Task:
        if self.status is not FactoryStatus.ACTIVE:
            raise InvalidTransition(f"cannot {verb} a task: factory {self.id} is "
                                    f"{self.status.value}")
        task = self._known(task_id)
        if task.state not in expected:
            names = " or ".join(s.value for s in expected)
            raise InvalidTransition(
                f"cannot {verb} task {task_id}: it is {task.state.value}, not {names}")
        return task

    def _require(self, status: FactoryStatus, verb: str) -> None:
        if self.status is not status:
            raise InvalidTransition(
                f"cannot {verb} factory {self.id}: it is {self.status.value}, not {status.value}"
            )


def backoff(attempts: int, now: datetime, base: float = 5.0, cap: float = 300.0) -> datetime:
    """Exponential back-off for retries: 5 s, 10 s, 20 s … capped at five minutes."""
    return now + timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


