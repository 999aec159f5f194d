"""The one place where the actors are built, wired, started and stopped.

Order matters: the watcher first (coordinators talk to it), then one actor per ship,
then one coordinator per factory; stopping goes the other way, and anything still
alive afterwards is logged as a bug.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pykka
import structlog

from actors.coordinator import Coordinator, CoordinatorActor, Settings
from actors.fleet import Fleet, ShipInfo, Wallet
from actors.messages import RunJob
from actors.ship import ShipActor, ShipWorker
from actors.ticker import Ticker
from actors.watcher import MarketWatcher, MarketWatcherActor, Observed
from api.client import Client
from api.models import Agent
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


class Runtime:
    def __init__(self, *, client: Client, storage: Storage, chain: SupplyChain, agent: Agent,
                 settings: Settings, ships: set[str] | None = None,
                 poll_initial: float = 30.0, poll_settled: float = 60.0,
                 tick: float = 1.0, clock: Callable[[], datetime] = utcnow):
        self.client = client
        self.storage = storage
        self.chain = chain
        self.agent = agent
        self.settings = settings
        self.only = ships
        self.clock = clock
        self.owner = new_owner()
        self.stop = client.stop
        self.fleet = Fleet()
        self.wallet = Wallet(agent.credits)
        self.ticker = Ticker(tick)
        self.watcher = MarketWatcherActor.start(MarketWatcher(
            client, storage, self.fleet, clock, poll_initial, poll_settled))
        self.ticker.add(self.watcher)
        self.ships: dict[str, tuple[pykka.ActorRef, ShipWorker]] = {}
        self.coordinators: dict[str, pykka.ActorRef] = {}
        self._finished: queue.Queue[str] = queue.Queue()
        self._done: set[str] = set()
        self._started = False

    # --- building ------------------------------------------------------------------------

    def allowed(self, ship: ShipInfo) -> bool:
        """Probes always serve (surveys, watching); haulers only if the player allows."""
        return not ship.is_hauler or self.only is None or ship.symbol in self.only

    def discover(self) -> list[ShipInfo]:
        """Read the fleet from the server and give every ship an actor."""
        found = []
        for ship in self.client.ships():
            info = self.fleet.update(ship)
            found.append(info)
            if ship.symbol not in self.ships:
                worker = ShipWorker(ship.symbol, agent=self.agent.symbol, client=self.client,
                                    storage=self.storage, fleet=self.fleet, wallet=self.wallet,
                                    clock=self.clock, stop=self.stop,
                                    observe=lambda s: self.watcher.tell(Observed(s)))
                self.ships[ship.symbol] = (ShipActor.start(worker), worker)
        return found

    def idle_haulers(self) -> list[ShipInfo]:
        """Haulers we may use that no live process holds."""
        held = {a.ship: a.owner for a in self.storage.assignments.all()}
        return [s for s in self.fleet.all()
                if s.is_hauler and not s.lost and self.allowed(s)
                and (s.symbol not in held or owner_alive(held[s.symbol]) is False)]

    def start_factory(self, factory_id: str) -> None:
        if not self._started:
            self.storage.assignments.release_dead(owner_alive)
            self.ticker.start()
            self._started = True
        coordinator = Coordinator(
            factory_id, storage=self.storage, client=self.client, fleet=self.fleet,
            chain=self.chain, settings=self.settings, owner=self.owner,
            agent=self.agent.symbol, clock=self.clock, dispatch=self._dispatch,
            cancel=self._cancel, watch=self._watch, unwatch=self._unwatch,
            allowed=self.allowed, on_finished=self._finished.put)
        ref = CoordinatorActor.start(coordinator)
        self.coordinators[factory_id] = ref
        self.ticker.add(ref)

    def _dispatch(self, ship: str, job, reply) -> None:
        self.ships[ship][0].tell(RunJob(job, reply))

    def _cancel(self, ship: str) -> None:
        if ship in self.ships:
            self.ships[ship][1].cancel.set()

    def _watch(self, *args) -> None:
        self.watcher.proxy().watch(*args)

    def _unwatch(self, key: str) -> None:
        self.watcher.proxy().unwatch(key)

    # --- running -------------------------------------------------------------------------

    def wait(self, on_idle: Callable[[], None] | None = None, every: float = 1.0) -> bool:
        """Block until every started factory has finished (True) or a stop came (False)."""
        while self._done != set(self.coordinators):
            if self.stop.is_set():
                return False
            try:
                self._done.add(self._finished.get(timeout=every))
            except queue.Empty:
                if on_idle is not None:
                    on_idle()
        return True

    def request_stop(self) -> None:
        self.stop.set()

    def shutdown(self) -> None:
        """Stop everything in reverse order; whatever is left running is a bug."""
        self.stop.set()
        self.ticker.stop()
        for factory_id, ref in reversed(self.coordinators.items()):
            try:
                if factory_id not in self._done:
                    ref.proxy().suspend().get(timeout=10)
                ref.stop(timeout=10)
            except (pykka.ActorDeadError, pykka.Timeout):
                log.warning("runtime.coordinator_stuck", factory=factory_id)
        for symbol, (ref, _) in self.ships.items():
            try:
                ref.stop(timeout=10)
            except (pykka.ActorDeadError, pykka.Timeout):
                log.warning("runtime.ship_stuck", ship=symbol)
        try:
            self.watcher.stop(timeout=10)
        except (pykka.ActorDeadError, pykka.Timeout):
            log.warning("runtime.watcher_stuck")
        self.storage.assignments.release_owner(self.owner)
        leftovers = pykka.ActorRegistry.get_all()
        if leftovers:
            log.error("runtime.actors_left_running", actors=[str(r) for r in leftovers])
        alive = [t.name for t in threading.enumerate()
                 if t.name.startswith(("ShipActor", "CoordinatorActor", "MarketWatcher"))
                 and t.is_alive()]
        if alive:
            log.error("runtime.threads_left_running", threads=alive)
