"""One factory's conductor: decides lots and feeds, hands work to ships, follows up.

`Coordinator` holds the logic and is driven by messages (`handle`) and time (`tick`);
`CoordinatorActor` gives it a mailbox. It never calls the API: ships trade and read
markets, the watcher watches, and both report by `tell`. It reaches them through small
ports (`ShipPort`, `WatcherPort`, `RunnerPort`). Every change to the factory is saved
(fenced by the factory's lease) before a ship is told to act on it, and work is assigned
as soon as something changes: a trip ending, a supply signal, a market read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import peewee
import pykka
import structlog

from actors.fleet import Fleet, ShipInfo
from actors.messages import (
    Follow,
    Job,
    JobDone,
    JobFailed,
    JobInterrupted,
    JobKind,
    JobNotReady,
    MarketBlind,
    MarketSeen,
    Refuelled,
    ShipCrashed,
    ShipLost,
    SupplySeen,
    Tick,
    Traded,
    Unwatch,
    Watch,
)
from actors.settings import Settings
from actors.watcher import MarketBook
from api.errors import Cancelled
from domain import scheduling
from domain.enums import Acquisition
from domain.errors import DomainError, InvalidTransition, NeedsMarketData
from domain.factory import (
    DeliverKind,
    Factory,
    FactoryStatus,
    Station,
    Task,
    TaskKind,
    TaskPurpose,
    TaskState,
    backoff,
)
from domain.feeding import (
    answer_rounds,
    answer_wait,
    plan_feeds,
    round_landed,
    rounds_landed,
    rounds_needed,
)
from domain.plan import Decision, Planner
from domain.ranking import buyable, ceiling, reference_price
from domain.supply_chain import SupplyChain
from storage.repositories import LeaseLost, Storage

log = structlog.get_logger("coordinator")
MAX_ERRORS = 5  # unexpected errors within ERROR_WINDOW before the coordinator gives up
ERROR_WINDOW = timedelta(minutes=5)


class ShipPort(Protocol):
    def dispatch(self, ship: str, job: Job) -> bool: ...
    def cancel(self, ship: str, soft: bool = False) -> None: ...


class WatcherPort(Protocol):
    def tell(self, message: object) -> None: ...


class RunnerPort(Protocol):
    def finished(self, factory: str) -> None: ...
    def stopping(self) -> bool: ...


@dataclass(frozen=True)
class Imminent:
    """A station whose output may come any moment (see `Coordinator._imminent`)."""

    waypoint: str
    waiting: list[Task]  # its lots waiting for output, in the order they go
    rounds: int  # whole rounds of inputs landed since it last answered

    @property
    def due(self) -> list[Task]:
        """The lots it is about to output: as many as rounds landed (COPPER_ORE for two
        lots of COPPER)."""
        return self.waiting[:self.rounds]


class Coordinator:
    def __init__(self, factory_id: str, *, storage: Storage, book: MarketBook,
                 ships: ShipPort, watcher: WatcherPort, runner: RunnerPort, fleet: Fleet,
                 chain: SupplyChain, settings: Settings, owner: str, agent: str,
                 clock: Callable[[], datetime],
                 allowed: Callable[[ShipInfo], bool] = lambda ship: True):
        self.id = factory_id
        self.storage = storage
        self.book = book
        self.ships = ships
        self.watcher = watcher
        self.runner = runner
        self.fleet = fleet
        self.chain = chain
        self.settings = settings
        self.owner = owner
        self.agent = agent
        self.clock = clock
        self.allowed = allowed
        self.factory: Factory | None = None
        self.visits: dict[str, str] = {}  # waypoint -> ship flying there to read it
        self.out: set[str] = set()  # ships sent on a job whose report we have not had
        # ship -> when and where it should be done with the task it was given (an estimate)
        self.free_at: dict[str, tuple[datetime, str]] = {}
        # (source, good) -> markets' "nothing to buy" verdicts in a row, for the back-off
        self.not_ready_runs: Counter[tuple[str | None, str]] = Counter()
        self.visit_failed: dict[str, str] = {}  # waypoint -> ship that last failed to get there
        self.parked: dict[str, str] = {}  # waypoint -> ship parked there to watch it
        self.wanted_reads: set[str] = set()  # markets a decision waits for
        self.read_levels: dict[str, int] = {}  # how speculative each is (absent: needed)
        self.sole_sources: set[str] = set()  # of them, where a needed good can only come from
        self.watched: dict[str, Watch] = {}  # station -> the watch the watcher holds
        self.ranks: dict[str, tuple] | None = None  # this pass's task priorities, by id
        self.fed_lately = False  # a feed delivered since _watch_waiting last looked
        self.rewatch: dict[str, datetime] = {}  # station -> only readings after this count
        self.blind: dict[str, int] = {}  # station -> looks since its last signal or feed
        self.learnt: dict[str, datetime] = {}  # station -> the landing its answer was learnt from
        self.looks: dict[str, str] = {}  # waypoint -> station an idle ship should read now
        self.next_look: datetime | None = None  # when the next look falls due
        # the first lot could not be decided: try again on news, or when a quote it used
        # grows too old (the first try comes with `markets_changed`, set below)
        self.undecided_until: datetime | None = None
        self.wake_at: datetime | None = None  # a tick passes until then unless something moved
        self.fleet_seen = -1  # the fleet's version at the last pass
        self.followed: frozenset[str] = frozenset()
        self.benched: set[str] = set()
        self.warned: dict[str, datetime] = {}
        self.errors: list[datetime] = []
        self.last_heartbeat: datetime | None = None
        self.lease_renewed_at: datetime | None = None  # the runtime checks it is recent
        self.started_at = clock()
        self.markets_changed = True
        self.needs_reload = False  # the database failed mid-change: read it again first
        self.finished = False
        self.log = log.bind(factory=factory_id)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Take up the factory as the database has it: new, or interrupted mid-run. A task
        that was running goes back to its ship, whose worker starts from the server's view
        of the ship and the settled ledger."""
        self.factory = self.storage.factories.load(self.id)
        f = self.factory
        self.log.info("factory.start", target=f.target, status=f.status.value,
                      destination=str(f.destination), units=f.units_wanted)
        self._resume_running()
        self._advance(self.clock())

    def _resume_running(self) -> None:
        """Send running tasks back to their ships (each worker starts from the server's
        view of the ship and the settled ledger); a ship still at work in this process
        keeps its task, and a ship carries on with one task: any other goes back."""
        f = self.factory
        resumed: set[str] = set()
        for task in sorted(f.running(), key=lambda t: (-t.held_by(t.ship or ""), t.id)):
            ship = task.ship
            info = self.fleet.get(ship) if ship else None
            if ship not in resumed and info is not None and info.busy:
                resumed.add(ship)  # still at it in this process (a rebuilt coordinator)
                continue
            if ship and ship not in resumed and self._take(ship, task.id, resuming=True):
                resumed.add(ship)
                self.log.info("task.resume", task=task.id, ship=ship, held=task.held_by(ship))
                self._dispatch(ship, self._job(task, ship))
            else:
                self._save([f.release(task.id)])

    def reload(self) -> None:
        """Forget what this coordinator believed and read the factory again (after an
        unexpected error, or the database coming back): the database is the truth. A task
        whose report was lost in the error goes back to its ship."""
        self.factory = self.storage.factories.load(self.id)
        self.watched.clear()
        self.markets_changed = True
        self.needs_reload = False
        self.wake_at = None  # a pass on the next tick
        if not self.factory.status.finished:
            self._resume_running()

    def suspend(self) -> None:
        """Clean shutdown: let go of the lease and of the ships, so resume may continue."""
        self.storage.factories.release(self.id, self.owner)
        for ship in [*self.visits.values(), *self.parked.values()]:
            self.storage.assignments.release(ship, self.owner)
        if self.factory:
            for task in self.factory.running():
                if task.ship:
                    self.storage.assignments.release(task.ship, self.owner)

    def let_go(self) -> None:
        """Another process took the factory over: stop its ships here, touch nothing."""
        if self.finished:
            return
        self.log.error("factory.lease_lost", owner=self._owner_now())
        for task in self.factory.running() if self.factory else ():
            if task.ship:
                self.ships.cancel(task.ship)
        self.finished = True
        self.runner.finished(self.id)

    def _owner_now(self) -> str | None:
        lease = self.storage.factories.lease(self.id)
        return lease.owner if lease else None

    # --- time and events ------------------------------------------------------------------

    def tick(self) -> None:
        if self.finished or self.factory is None:
            return
        if self.needs_reload:
            self.reload()
        now = self.clock()
        if self._heartbeat(now):
            return
        if not self._due(now):
            return  # nothing happened and nothing falls due: no pass
        self._check_waits(now)
        self._advance(now)

    def _due(self, now: datetime) -> bool:
        """A tick makes a pass only if a ship changed (ours or another factory's) or
        something falls due; every message makes one anyway."""
        return self.fleet.version != self.fleet_seen or self.wake_at is None or \
            now >= self.wake_at

    def _next_pass(self, now: datetime) -> datetime:
        """When a pass is due though no message comes: a back-off ends, a fed exporter's
        time to answer runs out, a look falls due, or `recheck` has gone by."""
        f = self.factory
        answer = timedelta(seconds=self._answer_wait())
        due = [now + timedelta(seconds=self.settings.recheck)]
        due += [t.not_before for t in f.tasks.values()
                if t.state is TaskState.READY and t.not_before and t.not_before > now]
        due += [st.last_landed + answer for st in f.stations().values()
                if st.last_landed and st.last_landed + answer > now]
        if self.next_look is not None:
            due.append(self.next_look)
        if f.status is FactoryStatus.PENDING and self.undecided_until is not None:
            due.append(self.undecided_until)
        return min(due)

    def handle(self, message: object) -> None:
        if isinstance(message, Tick):
            self.tick()
            return
        if self.finished or self.factory is None:
            if isinstance(message, JobDone | JobNotReady | JobFailed | ShipLost |
                          JobInterrupted | ShipCrashed):
                self.storage.assignments.release(message.ship, self.owner)
            return
        now = self.clock()
        f = self.factory
        if isinstance(message, JobDone | JobNotReady | JobFailed | ShipLost | JobInterrupted |
                      ShipCrashed):
            self.out.discard(message.ship)
        try:
            if isinstance(message, Traded):
                if message.kind == "PURCHASE":
                    f.record_purchase(message.task, message.ship, message.units, message.total)
                else:
                    f.record_delivery(message.task, message.ship, message.units, message.total)
            elif isinstance(message, Refuelled):
                f.record_fuel(message.total)
            elif isinstance(message, SupplySeen):
                self._supply_seen(message, now)
            elif isinstance(message, MarketSeen | MarketBlind):
                self._market_news(message, now)
            elif message.job.kind is JobKind.VISIT:
                self._visit_ended(message)
            else:
                self._trip_ended(message, now)
        except InvalidTransition as exc:  # a late report about a task that moved on
            self.log.info("event.ignored", message=type(message).__name__, reason=str(exc))
        self._advance(now)

    def _heartbeat(self, now: datetime) -> bool:
        if self.last_heartbeat and (now - self.last_heartbeat).total_seconds() < \
                self.settings.heartbeat_every:
            return False
        self.last_heartbeat = now
        lease = self.storage.factories.heartbeat(self.id, self.owner, now)
        if lease == "ok":
            self.lease_renewed_at = now
            return False
        if lease == "lost":
            self.let_go()
            return True
        self.log.info("factory.stop_requested")
        for task in self.factory.running():
            if task.ship:
                self.ships.cancel(task.ship)
        self._save(self.factory.stop(now))
        self._finish_if_done(now)
        return True

    # --- the loop: decide, feed, assign -------------------------------------------------------

    def _advance(self, now: datetime) -> None:
        if self.finished or self.runner.stopping():
            return  # the process is stopping: no new work, everything stays resumable
        f = self.factory
        fleet_version = self.fleet.version
        touched: list[Task] = []
        self.ranks = None
        try:
            if f.status is FactoryStatus.PENDING and (
                    self.markets_changed
                    or (self.undecided_until is not None and now >= self.undecided_until)):
                self._start_if_decided(now)
            if f.status is FactoryStatus.ACTIVE:
                if f.plan is None or f.plan.pending:  # read the whole tree's markets
                    if self.markets_changed:
                        self._want_reads(self._planner(now), f.target)
                else:
                    self.wanted_reads = set()
                if self.markets_changed:
                    touched += self._redecide(now)
                touched += self._open_lots(now)
                # a new station is fed in the same pass, level by level, and a station
                # with several lots waiting gets a lot of each input for each (plan_feeds
                # opens one lot of an input per call): a ship left idle in between may be
                # sent elsewhere before the next pass
                for _ in range(12):
                    opened = self._feed(now)
                    touched += opened
                    if not opened:
                        break
                touched += f.drop_idle_feeds(now, self._answered())
                if f.reached:
                    touched += self._wind_down(now)
                self._watch_waiting(now)
        except DomainError as exc:
            self._fail(str(exc), now)
            return
        finally:
            self.markets_changed = False
            self.ranks = None  # the pass opened and closed its tasks: work them out once
        if touched:
            self._save(touched)
        standing_by: set[str] = set()
        if f.status is FactoryStatus.ACTIVE:
            self._seen_already(now)
            imminent = self._imminent(now)
            due = self._outputs_due(imminent)
            self._assign(now, imminent, due)
            standing_by = self._stand_by(due)
        if not f.status.finished:
            self._survey(keep=standing_by)
            self._follow()
        self._finish_if_done(now)
        self.fleet_seen = fleet_version
        self.wake_at = self._next_pass(now)
        self.ranks = None

    def _planner(self, now: datetime, fresh: bool = False) -> Planner:
        f = self.factory
        since = now - timedelta(seconds=self.settings.market_max_age) if fresh else None
        places = self.book.places(f.system)
        origin = next((places.get(s.waypoint) for s in self.fleet.all()
                       if s.is_hauler and not s.lost and s.waypoint in places), None)
        return Planner(self.chain, self.book.snapshots(f.system, since),
                       min_supply=f.min_supply, strict_supply=f.strict_supply, origin=origin,
                       places=places)

    def _start_if_decided(self, now: datetime) -> None:
        """The first lot can be decided once the markets that decide it have been read;
        until then every idle ship and probe reads the tree's markets, nearest first."""
        f = self.factory
        planner = self._planner(now, fresh=True)
        self._want_reads(planner, f.target)
        try:
            planner.decide(f.target)
        except NeedsMarketData:
            # the same answer until a market is read or a quote it used grows too old
            max_age = timedelta(seconds=self.settings.market_max_age)
            self.undecided_until = min((m.observed_at + max_age for m in planner.markets
                                        if m.observed_at), default=None)
            return
        plan = planner.resolve(f.target, partial=True)
        self._note_references(plan.flatten())
        f.start(now, plan)
        self._save([])
        self.log.info("factory.planned", method=plan.method.value, waypoint=plan.waypoint,
                      depth=plan.depth(), pending=plan.pending, reads=len(self.wanted_reads))

    def _want_reads(self, planner: Planner, target: str) -> None:
        self.read_levels, self.sole_sources = planner.survey(target, reading=self.visits)
        self.wanted_reads = set(self.read_levels)

    def _note_references(self, nodes: Iterable) -> None:
        """Fix the reference price of each good the first time it is needed."""
        f = self.factory
        markets = self.book.snapshots(f.system)
        for node in nodes:
            if node.good not in f.reference:
                price = reference_price(node.good, markets)
                if price is not None:
                    f.reference[node.good] = price

    def _decide(self, planner: Planner, good: str, above: tuple[str, ...]) -> Decision | None:
        """A fresh decision for one good, or None while its markets are being read."""
        try:
            decision = planner.decide(good, above)
        except NeedsMarketData as need:
            self.wanted_reads |= need.waypoints
            return None
        self._note_references([decision])
        return decision

    def _open_lots(self, now: datetime) -> list[Task]:
        f = self.factory
        sizes = f.lots_to_open(max_open=self._max_open_lots())
        if not sizes:
            return []
        planner = self._planner(now)
        opened = []
        for units in sizes:
            decision = self._decide(planner, f.target, ())
            if decision is None:
                break
            task = f.open_output(decision, units, now)
            opened.append(task)
            self.log.info("lot.opened", task=task.id, good=task.good, units=units,
                          method=decision.method.value, waypoint=decision.waypoint,
                          below_threshold=decision.below_threshold)
        if opened:
            self._replan(planner)
        return opened

    def _max_open_lots(self) -> int:
        return max(2, len(self._usable_haulers()))

    def _usable_haulers(self) -> list[ShipInfo]:
        return [s for s in self.fleet.all() if s.is_hauler and not s.lost
                and self.allowed(s) and s.symbol not in self.benched]

    def _hold_lots(self) -> int:
        """The lots the largest usable hold takes at once."""
        largest = max((s.cargo_capacity for s in self._usable_haulers()), default=0)
        return max(1, largest // max(1, self.factory.lot))

    def _feed(self, now: datetime) -> list[Task]:
        """Keep every station's imports stocked while its export is below the threshold."""
        f = self.factory
        orders, views = plan_feeds(
            f, self.book.latest, self.settings.feeds_per_input, most=self._max_open_lots(),
            landed_by=now - timedelta(seconds=self._answer_wait()),
            hold=self._hold_lots(), ceiling=self._ceiling, needs=self._rounds_needed)
        self._warn_slow(views, now)
        if not orders:
            return []
        planner = self._planner(now)
        opened = []
        for order in orders:
            st = order.station
            decision = self._decide(planner, order.good, (*st.above, st.good))
            if decision is None:
                continue
            latest = self.book.latest(st.waypoint)
            export = latest.quote(st.good) if latest else None
            in_flight = next((v.in_flight for v in views if v.station is st), 1)
            # lots bought at a seller travel together; a made input is collected lot by
            # lot, each as its own round of production answers
            made = decision.method is not Acquisition.BUY
            for units in [f.lot] * order.lots if made else [f.lot * order.lots]:
                task = f.open_feed(st, decision, units, now)
                opened.append(task)
                self.log.info("production.feed", task=task.id, station=st.key,
                              good=order.good, units=task.units_target,
                              source=decision.waypoint, method=decision.method.value,
                              lot=task.lot, in_flight=in_flight,
                              export_supply=export.supply.name if export else None)
        if opened:
            self._replan(planner)
        return opened

    def _answered(self) -> set[str]:
        """Stations whose export was last seen at the threshold, at a price we pay."""
        out = set()
        for key, st in self.factory.stations().items():
            latest = self.book.latest(st.waypoint)
            if buyable(latest.quote(st.good) if latest else None, self.factory.min_supply,
                       self._ceiling(st.good)):
                out.add(key)
        return out

    def _ceiling(self, good: str | None) -> int | None:
        """The most a ship pays a unit of `good` (None: no cap, or no reference yet)."""
        return ceiling(self.factory.reference.get(good or ""), self.settings.ceiling_factor)

    def _warn_slow(self, views, now: datetime) -> None:
        """A station fed lot after lot whose export does not answer gets a warning now and
        then (waiting has no time limit: `stop` ends it)."""
        for view in views:
            if view.answered:
                continue
            st = view.station
            fed_lots = min((sum(st.lots_landed(t) for t in st.feeds_of(g)
                                if t.state is TaskState.DONE)
                            for g in st.inputs if g not in view.saturated), default=0)
            since = min((t.waiting_since for t in st.waiting if t.waiting_since), default=now)
            waited = (now - since).total_seconds()
            if fed_lots < self.settings.slow_after_feeds and waited < self.settings.warn_after:
                continue
            last = self.warned.get(st.key)
            if last is None or (now - last).total_seconds() >= self.settings.warn_after:
                self.warned[st.key] = now
                latest = self.book.latest(st.waypoint)
                quote = latest.quote(st.good) if latest else None
                cap = self._ceiling(st.good)
                dear = {"price": quote.purchase_price, "ceiling": cap} if quote and cap \
                    and quote.purchase_price > cap else {}
                self.log.warning("production.slow", station=st.key, good=st.good,
                                 waypoint=st.waypoint, waited_seconds=int(waited),
                                 fed=st.fed(), export_supply=view.export.name if view.export
                                 else None, saturated=list(view.saturated), **dear)

    def _redecide(self, now: datetime) -> list[Task]:
        """Markets moved: a lot whose seller fell below the threshold is made instead (and
        a waiting one is bought once a seller holds the threshold again)."""
        f = self.factory
        planner = None
        touched = []
        for task in f.open_tasks():
            if task.state not in (TaskState.READY, TaskState.WAITING) or task.to_deliver \
                    or task.below_threshold:
                continue
            if task.state is TaskState.READY:
                latest = self.book.latest(task.source)
                quote = latest.quote(task.good) if latest else None
                if quote is None or quote.supply >= f.min_supply:
                    continue
            planner = planner or self._planner(now)
            decision = self._decide(planner, task.good, task.above)
            if decision is None or (decision.waypoint, decision.made) == (
                    task.source, task.kind is TaskKind.COLLECT):
                continue
            if task.kind is TaskKind.COLLECT and decision.waypoint == task.source:
                continue  # the exporter we fed holds the threshold: the watcher's signal
            was = (task.kind.value, task.source)
            touched.append(f.redirect(task.id, decision, now))
            self.log.info("task.redecided", task=task.id, good=task.good, was=list(was),
                          now=[task.kind.value, task.source])
        if touched:
            self._replan(planner)
        return touched

    def _replan(self, planner: Planner | None) -> None:
        """Keep the tree shown by `status` in step with the decisions taken."""
        if planner is None:
            return
        try:
            self.factory.plan = planner.resolve(self.factory.target, partial=True)
        except DomainError:
            pass  # the tree is for show; the decisions that matter raised already

    def _wind_down(self, now: datetime) -> list[Task]:
        f = self.factory
        for task in f.running():
            if task.ship:
                self.ships.cancel(task.ship, soft=True)  # buy nothing more, deliver what is held
        return f.wind_down(now)

    # --- supply signals and watching ---------------------------------------------------------

    def _watch_waiting(self, now: datetime) -> None:
        """Every station with waiting lots is watched, and the watch is sent again when a
        whole round of its inputs has landed there: until then (being decided, or one
        still on its way) its export is not about to rise, and the watcher polls it ever
        less often."""
        f = self.factory
        fed, self.fed_lately = self.fed_lately, False
        stations = None
        for key, tasks in self._waiting_stations().items():
            held = self.watched.get(key)
            since, landed = (held.since, held.landed) if held else (
                self.rewatch.get(key) or min(t.waiting_since or now for t in tasks), None)
            if key in self.watched and not fed:
                continue  # most passes: no feed delivered anywhere since the last
            stations = stations or f.stations()
            st = stations.get(key)
            # an exporter full of its inputs needs no feed: it may answer any time, like
            # one a round landed at
            last = None
            if st is not None and round_landed(st, self.book.latest(st.waypoint)):
                last = st.last_landed or since
            if key in self.watched and last == landed:
                continue
            first = tasks[0]
            self.watched[key] = Watch(key, self.id, first.source, first.good, f.min_supply,
                                      since, last, self._ceiling(first.good))
            self.watcher.tell(self.watched[key])

    def _seen_already(self, now: datetime) -> None:
        """Stations a reading in the book already answers: its SupplySeen is on its way
        through the watcher, but the ship that took the reading may report first, and a
        pass then would send it elsewhere while the lot it stands by for is ready."""
        for key, watch in list(self.watched.items()):
            latest = self.book.latest(watch.waypoint)
            if watch.answered_by(latest):
                quote = latest.quote(watch.good)
                self._supply_seen(SupplySeen(key, watch.waypoint, watch.good, quote.supply,
                                             latest.observed_at), now)

    def _waiting_stations(self) -> dict[str, list[Task]]:
        """Stations with lots waiting for their output, each station's lots in the order
        they go."""
        out: dict[str, list[Task]] = {}
        for task in sorted(self.factory.waiting(), key=self._rank):
            out.setdefault(task.station_here, []).append(task)
        return out

    def _rank(self, task: Task) -> tuple:
        """The task's place in the scheduler's order (`scheduling.priority`)."""
        return self._ranks().get(task.id) or scheduling.priority(task)

    def _ranks(self) -> dict[str, tuple]:
        """Each open task's priority: the lot of the target it works towards, then its
        remaining path to the target's destination; worked out once for the rest of a
        pass (its tasks no longer open or close)."""
        if self.ranks is None:
            f = self.factory
            tasks = f.open_tasks()
            paths = scheduling.remaining_paths(tasks, self.book.places(f.system),
                                               self._destination)
            lots = scheduling.serving_lots(f)
            self.ranks = {t.id: scheduling.priority(t, paths.get(t.id, 0.0), lots.get(t.id))
                          for t in tasks}
        return self.ranks

    def _supply_seen(self, message: SupplySeen, now: datetime) -> None:
        """The exporter answered: its first waiting lot goes. Any other (a good made once
        for two consumers) waits for a reading taken after this one and after the ship
        sent has bought, so that ships do not race for one batch. A reading taken before
        the last answer was handled (the watcher's word on what `_seen_already` saw) says
        nothing new."""
        answered = self.rewatch.get(message.key)
        if answered is not None and message.observed_at <= answered:
            return
        held = self.watched.pop(message.key, None)
        if held is not None and held.landed is not None:
            # an answer to a round of ours (not to an exporter full of inputs it had)
            st = self.factory.stations().get(message.key)
            if st is not None and st.last_landed == held.landed \
                    and self.learnt.get(message.key) != held.landed:
                # once per landing: an answer nobody collected yet is seen again and again
                self.learnt[message.key] = held.landed
                seconds = (message.observed_at - held.landed).total_seconds()
                rounds = answer_rounds(st, message.observed_at, self._answer_wait())
                self.book.answered(st.waypoint, st.good, held.landed, seconds, rounds)
                self.log.info("production.answered", station=st.key, seconds=round(seconds),
                              rounds=rounds, rounds_needed=self._rounds_needed(st))
        self.rewatch[message.key] = now
        self.blind.pop(message.key, None)
        waiting = self._waiting_stations().get(message.key)
        if not waiting:
            return
        if any(t.state is TaskState.RUNNING and t.kind is TaskKind.COLLECT and not t.units_held
               and t.station_here == message.key for t in self.factory.tasks.values()):
            return  # a ship is on its way to buy this batch: wait for a reading after it
        first = waiting[0]
        self._save([self.factory.supply_ready(first.id)])
        self.log.info("supply.ready", task=first.id, good=first.good, waypoint=first.source,
                      supply=message.supply.name)

    def _market_news(self, message: MarketSeen | MarketBlind, now: datetime) -> None:
        """New quotes may change decisions; a blind reading means our parked ship is not
        there after all (another process moved it)."""
        self.markets_changed = True
        if isinstance(message, MarketBlind) and message.waypoint in self.parked:
            ship = self.parked.pop(message.waypoint)
            self.storage.assignments.release(ship, self.owner)
            self.log.info("probe.not_there", waypoint=message.waypoint, ship=ship)

    def _check_waits(self, now: datetime) -> None:
        """Park a probe at each station nobody can watch (`_looks` covers the rest)."""
        f = self.factory
        if f.status is not FactoryStatus.ACTIVE:
            return
        stations = self._waiting_stations()
        self._release_probes({tasks[0].source for tasks in stations.values()})
        for tasks in stations.values():
            if not self.fleet.present_at(tasks[0].source, now):
                self._park(tasks[0].source)

    def _looks(self, now: datetime) -> dict[str, str]:
        """Stations nobody watches that an idle ship should read now (waypoint -> station).

        A look is due some time after a whole round of our feeds landed there (then
        production may have answered), or, while no lot is on its way there and the tree
        is decided, now and then in case the exporter recovered on its own; each look
        without an answer doubles the wait, a feed starts it over."""
        f = self.factory
        self.next_look = None
        if f.status is not FactoryStatus.ACTIVE:
            return {}
        out = {}
        known = f.stations()
        for key, tasks in self._waiting_stations().items():
            waypoint = tasks[0].source
            if self.fleet.present_at(waypoint, now) or waypoint in self.parked \
                    or waypoint in self.visits:
                continue
            latest = self.book.latest(waypoint)
            seen = max(t for t in (latest.observed_at if latest else None,
                                   self.rewatch.get(key),
                                   min(t.waiting_since or now for t in tasks)) if t)
            st = known.get(key)
            # only a whole round of inputs can be answered (with one still missing, the
            # look waits for it, below, while it is on its way)
            landed = st.last_landed if st and round_landed(st, latest) else None
            looked = self.blind.get(key, 0)
            wait = self.settings.blind_check_after * 2 ** min(looked, 5)
            if landed is not None and landed >= seen - timedelta(seconds=wait):
                due = max(landed, seen) + timedelta(seconds=wait)  # fed: give it time
            elif (st is not None and st.feeding) or f.plan is None or f.plan.pending:
                continue  # a lot is on its way, or its inputs are still being decided
            else:
                due = seen + timedelta(seconds=8 * wait)  # on its own: rarely
            if now >= due:
                out[waypoint] = key
            elif self.next_look is None or due < self.next_look:
                self.next_look = due
        return out

    def _release_probes(self, needed: set[str]) -> None:
        """Let parked ships go where nothing waits any more, once the report of their
        flight there is handled (`_ending`)."""
        for waypoint, ship in list(self.parked.items()):
            info = self.fleet.get(ship)
            if waypoint not in needed and info is not None and not info.busy \
                    and not self._ending(ship):
                del self.parked[waypoint]
                self.storage.assignments.release(ship, self.owner)

    def _park(self, waypoint: str) -> str | None:
        if waypoint in self.parked:
            return self.parked[waypoint]
        ship = self._pick_any(waypoint, probes_only=True)
        if ship is None:
            return None
        self.parked[waypoint] = ship
        self.log.info("probe.park", waypoint=waypoint, ship=ship)
        self._dispatch(ship, Job(JobKind.VISIT, waypoint, self.id,
                                 reserve=self.settings.reserve))
        return ship

    # --- ships ---------------------------------------------------------------------------------

    def _assign(self, now: datetime, imminent: dict[str, Imminent],
                due: list[tuple[str, str | None]], rounds: int = 3) -> None:
        f = self.factory
        ready = f.ready(now)
        if not ready:
            return
        running = len(f.running())
        limit = self.settings.max_ships
        if limit is not None and running >= limit:
            return
        ships = self._idle_haulers()
        times = self._travel_times()
        destinations = {t.id: self._destination(t) for t in ready}
        standby = scheduling.stand_by(due, ships, times, self._stand_by_within())
        plan = scheduling.assign(ready, ships, times, destinations,
                                 busy_sources=self._buying(now),
                                 per_source_cap=self.settings.per_source_cap,
                                 at_once=self._answer_wait(),
                                 standing_by=standby,
                                 speculative=self._not_before_due(ready, imminent),
                                 # a ship whose report is on its way is free where it
                                 # stands; with more lots to come, a ship idle now is a
                                 # ship wasted: wait for a busy one only for the last lots
                                 arriving=self._ended() + ([] if f.more_lots_to_come()
                                                           else self._arriving(times, now)),
                                 ranks=self._ranks())
        refused = False
        for choice in plan:
            if limit is not None and running >= limit:
                break
            task = choice.task
            if not self._take(choice.ship, task.id):
                continue
            self._save([f.assign(task.id, choice.ship, now)])
            self.free_at[choice.ship] = (now + timedelta(seconds=choice.finish_in),
                                         destinations[task.id] or task.source)
            self.log.info("task.assigned", task=task.id, good=task.good, ship=choice.ship,
                          purpose=task.purpose.value, source=task.source,
                          destination=destinations[task.id], units=task.units_target,
                          finish_in=round(choice.finish_in))
            refused |= not self._dispatch(choice.ship, self._job(task, choice.ship))
            running += 1
        if refused and rounds > 1:
            self._assign(now, imminent, due, rounds - 1)  # a benched ship gave its task back
        elif len(plan) < len(ready):
            self._note_no_ship(ready, {c.task.id for c in plan}, now, idle=len(ships))

    def _not_before_due(self, ready: list[Task], imminent: dict[str, Imminent]) -> set[str]:
        """Ready tasks a ship standing by at an imminent station must not leave for: more
        lots for that station, and any task that goes after every lot due at those
        stations, so after the one it stands by for (seen: the one frigate, having landed
        the target's last input, flew 500 s for a twelfth lot of COPPER_ORE while the
        target answered behind it)."""
        last = max((self._rank(i.waiting[0]) for i in imminent.values()), default=None)
        return {t.id for t in ready if (t.purpose is TaskPurpose.FEED and t.station in imminent)
                or (last is not None and self._rank(t) > last)}

    def _imminent(self, now: datetime) -> dict[str, Imminent]:
        """Stations whose export has not answered yet where a whole round of inputs has
        landed, the last less than `answer_wait` ago: their output may come any moment
        (by station, the most urgent first). With an input of the round still missing, no
        output is due: the ships are needed to bring it; nor while a feed is partly on its
        way (`Station.last_finished`): its ship carries on, and an idle one looks."""
        stations = self.factory.stations()
        answered = self._answered()
        wait = self._answer_wait()
        out = {}
        for key, waiting in self._waiting_stations().items():
            st = stations.get(key)
            if st is None or key in answered:
                continue
            landed = st.last_finished
            if landed is None or (now - landed).total_seconds() > wait:
                continue
            rounds = rounds_landed(st, self.book.latest(st.waypoint))
            if rounds >= 1:
                out[key] = Imminent(st.waypoint, waiting, rounds)
        return out

    def _stand_by(self, due: list[tuple[str, str | None]]) -> set[str]:
        """Send an idle hauler to wait at each exporter about to have output, one for each
        lot `due`, so that the collect starts the moment the supply answers (the ship
        there watches it). Returns the ships standing by, there or on their way."""
        if not due:
            return set()
        ships = [v for v in self._idle_haulers() if not v.free_in]
        chosen = scheduling.stand_by(due, ships, self._travel_times(),
                                     self._stand_by_within())
        standing = set()
        for ship, (waypoint, seconds, _done, _end) in chosen.items():
            if self.fleet.get(ship).waypoint == waypoint:
                standing.add(ship)
                continue
            if waypoint in self.visits or not self._take(ship, None) or not self._dispatch(
                    ship, Job(JobKind.VISIT, waypoint, self.id, reserve=self.settings.reserve)):
                continue
            standing.add(ship)
            self.visits[waypoint] = ship
            self.log.info("ship.standby", ship=ship, waypoint=waypoint, eta=round(seconds))
        return standing

    def _rounds_needed(self, station: Station) -> int:
        """Rounds of inputs the station's exporter was seen to need for one answer."""
        return rounds_needed(self.book.answer_rounds(station.waypoint, station.good))

    def _answer_wait(self) -> float:
        """Seconds a fed exporter is given to answer (`feeding.answer_wait`)."""
        return answer_wait(self.settings.answer_wait, self.book.answer_delays(self.factory.system))

    def _stand_by_within(self) -> float | None:
        """How far a ship may fly to stand by: any distance for the last lots (an idle
        ship has nothing better to do), but while more lots are to open only as far as
        the answer wait, since a ship in flight cannot take the next lot's work."""
        return self._answer_wait() if self.factory.more_lots_to_come() else None

    def _outputs_due(self, imminent: dict[str, Imminent]) -> list[tuple[str, str | None]]:
        """The lots the imminent stations are about to output, as (waypoint, where the lot
        goes), the most urgent first."""
        return [(i.waypoint, self._destination(t)) for i in imminent.values() for t in i.due]

    def _visiting(self, times: scheduling.TravelTimes, now: datetime
                  ) -> list[scheduling.ShipView]:
        """This factory's ships (probes too) flying to look or to stand by, as they will be
        where they land: free there in the seconds left of their flight."""
        out = []
        for waypoint, symbol in self.visits.items():
            s = self.fleet.get(symbol)
            if s is None or s.lost or not s.busy:
                continue
            eta = s.lands_in(now) + times.seconds(s.waypoint, waypoint, s.speed, s.fuel_capacity,
                                          s.fuel_capacity)
            out.append(scheduling.ShipView(s.symbol, waypoint, s.speed, s.fuel_capacity,
                                           s.fuel_capacity, s.cargo_capacity, s.cargo_free,
                                           eta))
        return out

    def _buying(self, now: datetime) -> dict[tuple[str, str], list[float | None]]:
        """For each good at each market, when each of our ships on its way to buy it
        there gets there (seconds from now; None for one not flying straight there yet)."""
        out: dict[tuple[str, str], list[float | None]] = {}
        for t in self.factory.running():
            if t.to_buy:
                s = self.fleet.get(t.ship) if t.ship else None
                there = s.lands_in(now) if s is not None and s.waypoint == t.source else None
                out.setdefault((t.source, t.good), []).append(there)
        return out

    def _arriving(self, times: scheduling.TravelTimes, now: datetime
                  ) -> list[scheduling.ShipView]:
        """This factory's busy haulers as they will be once free: the `_visiting` ones,
        and those on a trip of ours, free where it ends with an empty hold — when they land
        there if they are on the last leg, else when the trip's estimate said (a ship past
        its estimate elsewhere is not waited for)."""
        out = [v for v in self._visiting(times, now) if v.is_hauler]
        flying = {v.symbol for v in out}
        for symbol, (due, waypoint) in self.free_at.items():
            s = self.fleet.get(symbol)
            if s is None or s.lost or not s.busy or symbol in flying:
                continue
            if s.waypoint == waypoint:  # on its last leg, or there: its landing is known
                free_in = s.lands_in(now)
            elif due > now:
                free_in = (due - now).total_seconds()
            else:
                continue
            out.append(scheduling.ShipView(s.symbol, waypoint, s.speed, s.fuel_capacity,
                                           s.fuel_capacity, s.cargo_capacity, s.cargo_capacity,
                                           free_in))
        return out

    def _travel_times(self) -> scheduling.TravelTimes:
        """Flight times in the factory's system, shared with the other factories."""
        times = self.book.travel_times(self.factory.system)
        times.pace = self.fleet.pace  # seconds on the clock ships land by
        return times

    def _destination(self, task: Task) -> str | None:
        if task.purpose is TaskPurpose.FEED:
            return task.destination
        return self.factory.destination.waypoint if not self.factory.destination.keeps \
            else None

    def _ended(self) -> list[scheduling.ShipView]:
        """Ships whose job for us ended on their side (the fleet shows them idle) before
        we heard of it: free where they are, but not to be sent until the report is handled
        (`_ending`), so a task or a read they would see to first waits for them rather than
        go to a slower ship (seen: a light hauler sent 400 s away to buy where the frigate
        had just landed to read)."""
        return [scheduling.ShipView(s.symbol, s.waypoint, s.speed, s.fuel, s.fuel_capacity,
                                    s.cargo_capacity, s.cargo_free, 0.0)
                for s in self.fleet.all() if not s.busy and not s.lost
                and s.symbol not in self.benched and self.allowed(s)
                and self._ending(s.symbol)]

    def _idle_haulers(self) -> list[scheduling.ShipView]:
        parked = set(self.parked.values())
        ships = [s for s in self.fleet.all() if s.is_hauler and not s.busy and not s.lost
                 and s.symbol not in parked and s.symbol not in self.benched
                 and self.allowed(s) and not self._ending(s.symbol)]
        if not ships:
            return []  # most passes while the fleet is at work: no need to ask the database
        held = {a.ship for a in self.storage.assignments.all() if a.owner != self.owner}
        carrying: dict[str, dict[str, int]] = {}
        for task in self.factory.open_tasks():
            for ship, units in task.carriers.items():
                carrying.setdefault(ship, {})[task.id] = units
        now = self.clock()
        views = []
        for s in ships:
            if s.symbol in held:
                continue
            free_in = s.lands_in(now)
            views.append(scheduling.ShipView(
                s.symbol, s.waypoint, s.speed, s.fuel, s.fuel_capacity, s.cargo_capacity,
                s.cargo_free, free_in, carrying.get(s.symbol, {})))
        return views

    def _note_no_ship(self, ready: list[Task], assigned: set[str], now: datetime,
                      idle: int) -> None:
        """Say so, once in a while, when ready work finds no ship, and why: a player who
        sees an idle hauler in `status` should not read that every hauler is busy."""
        last = self.warned.get("no-ship")
        if last is not None and (now - last).total_seconds() < self.settings.warn_after / 10:
            return
        waiting = [t for t in ready if t.id not in assigned]
        self.warned["no-ship"] = now
        reason = ("every usable hauler is busy, benched or full, or its goods are on a busy "
                  "ship" if not idle else "the idle haulers are full, standing by or held "
                  "by the per-market cap, or a busy one soon free would finish first")
        self.log.info("task.no_ship", tasks=len(waiting), first=waiting[0].id, idle=idle,
                      reason=reason)

    def _job(self, task: Task, ship: str) -> Job:
        f = self.factory
        feed = task.purpose is TaskPurpose.FEED
        return Job(JobKind.TRADE, task.source, f.id, task=task.id, good=task.good,
                   destination=self._destination(task),
                   deliver=DeliverKind.SELL if feed else f.destination.kind,
                   contract=f.destination.contract, units=task.units_target,
                   lost=task.units_lost, written_off=task.lost_by.get(ship, 0),
                   below_threshold=task.below_threshold, min_supply=f.min_supply,
                   collect=task.kind is TaskKind.COLLECT,
                   ceiling=self._ceiling(task.good),
                   reserve=self.settings.reserve)

    def _pick_any(self, waypoint: str, probes_only: bool = False) -> str | None:
        """The idle ship (a probe, if `probes_only`) that reaches `waypoint` first,
        claimed here and in the database."""
        times = self._travel_times()
        parked = set(self.parked.values()) | set(self.visits.values())
        candidates = [s for s in self.fleet.all()
                      if not s.busy and not s.lost and s.symbol not in parked
                      and s.symbol not in self.benched and (not probes_only or not s.is_hauler)
                      and self.allowed(s)]
        avoid = self.visit_failed.get(waypoint)
        for s in sorted(candidates, key=lambda s: (s.symbol == avoid, times.seconds(
                s.waypoint, waypoint, s.speed, s.fuel, s.fuel_capacity), s.symbol)):
            if self._take(s.symbol, None):
                return s.symbol
        return None

    def _take(self, ship: str, task: str | None, resuming: bool = False) -> bool:
        if (not resuming and self._ending(ship)) or not self.fleet.take(ship):
            return False
        held = self.storage.assignments.get(ship)
        if held is not None and held.owner == self.owner and held.factory in (None, self.id):
            self.storage.assignments.reassign(ship, self.owner, self.id, task)
            return True
        if held is None and self.storage.assignments.claim(ship, self.owner, self.clock(),
                                                           factory=self.id, task=task):
            return True
        self.fleet.free(ship)
        return False

    def _ending(self, ship: str) -> bool:
        """Whether the ship's last job for us (a read or a task) may have ended on its
        side, the fleet showing it idle, before we heard of it: until that report is
        handled, which releases its claim, it is not sent again (the release would drop
        the new job's claim, and another process could take the ship in the middle of
        it). A running task counts too, for a coordinator rebuilt since it was sent;
        resuming it on its ship is the exception."""
        return ship in self.out or any(
            t.ship == ship and t.state is TaskState.RUNNING for t in self.factory.tasks.values())

    def _dispatch(self, ship: str, job: Job) -> bool:
        """Tell the ship; a benched ship is let go and its task handed out again."""
        if self.ships.dispatch(ship, job):
            self.out.add(ship)
            return True
        self.fleet.free(ship)
        self.benched.add(ship)
        self.storage.assignments.release(ship, self.owner)
        task = self.factory.tasks.get(job.task) if job.task else None
        if task is not None and task.state is TaskState.RUNNING:
            self._save([self.factory.release(task.id)])
        return False

    def _survey(self, keep: set[str]) -> None:
        """Read the markets decisions wait for, in one parallel pass: each goes to the ship
        that reads it first (probes included, the ships in `keep` standing by left out),
        ships already flying to a reading counted, a market a slow ship is on its way to
        gets a fast idle one if it halves the wait, and a ship reads first a market nobody
        was sent to that lies on its way (seen: the frigate flew past COPPER's exporter to
        MICROPROCESSORS' and a probe read it 700 s later)."""
        self.looks = self._looks(self.clock())
        reads = self.wanted_reads | set(self.looks)
        if not reads:
            return
        parked = set(self.parked.values())
        usable = [s for s in self.fleet.all() if not (
            s.lost or not self.allowed(s) or s.symbol in parked or s.symbol in self.benched
            or s.symbol in keep)]
        # a ship whose report is on its way takes part where it stands, but is not sent
        names = {s.symbol for s in usable}
        ended = [v for v in self._ended() if v.symbol in names]
        gone = {v.symbol for v in ended}
        idle = [scheduling.ShipView(s.symbol, s.waypoint, s.speed, s.fuel, s.fuel_capacity,
                                    s.cargo_capacity, s.cargo_free)
                for s in usable if not s.busy and s.symbol not in gone]
        todo = reads - set(self.visits)
        if not idle or not (todo or self.wanted_reads.intersection(self.visits)):
            return  # most passes: nobody to send, or nothing to read
        times = self._travel_times()
        arriving = {v.symbol: v for v in self._visiting(times, self.clock())}
        flying = [arriving[s.symbol] for s in usable if s.symbol in arriving] + ended
        en_route = {v.waypoint: v.free_in for v in flying if v.waypoint in self.wanted_reads}
        # a sole source being read gets a carrier: our fastest kind of hauler (busy or
        # standing by too: a slower one sent there is not the one to carry), faster than
        # its reader (one ship reads each market: `visits` maps it to one)
        readers = [v for v in flying if v.waypoint in en_route and v.waypoint in self.sole_sources]
        top = max((s.speed for s in self.fleet.all() if s.is_hauler and not s.lost
                   and self.allowed(s) and s.symbol not in self.benched),
                  default=0) if readers else 0
        carried_from = {v.waypoint: max(top, v.speed + 1 if v.is_hauler else 0)
                        for v in readers}
        if not (todo or en_route):
            return
        # the least speculative first (their reads may make the rest needless), then every
        # ship left over on the others, in the same pass; when every read left is
        # speculative, the markets being read for goods needed for sure (level 0) come
        # before them: a faster ship that halves the wait, a carrier where a probe reads
        least = min((self.read_levels.get(w, 0) for w in todo), default=0)
        first = {w for w in todo if self.read_levels.get(w, 0) <= least}
        sure = {w for w in en_route if not self.read_levels.get(w, 0)} if least else set()
        sent = scheduling.visits(first, idle, times, flying=flying, en_route=en_route,
                                 carried_from=carried_from, before=sure,
                                 carried_before={v.waypoint for v in readers if not v.is_hauler})
        busy = {ship for ship, _w, _s in sent}
        sent += scheduling.visits(todo - first, [s for s in idle if s.symbol not in busy],
                                  times, flying=flying)
        sent = scheduling.on_the_way(sent, todo - {w for _s, w, _t in sent}, idle, times)
        for ship, waypoint, seconds in sent:
            if not self._take(ship, None) or not self._dispatch(
                    ship, Job(JobKind.VISIT, waypoint, self.id, reserve=self.settings.reserve)):
                continue
            if waypoint in self.visits:
                self.log.info("survey.faster", waypoint=waypoint, ship=ship,
                              instead_of=self.visits[waypoint])
            self.visits[waypoint] = ship
            if waypoint in self.looks and waypoint not in self.wanted_reads:
                key = self.looks.pop(waypoint)
                self.blind[key] = self.blind.get(key, 0) + 1
                self.log.info("watch.blind", waypoint=waypoint, station=key, ship=ship,
                              looks=self.blind[key], reason="no probe can watch it: an idle "
                              "ship goes to look")
            else:
                self.log.info("survey.visit", waypoint=waypoint, ship=ship,
                              eta=round(seconds))

    def _follow(self) -> None:
        """Hear of every reading of the markets this factory decides by."""
        f = self.factory
        markets = {t.source for t in f.open_tasks()} | self.wanted_reads | {
            t.destination for t in f.open_tasks() if t.destination}
        wanted = frozenset(markets)
        if wanted != self.followed:
            self.followed = wanted
            self.watcher.tell(Follow(self.id, wanted))

    # --- results -------------------------------------------------------------------------------

    def _visit_ended(self, message) -> None:
        waypoint = message.job.source
        if not isinstance(message, JobDone):
            self.visit_failed[waypoint] = message.ship
        if self.visits.get(waypoint) == message.ship:
            del self.visits[waypoint]
            self.storage.assignments.release(message.ship, self.owner)
        elif self.parked.get(waypoint) == message.ship:
            self.storage.assignments.reassign(message.ship, self.owner, self.id, None, "WATCH")
            if not isinstance(message, JobDone):
                del self.parked[waypoint]
                self.storage.assignments.release(message.ship, self.owner)
        else:
            self.storage.assignments.release(message.ship, self.owner)
        if isinstance(message, ShipLost):
            self.fleet.mark_lost(message.ship)
        if isinstance(message, ShipCrashed) and message.benched:
            self.benched.add(message.ship)
        self.markets_changed = True

    def _trip_ended(self, message, now: datetime) -> None:
        f, task_id, ship = self.factory, message.job.task, message.ship
        if isinstance(message, JobInterrupted):
            return  # the process is stopping: the task stays RUNNING, for resume
        self.storage.assignments.release(ship, self.owner)
        self.free_at.pop(ship, None)
        self._reload_progress(task_id)
        task = f.tasks[task_id]
        if isinstance(message, JobDone):
            if message.missing:
                f.lose(task_id, ship, message.missing)
            if message.need is not None and not self._delivering_elsewhere(task_id):
                f.cap_wanted(f.units_acquired + message.need)
            if message.bought:
                self.not_ready_runs.pop((task.source, task.good), None)
            task = f.trip_done(task_id, now, message.supply_fell, message.delivered)
            if task.state is TaskState.READY and not (message.bought or message.delivered):
                # it moved nothing: wait a little rather than send it straight back
                task.not_before = backoff(1, now, base=self.settings.not_ready_backoff)
            self._save([task])
            self._log_trip(task, message)
        elif isinstance(message, JobNotReady):
            self._save(f.not_ready(task_id, now, message.reason,
                                   self._not_ready_backoff(task, now)))
            self.markets_changed = True
        elif isinstance(message, ShipLost):
            self.log.warning("ship.lost", ship=ship, task=task_id)
            self.fleet.mark_lost(ship)
            f.lose(task_id, ship)
            self._save([f.release(task_id)])
        elif isinstance(message, ShipCrashed):
            if message.benched:
                self.benched.add(ship)
                self.log.error("ship.benched", ship=ship, reason=message.error)
            self._fail_task(task_id, ship, f"ship actor crashed: {message.error}", now)
        elif isinstance(message, JobFailed):
            if message.fatal:
                self._fail(message.error, now)
                return
            self._fail_task(task_id, ship, message.error, now)

    def _not_ready_backoff(self, task: Task, now: datetime) -> datetime:
        """When to look again at a market that sold nothing: `not_ready_backoff`, doubling
        with each verdict in a row on the same good there (its price or supply recovers
        at a pace the game does not publish), up to the watcher's settled polls."""
        key = (task.source, task.good)
        self.not_ready_runs[key] += 1
        base = self.settings.not_ready_backoff
        return backoff(self.not_ready_runs[key], now, base=base,
                       cap=max(base, self.settings.poll_settled))

    def _fail_task(self, task_id: str, ship: str, error: str, now: datetime) -> None:
        f = self.factory
        attempts = f.tasks[task_id].attempts + 1
        touched = f.fail_task(task_id, now, error,
                              backoff(attempts, now, base=self.settings.retry_backoff))
        self._save(touched)
        self.log.warning("task.gave_up" if f.status.finished else "task.retry", task=task_id,
                         ship=ship, error=error, attempts=attempts)

    def _reload_progress(self, task_id: str) -> None:
        """The ledger (settled by the ship) is the truth of what a trip moved."""
        f = self.factory
        progress = self.storage.ledger.task_progress(f.id, task_id).get(task_id)
        task = f.tasks[task_id]
        if progress is not None:
            task.bought_by, task.delivered_by = progress.bought_by, progress.delivered_by
            task.cost, task.revenue = progress.cost, progress.revenue
        f.credits_spent = self.storage.ledger.factory_spend(f.id)

    def _log_trip(self, task: Task, message: JobDone) -> None:
        event = "task.done" if task.state is TaskState.DONE else "task.trip"
        self.log.info(event, task=task.id, good=task.good, ship=message.ship,
                      bought=message.bought, delivered=message.delivered, trips=task.trips,
                      acquired=task.units_acquired, target=task.units_target,
                      state=task.state.value)
        if task.purpose is TaskPurpose.FEED and message.delivered:
            self.blind.pop(task.station, None)  # fed: worth looking again soon
            self.fed_lately = True  # its watch learns of the landing
            latest = self.book.latest(task.destination)
            station = self.factory.stations().get(task.station)
            export = latest.quote(station.good) if latest and station else None
            imported = latest.quote(task.good) if latest else None
            self.log.info("production.fed", task=task.id, station=task.station,
                          good=task.good, units=message.delivered,
                          export_supply=export.supply.name if export else None,
                          input_supply=imported.supply.name if imported else None)
        if task.purpose is TaskPurpose.OUTPUT:
            f = self.factory
            self.log.info("factory.progress", acquired=f.units_acquired, wanted=f.units_wanted)

    # --- endings -------------------------------------------------------------------------------

    def _fail(self, reason: str, now: datetime) -> None:
        self.log.error("factory.failed", reason=reason)
        for task in self.factory.running():
            if task.ship:
                self.ships.cancel(task.ship)
        self._save(self.factory.fail(reason, now))
        self._finish_if_done(now)

    def _finish_if_done(self, now: datetime) -> None:
        f = self.factory
        if self.finished or f is None:
            return
        if f.status is FactoryStatus.ACTIVE and f.reached and f.settled:
            f.complete(now)
            self._save([])
        if not f.status.finished:
            return
        self.finished = True
        for key in self.watched:
            self.watcher.tell(Unwatch(key))
        self.watcher.tell(Follow(self.id, frozenset()))
        # a ship still out for us (a read: every task has ended) keeps its claim until its
        # report comes, or another process could send it while our job on it goes on
        self.storage.assignments.release_factory(self.id, keep=self.out)
        self.storage.factories.release(self.id, self.owner)
        self.log.info("factory.finished", status=f.status.value, units=f.units_acquired,
                      credits=f.credits_spent, error=f.error)
        self.runner.finished(self.id)

    def _delivering_elsewhere(self, task_id: str) -> bool:
        """Whether another lot of the target is on a ship. Its delivery may have reached
        the site before this trip read what the site still needs, while its report is
        still on its way: our count would miss it, and that reading would cap the order
        below what the site needs (the gate stopped 20-40 FAB_MATS short so)."""
        return any(t.id != task_id and t.state is TaskState.RUNNING
                   for t in self.factory.outputs())

    def _save(self, tasks: Iterable[Task]) -> None:
        self.storage.factories.save(self.factory, list(tasks), owner=self.owner)

    # --- failures ------------------------------------------------------------------------------

    def recover(self, exc: BaseException) -> None:
        """An unexpected error in a handler: reload the factory from the database and go
        on, unless errors keep coming (then re-raise: the actor dies and the runtime
        rebuilds the coordinator, or ends the run)."""
        now = self.clock()
        self.errors = [t for t in self.errors if now - t < ERROR_WINDOW] + [now]
        self.log.error("coordinator.error", error=f"{type(exc).__name__}: {exc}",
                       errors=len(self.errors))
        if len(self.errors) >= MAX_ERRORS:
            raise exc
        self.reload()


class CoordinatorActor(pykka.ThreadingActor):
    """A mailbox for a coordinator. Unexpected errors reload the factory from the
    database; too many in a row, or one while starting, let the actor die, and the
    runtime notices and rebuilds it (or ends the run)."""

    use_daemon_thread = True

    def __init__(self, coordinator: Coordinator):
        super().__init__()
        self.coordinator = coordinator

    def on_start(self) -> None:
        structlog.contextvars.bind_contextvars(factory=self.coordinator.id)
        self.coordinator.start()

    def on_receive(self, message: object) -> None:
        try:
            self.coordinator.handle(message)
        except Cancelled:
            pass
        except LeaseLost:
            self.coordinator.let_go()
        except (peewee.OperationalError, peewee.InterfaceError) as exc:
            # the database is away (the runtime watches how long for): reload once it is back
            self.coordinator.log.warning("coordinator.database_error", error=str(exc))
            self.coordinator.needs_reload = True
        except Exception as exc:
            self.coordinator.recover(exc)

