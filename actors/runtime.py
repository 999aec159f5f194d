"""The one place where the actors are built, wired, started, watched and stopped.

Order matters: the market book and the watcher first (everyone reads markets through
them), then the ship pool, then one coordinator per factory; stopping goes the other
way, and anything still alive afterwards is logged as a bug.

Nothing may hang. `wait` looks after the actors while the factories run: a coordinator
that died is rebuilt from the database (at most `max_rebuilds` times, then the run ends
with one line); a dead watcher is restarted with its subscriptions; a coordinator that
could not renew its lease for longer than the lease (a lost database, a hung thread)
ends the run, so that a supervisor restarts it and `resume` takes over. While all is
well, `wait` feeds the watchdog.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pykka
import structlog

from actors.coordinator import Coordinator, CoordinatorActor
from actors.fleet import Fleet, ShipInfo, Wallet
from actors.messages import Observed
from actors.pool import ShipPool
from actors.settings import Settings
from actors.ship import ShipWorker
from actors.ticker import Ticker
from actors.watcher import Directory, MarketBook, MarketWatcher, MarketWatcherActor
from api.client import Client
from api.models import Agent, Ship
from domain.supply_chain import SupplyChain
from storage.repositories import Storage

log = structlog.get_logger("runtime")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_owner() -> str:
    """Who runs factories here: host, process and a nonce (pids get reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_alive(owner: str | None) -> bool | None:
    """True or False when the owner's process is on this host; None when it is not."""
    if not owner:
        return False
    try:
        host, pid, _ = owner.rsplit(":", 2)
        pid_number = int(pid)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(pid_number, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunError(Exception):
    """The run cannot go on (a coordinator keeps dying, the database is gone): the
    factories stay resumable."""


@dataclass(frozen=True)
class Outcome:
    finished: bool  # every factory ended (else: stopped, or `error`)
    error: str | None = None


class _Directory(Directory):
    """factory -> its current coordinator; events for a dead one are dropped (the one
    rebuilt in its place reads the truth from the database)."""

    def __init__(self):
        self._refs: dict[str, pykka.ActorRef] = {}
        self._lock = threading.Lock()

    def set(self, factory: str, ref: pykka.ActorRef) -> None:
        with self._lock:
            self._refs[factory] = ref

    def tell(self, factory: str, message: object) -> None:
        with self._lock:
            ref = self._refs.get(factory)
        if ref is None:
            return
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            log.warning("directory.dead", factory=factory, message=type(message).__name__)


class _Runner:
    """The coordinators' port to the runtime: they say when their factory has ended, and
    ask whether the process is stopping (then they start nothing new)."""

    def __init__(self, stop: threading.Event):
        self.done: queue.Queue[str] = queue.Queue()
        self._stop = stop

    def finished(self, factory: str) -> None:
        self.done.put(factory)

    def stopping(self) -> bool:
        return self._stop.is_set()


@dataclass
class _Running:
    coordinator: Coordinator
    ref: pykka.ActorRef
    rebuilds: int = 0


class _WatcherPort:
    """Tells the watcher, restarting its actor (with the same subscriptions) if it died."""

    def __init__(self, logic: MarketWatcher):
        self.logic = logic
        self.ref = MarketWatcherActor.start(logic)
        self._lock = threading.Lock()
        self.restarts = 0

    def tell(self, message: object) -> None:
        try:
            self.ref.tell(message)
        except pykka.ActorDeadError:
            self.revive()
            self.ref.tell(message)

    def revive(self) -> bool:
        with self._lock:
            if self.ref.is_alive():
                return False
            self.restarts += 1
            log.error("watcher.restarted", restarts=self.restarts)
            self.ref = MarketWatcherActor.start(self.logic)
            return True


class Runtime:
    def __init__(self, *, client: Client, storage: Storage, chain: SupplyChain, agent: Agent,
                 settings: Settings, ships: set[str] | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 watchdog: Callable[[], None] | None = None):
        self.client = client
        self.storage = storage
        self.chain = chain
        self.agent = agent
        self.settings = settings
        self.only = ships
        self.clock = clock
        self.watchdog = watchdog
        self.owner = new_owner()
        self.stop = client.stop
        self.fleet = Fleet(on_move=self._record_position)
        self.discovered: dict[str, Ship] = {}  # the fleet as `discover` read it
        self.wallet = Wallet(agent.credits)
        self.book = MarketBook(client, storage)
        self.directory = _Directory()
        self.runner = _Runner(self.stop)
        self.watcher = _WatcherPort(MarketWatcher(self.book, self.fleet, self.directory, clock,
                                                  settings.poll_initial,
                                                  settings.poll_settled,
                                                  settings.quote_fresh_for,
                                                  settings.history_days))
        self.book.listen(lambda snapshot: self.watcher.tell(Observed(snapshot)))
        self.pool = ShipPool(self._worker, self.directory, settings.max_ship_restarts)
        self.ticker = Ticker(settings.tick)
        self.ticker.add(self.watcher)
        self.running: dict[str, _Running] = {}
        self.systems: set[str] = set()
        self._done: set[str] = set()
        self._started = False

    # --- building ------------------------------------------------------------------------

    def _worker(self, ship: str) -> ShipWorker:
        worker = ShipWorker(ship, agent=self.agent.symbol, client=self.client,
                            storage=self.storage, book=self.book, fleet=self.fleet,
                            wallet=self.wallet, clock=self.clock, stop=self.stop,
                            report=self.directory.tell, owner=self.owner,
                            fresh_for=self.settings.quote_fresh_for,
                            arrival_slack=self.settings.arrival_slack)
        seen = self.discovered.pop(ship, None)  # a restarted worker reads the ship itself
        if seen is not None:
            worker.start_from(seen)
        return worker

    def _record_position(self, symbol: str, nav, role: str | None) -> None:
        """For dashboards; a failed write costs only a stale dot on a map."""
        try:
            self.storage.ships.record(symbol, nav, role, self.clock())
        except Exception as exc:
            log.warning("ship.position_not_recorded", ship=symbol, error=str(exc))

    def allowed(self, ship: ShipInfo) -> bool:
        """Probes always serve (surveys, watching); haulers only if the player allows."""
        return not ship.is_hauler or self.only is None or ship.symbol in self.only

    def discover(self) -> list[ShipInfo]:
        """Read the fleet from the server (each ship's first worker starts from it)."""
        ships = self.client.ships()
        self.discovered = {ship.symbol: ship for ship in ships}
        return [self.fleet.update(ship) for ship in ships]

    def know_system(self, system: str) -> None:
        """Waypoints and market lists of a system, read once per process."""
        if system not in self.systems:
            self.book.know_system(system)
            self.systems.add(system)

    def idle_haulers(self, looking: bool = False) -> list[ShipInfo]:
        """Haulers we may use that no live process holds (`looking`: or holds only to fly
        and read a market, with no task: they are free again once they land)."""
        held = {a.ship: a for a in self.storage.assignments.all()}
        return [s for s in self.fleet.all()
                if s.is_hauler and not s.lost and self.allowed(s)
                and (s.symbol not in held or owner_alive(held[s.symbol].owner) is False
                     or (looking and held[s.symbol].task is None
                         and held[s.symbol].purpose == "TASK"))]

    def start_factory(self, factory_id: str) -> None:
        if not self._started:
            self.storage.assignments.release_dead(owner_alive)
            self.ticker.start()
            self._started = True
        summary = self.storage.factories.summary(factory_id)
        self.know_system(summary.system)
        self._build(factory_id)

    def _build(self, factory_id: str, rebuilds: int = 0) -> None:
        coordinator = Coordinator(
            factory_id, storage=self.storage, book=self.book, ships=self.pool,
            watcher=self.watcher, runner=self.runner, fleet=self.fleet, chain=self.chain,
            settings=self.settings, owner=self.owner, agent=self.agent.symbol,
            clock=self.clock, allowed=self.allowed)
        ref = CoordinatorActor.start(coordinator)
        old = self.running.get(factory_id)
        if old is not None:
            self.ticker.remove(old.ref)
        self.running[factory_id] = _Running(coordinator, ref, rebuilds)
        self.directory.set(factory_id, ref)
        self.ticker.add(ref)

    # --- running -------------------------------------------------------------------------

    def wait(self, on_idle: Callable[[], None] | None = None, every: float = 1.0) -> Outcome:
        """Block until every started factory has finished, a stop came, or the run cannot
        go on; look after the actors meanwhile."""
        while self._done != set(self.running):
            if self.stop.is_set():
                return Outcome(False)
            if self.pump(every):
                continue
            error = self.supervise()
            if error:
                return Outcome(False, error)
            if on_idle is not None:
                on_idle()
        return Outcome(True)

    def pump(self, timeout: float) -> bool:
        """Take the news of finished factories (waiting up to `timeout` for the first);
        True if there was any."""
        try:
            self._done.add(self.runner.done.get(timeout=timeout))
        except queue.Empty:
            return False
        while True:
            try:
                self._done.add(self.runner.done.get_nowait())
            except queue.Empty:
                return True

    def supervise(self) -> str | None:
        """One round of care: rebuild dead coordinators, revive the watcher, check the
        leases are renewed, feed the watchdog. Returns why the run must end, if it must."""
        now = self.clock()
        lease = timedelta(seconds=self.settings.lease)
        for factory_id, run in list(self.running.items()):
            if factory_id in self._done:
                continue
            if not run.ref.is_alive():
                if run.rebuilds >= self.settings.max_rebuilds:
                    return (f"the coordinator of {factory_id} died {run.rebuilds + 1} times; "
                            "the factory is left for `resume`")
                log.error("coordinator.rebuilt", factory=factory_id, rebuilds=run.rebuilds + 1)
                self._build(factory_id, run.rebuilds + 1)
                continue
            renewed = run.coordinator.lease_renewed_at or run.coordinator.started_at
            if renewed is not None and now - renewed > lease:
                return (f"factory {factory_id} could not renew its lease for "
                        f"{int((now - renewed).total_seconds())} s (is the database "
                        "reachable?); it is left for `resume`")
        self.watcher.revive()
        if self.watchdog is not None:
            self.watchdog()
        return None

    def request_stop(self) -> None:
        self.stop.set()

    def shutdown(self) -> None:
        """Stop everything in reverse order; whatever is left running is a bug."""
        self.stop.set()
        self.ticker.stop()
        for factory_id, run in reversed(self.running.items()):
            try:
                if factory_id not in self._done:
                    run.coordinator.suspend()
                run.ref.stop(timeout=10)
            except (pykka.ActorDeadError, pykka.Timeout):
                log.warning("runtime.coordinator_stuck", factory=factory_id)
            except Exception as exc:  # the database may be gone: nothing to release
                log.warning("runtime.suspend_failed", factory=factory_id, error=str(exc))
        for ship in self.pool.stop_all():
            log.warning("runtime.ship_stuck", ship=ship)
        try:
            self.watcher.ref.stop(timeout=10)
        except (pykka.ActorDeadError, pykka.Timeout):
            log.warning("runtime.watcher_stuck")
        try:
            self.storage.assignments.release_owner(self.owner)
        except Exception as exc:
            log.warning("runtime.release_failed", error=str(exc))
        leftovers = pykka.ActorRegistry.get_all()
        if leftovers:
            log.error("runtime.actors_left_running", actors=[str(r) for r in leftovers])
        alive = [t.name for t in threading.enumerate()
                 if t.name.startswith(("ShipActor", "CoordinatorActor", "MarketWatcher"))
                 and t.is_alive()]
        if alive:
            log.error("runtime.threads_left_running", threads=alive)
