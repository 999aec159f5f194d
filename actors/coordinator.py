"""One factory's conductor: plans, hands ready tasks to idle ships, and follows up.

`Coordinator` holds the logic and is driven by messages (`handle`) and time (`tick`);
`CoordinatorActor` gives it a mailbox. It asks nothing upward: ships and the watcher
report by `tell`. Every transition of the factory is saved before anything else happens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pykka
import structlog

from actors.fleet import Fleet, ShipInfo
from actors.messages import (
    Job,
    JobDone,
    JobFailed,
    JobInterrupted,
    JobKind,
    JobNotReady,
    Refuelled,
    ShipLost,
    SupplySeen,
    Tick,
    Traded,
)
from api.client import Client
from api.errors import ApiError, Cancelled
from api.ratelimit import Priority
from domain.enums import SupplyLevel
from domain.errors import DomainError, InvalidTransition, NeedsMarketData
from domain.factory import Factory, FactoryStatus, Task, TaskKind, TaskState, backoff
from domain.navigation import distance, travel_seconds
from domain.plan import resolve
from domain.ranking import DEFAULT_CEILING_FACTOR, price_ceiling
from domain.supply_chain import SupplyChain
from storage.repositories import AssignmentRepository, LeaseLost, Storage

log = structlog.get_logger("coordinator")


@dataclass(frozen=True)
class Settings:
    min_supply: SupplyLevel = SupplyLevel.MODERATE
    reserve: int = 0  # credits never spent
    ceiling_factor: float | None = DEFAULT_CEILING_FACTOR
    per_source_cap: int = 2  # haulers buying at one market at once
    max_ships: int | None = None  # haulers working for this factory at once
    warn_after: float = 1200.0  # seconds of production wait before a warning
    blind_check_after: float = 60.0  # no ship can watch the exporter: send one to look
    market_max_age: float = 3600.0  # older quotes are read again before planning
    heartbeat_every: float = 5.0


def read_system(client: Client, storage: Storage, system: str, again: bool = False) -> None:
    """Store the system's waypoints and every market's lists (and quotes, where a ship is).
    They never change within a reset, so only what is missing is read, unless `again`."""
    if again or not storage.waypoints.known(system):
        storage.waypoints.save(system, client.waypoints(system))
    known = set() if again else storage.markets.known_waypoints(system)
    for waypoint in storage.waypoints.markets(system):
        if waypoint not in known:
            storage.markets.record(client.market(waypoint, priority=Priority.REFRESH).snapshot)


class Coordinator:
    def __init__(self, factory_id: str, *, storage: Storage, client: Client, fleet: Fleet,
                 chain: SupplyChain, settings: Settings, owner: str, agent: str,
                 clock: Callable[[], datetime],
                 dispatch: Callable[[str, Job, Callable[[object], None]], None],
                 cancel: Callable[[str], None], watch: Callable[..., None],
                 unwatch: Callable[[str], None], allowed: Callable[[ShipInfo], bool],
                 on_finished: Callable[[str], None]):
        self.id = factory_id
        self.storage = storage
        self.client = client
        self.fleet = fleet
        self.chain = chain
        self.settings = settings
        self.owner = owner
        self.agent = agent
        self.clock = clock
        self.dispatch = dispatch  # (ship, job, reply): progress and answer come to `handle`
        self.cancel = cancel  # abandon the job a ship is running for us
        self.watch = watch
        self.unwatch = unwatch
        self.allowed = allowed
        self.on_finished = on_finished
        self.notify: Callable[[object], None] = lambda message: None  # set by the actor
        self.factory: Factory | None = None
        self.visits: dict[str, str] = {}  # waypoint -> ship flying there to read it
        self.visit_failed: dict[str, str] = {}  # waypoint -> ship that last failed to get there
        self.parked: dict[str, str] = {}  # waypoint -> probe parked there to watch
        self.warned: dict[str, datetime] = {}
        self.last_heartbeat: datetime | None = None
        self._places: dict | None = None
        self.finished = False
        self.log = log.bind(factory=factory_id)

    @property
    def assignments(self) -> AssignmentRepository:
        return self.storage.assignments

    @property
    def places(self) -> dict:
        """The system's waypoints, read once: positions and FUEL markets do not change."""
        if not self._places:  # empty until the waypoints have been read
            self._places = self.storage.waypoints.places(self.factory.system)
        return self._places

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Take up the factory as the database has it: new, or interrupted mid-run."""
        self.factory = self.storage.factories.load(self.id)
        f = self.factory
        self.log.info("factory.start", target=f.target, status=f.status.value, round=f.round)
        for task in f.running():
            ship = task.ship
            if ship and self._take(ship, task.id):
                self.log.info("task.resume", task=task.id, ship=ship, held=task.units_held)
                self.dispatch(ship, self._job(task), self.notify)
            else:
                self._save([f.release(task.id)])
        for task in f.waiting():
            self._watch(task)
        self._finish_if_done()

    def suspend(self) -> None:
        """Clean shutdown: let go of the lease and of the ships, so resume may continue."""
        self.storage.factories.release(self.id, self.owner)
        for ship in [*self.visits.values(), *self.parked.values()]:
            self.assignments.release(ship, self.owner)
        if self.factory:
            for task in self.factory.running():
                if task.ship:
                    self.assignments.release(task.ship, self.owner)

    # --- time ----------------------------------------------------------------------------

    def tick(self) -> None:
        if self.finished or self.factory is None:
            return
        now = self.clock()
        if self._heartbeat(now):
            return
        f = self.factory
        if f.status is FactoryStatus.PENDING:
            self._plan(now)
        if f.status is FactoryStatus.ACTIVE:
            self._check_waiting(now)
            self._assign(now)
        self._finish_if_done()

    def _heartbeat(self, now: datetime) -> bool:
        if self.last_heartbeat and (now - self.last_heartbeat).total_seconds() < \
                self.settings.heartbeat_every:
            return False
        self.last_heartbeat = now
        lease = self.storage.factories.heartbeat(self.id, self.owner, now)
        if lease == "ok":
            return False
        if lease == "lost":
            self.let_go()
            return True
        self.log.info("factory.stop_requested")
        for task in self.factory.running():
            if task.ship:
                self.cancel(task.ship)
        self.factory.stop(now)
        self._save(self.factory.tasks.values())
        self._finish_if_done()
        return True

    def let_go(self) -> None:
        """Another process took the factory over: stop its ships here, touch nothing."""
        if self.finished:
            return
        self.log.error("factory.lease_lost")
        for task in self.factory.running() if self.factory else ():
            if task.ship:
                self.cancel(task.ship)
        self.finished = True
        self.on_finished(self.id)

    # --- planning ------------------------------------------------------------------------

    def _plan(self, now: datetime) -> None:
        f = self.factory
        if self.visits:
            return  # a survey is under way
        try:
            read_system(self.client, self.storage, f.system)
            fresh = now - timedelta(seconds=self.settings.market_max_age)
            markets = self.storage.markets.snapshots(f.system, fresh_since=fresh)
            plan = resolve(f.target, self.chain, markets, min_supply=f.min_supply,
                           origin=self.places.get(self._origin()), places=self.places)
        except NeedsMarketData as need:
            self._survey(need.waypoints, now)
            return
        except DomainError as exc:
            self._fail(str(exc), now)
            return
        tasks = f.start(now, plan)
        self._save(tasks)
        self.log.info("factory.planned", nodes=len(plan.flatten()), depth=plan.depth(),
                      raw=plan.raw_materials(), tasks=len(tasks))

    def _origin(self) -> str | None:
        """Where distances are measured from when sellers tie: our first hauler."""
        ships = [s for s in self.fleet.all() if s.is_hauler and not s.lost]
        return ships[0].waypoint if ships else None

    def _survey(self, waypoints: frozenset[str], now: datetime) -> None:
        """Send ships (probes first) to read markets the planner needs quotes from."""
        for waypoint in sorted(waypoints):
            if self.fleet.present_at(waypoint, now):
                self._read_here(waypoint)
                continue
            ship = self._pick(waypoint, "any", avoid=self.visit_failed.get(waypoint))
            if ship is None:
                if f"survey:{waypoint}" not in self.warned:
                    self.warned[f"survey:{waypoint}"] = now
                    self.log.info("survey.waiting_for_ships", waypoint=waypoint)
                return
            self.visits[waypoint] = ship
            self.log.info("survey.visit", waypoint=waypoint, ship=ship)
            self.dispatch(ship, Job(JobKind.VISIT, waypoint, factory=self.id), self.notify)

    def _read_here(self, waypoint: str) -> None:
        reading = self.client.market(waypoint, priority=Priority.REFRESH)
        self.storage.markets.record(reading.snapshot)

    # --- production ----------------------------------------------------------------------

    def _check_waiting(self, now: datetime) -> None:
        for task in self.factory.waiting():
            waited = (now - (task.inputs_done_at or now)).total_seconds()
            if waited >= self.settings.warn_after:
                last = self.warned.get(task.id)
                if last is None or (now - last).total_seconds() >= self.settings.warn_after:
                    self.warned[task.id] = now
                    self.log.warning("production.slow", task=task.id, good=task.good,
                                     waypoint=task.source, waited_seconds=int(waited))
            if self.fleet.present_at(task.source, now):
                continue
            probe = self._park_probe(task.source)
            if probe is None and waited >= self.settings.blind_check_after:
                self.log.info("supply.blind_check", task=task.id, waypoint=task.source)
                self.unwatch(task.id)
                self._save([self.factory.supply_ready(task.id)])

    def _park_probe(self, waypoint: str) -> str | None:
        if waypoint in self.parked:
            return self.parked[waypoint]
        probe = self._pick(waypoint, "probe")
        if probe is not None:
            self.parked[waypoint] = probe
            self.log.info("probe.park", waypoint=waypoint, ship=probe)
            self.dispatch(probe, Job(JobKind.VISIT, waypoint, factory=self.id), self.notify)
        return probe

    def _assign(self, now: datetime) -> None:
        f = self.factory
        working = len(f.running())
        for task in f.assignable(now, self.settings.per_source_cap):
            if self.settings.max_ships is not None and working >= self.settings.max_ships:
                return
            ship = self._pick(task.source, "hauler", avoid=task.last_ship, task=task.id,
                              room=task.units_target - task.units_held)
            if ship is None:
                self._note_no_ship(task, now)
                return
            self._save([f.assign(task.id, ship, now)])
            self.log.info("task.assigned", task=task.id, good=task.good, ship=ship,
                          source=task.source, destination=task.destination,
                          units=task.units_target)
            self.dispatch(ship, self._job(task), self.notify)
            working += 1

    def _note_no_ship(self, task: Task, now: datetime) -> None:
        """Say so, once in a while, when ready work finds no hauler with room in its hold."""
        last = self.warned.get("no-ship")
        if last is None or (now - last).total_seconds() >= self.settings.warn_after / 10:
            self.warned["no-ship"] = now
            self.log.warning("task.no_ship", task=task.id, good=task.good,
                             reason="every usable hauler is busy or has a full hold")

    def _job(self, task: Task) -> Job:
        f = self.factory
        markets = self.storage.markets.snapshots(f.system)
        ceiling = price_ceiling(task.good, markets, self.settings.ceiling_factor)
        return Job(JobKind.TRADE, task.source, factory=f.id, task=task.id, good=task.good,
                   destination=task.destination, units=task.units_target,
                   held=task.units_held, delivered=task.units_delivered,
                   collect=task.kind is TaskKind.COLLECT,
                   min_supply=f.min_supply, ceiling=ceiling, reserve=self.settings.reserve)

    def _pick(self, waypoint: str, kind: str, avoid: str | None = None,
              task: str | None = None, room: int = 0) -> str | None:
        """The idle ship we may use that reaches `waypoint` first, claimed here and in the
        database. `kind` is "hauler", "probe" or "any"; the ship to `avoid` goes last; a
        hauler needs a free hold, and one with `room` for the whole lot goes first."""
        places = self.places
        target = places.get(waypoint)

        def eta(s: ShipInfo) -> int:
            if target is None or s.waypoint not in places or s.waypoint == waypoint:
                return 0
            return travel_seconds(distance(places[s.waypoint], target), max(1, s.speed))

        parked = set(self.parked.values())
        candidates = [s for s in self.fleet.all()
                      if not s.busy and not s.lost and s.symbol not in parked
                      and (kind == "any" or s.is_hauler == (kind == "hauler"))
                      and (kind != "hauler" or s.cargo_free > 0) and self.allowed(s)]
        for ship in sorted(candidates, key=lambda s: (s.symbol == avoid, s.cargo_free < room,
                                                      eta(s), s.symbol)):
            if self._take(ship.symbol, task):
                return ship.symbol
        return None

    def _take(self, ship: str, task: str | None) -> bool:
        if not self.fleet.take(ship):
            return False
        now = self.clock()
        held = self.assignments.get(ship)
        if held is not None and held.owner == self.owner and held.factory in (None, self.id):
            self.assignments.reassign(ship, self.owner, self.id, task)
            return True
        if held is None and self.assignments.claim(ship, self.owner, now, factory=self.id,
                                                   task=task):
            return True
        self.fleet.free(ship)
        return False

    def _watch(self, task: Task) -> None:
        self.watch(task.id, task.source, task.good, self.factory.min_supply,
                   task.inputs_done_at or self.clock(), self.notify)

    # --- events --------------------------------------------------------------------------

    def handle(self, message: object) -> None:
        if self.finished or self.factory is None:
            if isinstance(message, JobDone | JobNotReady | JobFailed | ShipLost | JobInterrupted):
                self.assignments.release(message.ship, self.owner)
            return
        now = self.clock()
        f = self.factory
        try:
            if isinstance(message, Traded):
                task = (f.record_purchase if message.kind == "PURCHASE" else f.record_sale)(
                    message.task, message.units, message.total)
                self._save([task])
            elif isinstance(message, Refuelled):
                f.record_fuel(message.total)
                self._save([])
            elif isinstance(message, SupplySeen):
                if f.tasks.get(message.key) and f.tasks[message.key].state is TaskState.WAITING:
                    self._save([f.supply_ready(message.key)])
            elif message.job.kind is JobKind.VISIT:
                self._visit_ended(message)
            else:
                self._task_ended(message, now)
        except InvalidTransition as exc:  # a late report about a task that moved on
            self.log.info("event.ignored", event=type(message).__name__, reason=str(exc))
        self._finish_if_done()

    def _visit_ended(self, message) -> None:
        waypoint = message.job.source
        if not isinstance(message, JobDone):
            self.visit_failed[waypoint] = message.ship
        if self.visits.get(waypoint) == message.ship:
            del self.visits[waypoint]
            self.assignments.release(message.ship, self.owner)
        elif self.parked.get(waypoint) == message.ship:
            self.assignments.reassign(message.ship, self.owner, self.id, None, "WATCH")
            if not isinstance(message, JobDone):
                del self.parked[waypoint]
                self.assignments.release(message.ship, self.owner)
        else:
            self.assignments.release(message.ship, self.owner)
        if isinstance(message, ShipLost):
            self.fleet.mark_lost(message.ship)

    def _task_ended(self, message, now: datetime) -> None:
        f, task_id, ship = self.factory, message.job.task, message.ship
        if isinstance(message, JobInterrupted):
            return  # shutting down: the task stays RUNNING for resume
        self.assignments.release(ship, self.owner)
        if isinstance(message, JobDone):
            touched = f.finish_task(task_id, now)
            self._save(touched)
            task = f.tasks[task_id]
            self.log.info("task.done", task=task_id, good=task.good, ship=ship,
                          bought=task.units_bought, delivered=task.units_delivered,
                          cost=task.cost)
            for t in touched:
                if t.state is TaskState.WAITING:
                    self.log.info("production.waiting", task=t.id, good=t.good,
                                  waypoint=t.source)
                    self._watch(t)
            self._release_idle_probes()
        elif isinstance(message, JobNotReady):
            task = f.not_ready(task_id, now, message.reason, backoff(1, now, base=10.0))
            self._save([task])
            if task.state is TaskState.WAITING:
                self._watch(task)
        elif isinstance(message, ShipLost):
            self.log.warning("ship.lost", ship=ship, task=task_id)
            self.fleet.mark_lost(ship)
            task = f.release(task_id, ship_lost=True)
            touched = [task]
            if task.kind is TaskKind.COLLECT and task.units_lost:
                self.log.warning("production.refeed", task=task_id, good=task.good,
                                 reason="the made goods were lost with the ship")
                self.unwatch(task_id)
                touched = f.refeed(task_id)
            self._save(touched)
        elif isinstance(message, JobFailed):
            if message.fatal:
                self._fail(message.error, now)
                return
            attempts = f.tasks[task_id].attempts + 1
            task = f.fail_task(task_id, now, message.error, backoff(attempts, now))
            self._save(f.tasks.values() if f.status.finished else [task])
            self.log.warning("task.retry" if not f.status.finished else "task.gave_up",
                             task=task_id, ship=ship, error=message.error, attempts=attempts)

    def _release_idle_probes(self) -> None:
        waiting = {t.source for t in self.factory.waiting()}
        for waypoint, probe in list(self.parked.items()):
            if waypoint not in waiting and self.fleet.get(probe) and \
                    not self.fleet.get(probe).busy:
                del self.parked[waypoint]
                self.assignments.release(probe, self.owner)

    # --- endings -------------------------------------------------------------------------

    def _fail(self, reason: str, now: datetime) -> None:
        self.log.error("factory.failed", reason=reason)
        for task in self.factory.running():
            if task.ship:
                self.cancel(task.ship)
        self.factory.fail(reason, now)
        self._save(self.factory.tasks.values())

    def _finish_if_done(self) -> None:
        f = self.factory
        if self.finished or f is None or not f.status.finished:
            return
        self.finished = True
        for task in f.tasks.values():
            self.unwatch(task.id)
        self.assignments.release_factory(self.id)
        self.storage.factories.release(self.id, self.owner)
        self.log.info("factory.finished", status=f.status.value, units=f.units_acquired,
                      credits=f.credits_spent, error=f.error)
        self.on_finished(self.id)

    def _save(self, tasks) -> None:
        self.storage.factories.save(self.factory, list(tasks), owner=self.owner)


class CoordinatorActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, coordinator: Coordinator):
        super().__init__()
        self.coordinator = coordinator

    def on_start(self) -> None:
        structlog.contextvars.bind_contextvars(factory=self.coordinator.id)
        ref = self.actor_ref
        self.coordinator.notify = ref.tell
        try:
            self.coordinator.start()
        except Exception:
            log.exception("coordinator.start_failed", factory=self.coordinator.id)
            raise

    def suspend(self) -> None:
        self.coordinator.suspend()

    def on_receive(self, message):
        try:
            if isinstance(message, Tick):
                self.coordinator.tick()
            else:
                self.coordinator.handle(message)
        except Cancelled:
            pass
        except LeaseLost:
            self.coordinator.let_go()
        except ApiError as exc:
            log.warning("coordinator.api_error", error=str(exc))
        except Exception:  # a bug must not kill the factory's conductor
            log.exception("coordinator.error")
