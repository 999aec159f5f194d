"""What the commands do, between the command line and the runtime.

`Service` creates factories (checking the good, the fleet and the destination), takes
over interrupted ones, stops them, runs them in the foreground or for good (`serve`),
sells leftover cargo and buys ships. Every credit it moves goes through the ledger like
any other. The command line only parses options and prints.
"""

from __future__ import annotations

import gc
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from actors.fleet import ShipInfo
from actors.messages import Job, JobDone, JobKind
from actors.recovery import settle_ledger
from actors.runtime import Outcome, Runtime, new_owner, owner_alive
from actors.settings import Settings
from actors.ship import ShipWorker
from api.client import Client
from api.errors import ApiError, OutcomeUnknown
from api.models import Agent
from domain.errors import DomainError, UnknownGoodError
from domain.factory import DeliverKind, Destination, DestinationError, Factory
from domain.markets import system_of
from domain.navigation import distance
from domain.supply_chain import SupplyChain
from storage.db import CONNECTION_LOST
from storage.files import known_goods
from storage.repositories import LedgerRecord, Storage

log = structlog.get_logger("service")


class ServiceError(DomainError):
    """A request that cannot be carried out as asked; the message says why."""


@dataclass(frozen=True)
class Order:
    """What the player asked for."""

    target: str
    system: str | None = None
    ships: tuple[str, ...] | None = None
    units: int | None = None
    lot: int | None = None
    destination: Destination = field(default_factory=Destination)


@dataclass(frozen=True)
class Sale:
    ship: str
    good: str
    units: int
    waypoint: str


class Service:
    def __init__(self, client: Client, storage: Storage, chain: SupplyChain,
                 settings: Settings | None = None,
                 clock: Callable[[], datetime] | None = None):
        self.client = client
        self.storage = storage
        self.chain = chain
        self.settings = settings or Settings()
        self.clock = clock or (lambda: datetime.now(UTC))
        self._agent: Agent | None = None

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            self._agent = self.client.agent()
        return self._agent

    # --- the ledger ------------------------------------------------------------------------

    def settle(self) -> None:
        """Read the balance, and settle what processes that are gone left open (a live
        process settles its own). The agent's first reading serves as the balance if the
        ledger (every agent's, as the symbol is not known yet) was quiet before it and
        still is: no second read."""
        ledger = self.storage.ledger
        mark = ledger.quiet_mark() if self._agent is None else None
        agent = self.agent
        now = self.clock()
        settle_ledger(ledger, self.client, agent.symbol, now, may=self._orphaned_entry)
        if mark is not None and ledger.record_balance_since(agent.symbol, agent.credits,
                                                            mark, now):
            return
        if not ledger.record_balance_when_quiet(
                agent.symbol, lambda: self.client.agent().credits, now):
            log.info("ledger.balance_kept", agent=agent.symbol,
                     reason="a trade was in flight while the credits were read")

    def _orphaned_entry(self, entry: LedgerRecord) -> bool:
        if entry.owner and owner_alive(entry.owner) is not False:
            return self.clock() - entry.intended_at > timedelta(seconds=self.settings.lease)
        return True

    # --- factories -------------------------------------------------------------------------

    def runtime(self, ships: set[str] | None = None,
                watchdog: Callable[[], None] | None = None, discover: bool = True) -> Runtime:
        """A runtime for this agent, after settling the ledger; `discover` reads the fleet
        (resume does it after taking factories over)."""
        self.settle()
        runtime = Runtime(client=self.client, storage=self.storage, chain=self.chain,
                          agent=self.agent, settings=self.settings, ships=ships,
                          clock=self.clock, watchdog=watchdog)
        if discover:
            runtime.discover()
        return runtime

    def create(self, runtime: Runtime, order: Order, owner: str | None) -> Factory:
        """Check that the order can be worked on with the fleet at hand, and record it
        (held by `owner`, or by nobody: then `run` picks it up)."""
        target = order.target.upper()
        if target not in known_goods() | self.chain.goods:
            raise UnknownGoodError(f"unknown good {target}: it is not a trade good of the game")
        if order.ships:
            missing = sorted(set(order.ships) - {s.symbol for s in runtime.fleet.all()})
            if missing:
                raise ServiceError(f"no such ship: {', '.join(missing)}")
        haulers = runtime.idle_haulers()
        usable = [s for s in runtime.idle_haulers(looking=True) if s.cargo_free > 0]
        if not usable:  # ships only reading markets for another factory will be free
            raise ServiceError("no idle ships: every hauler of the agent is working for "
                               "another factory or has a full hold (see `goods-factory list`"
                               ", and `goods-factory unload` to empty the holds)")
        system = order.system or system_of(self.agent.headquarters)
        runtime.know_system(system)
        if not runtime.book.snapshots(system):
            raise ServiceError(f"no markets known in {system}")
        destination, wanted = self._destination(runtime, system, target, order)
        held = 0
        if destination.keeps and wanted is not None:
            held = min(wanted, sum(self._held(haulers, target)))
            room = sum(s.cargo_free for s in haulers)
            if wanted - held > room:
                raise ServiceError(
                    f"--units {wanted} cannot be kept in the hold: the usable haulers have "
                    f"room for {room} more{f' (they hold {held} already)' if held else ''}; "
                    "deliver it elsewhere (--deliver sell:WAYPOINT, construction or "
                    "contract:ID), where it goes lot by lot")
        lot = order.lot or min(s.cargo_capacity for s in usable)
        factory = Factory(id=f"f-{uuid.uuid4().hex[:8]}", target=target, system=system,
                          plan=None, lot=lot, units_wanted=wanted,
                          min_supply=self.settings.min_supply, destination=destination,
                          strict_supply=self.settings.strict_supply, held_at_start=held,
                          created_at=self.clock())
        self.storage.factories.create(factory, self.agent.symbol, owner, factory.created_at)
        log.info("factory.created", factory=factory.id, target=target, system=system,
                 haulers=len(usable), lot=lot, units=wanted, destination=str(destination),
                 already_held=held)
        return factory

    def _held(self, haulers: list[ShipInfo], target: str) -> list[int]:
        """What the idle haulers carry of `target`, as the server says."""
        return [self.client.cargo(s.symbol).held(target) for s in haulers]

    def _destination(self, runtime: Runtime, system: str, target: str,
                     order: Order) -> tuple[Destination, int | None]:
        """The destination made concrete (a site, a contract's waypoint) and the units it
        can take, capped by `--units`."""
        d, units = order.destination, order.units
        if d.kind is DeliverKind.HOLD:
            return d, units
        if d.kind is DeliverKind.SELL:
            market = runtime.book.latest(d.waypoint)
            if market is None or not (target in market.imports or target in market.exchange):
                raise DestinationError(f"{d.waypoint} does not buy {target}")
            return d, units
        if d.kind is DeliverKind.CONSTRUCTION:
            return self._site(system, target, d, units)
        return self._contract(target, d, units)

    def _site(self, system: str, target: str, d: Destination, units: int | None
              ) -> tuple[Destination, int | None]:
        sites = [d.waypoint] if d.waypoint else \
            self.storage.waypoints.under_construction(system)
        for site in sites:
            try:
                need = self.client.construction(site).remaining(target)
            except ApiError as exc:
                raise DestinationError(f"{site} is not a construction site ({exc})") from None
            if need > 0:
                return d.resolved(site), need if units is None else min(units, need)
        where = d.waypoint or f"any construction site of {system}"
        raise DestinationError(f"{where} requires no more {target}")

    def _contract(self, target: str, d: Destination, units: int | None
                  ) -> tuple[Destination, int | None]:
        try:
            contract = self.client.contract(d.contract)
        except ApiError as exc:
            raise DestinationError(f"contract {d.contract}: {exc}") from None
        term = contract.term(target)
        if term is None or contract.fulfilled:
            raise DestinationError(f"contract {d.contract} does not ask for {target}"
                                   if term is None else f"contract {d.contract} is fulfilled")
        if not contract.accepted:
            self._accept(contract.id, contract.on_accepted)
        need = term.remaining
        if need == 0:
            raise DestinationError(f"contract {d.contract} needs no more {target}")
        return d.resolved(term.destination), need if units is None else min(units, need)

    def _accept(self, contract: str, payment: int) -> None:
        ledger = self.storage.ledger
        entry = ledger.intend(agent=self.agent.symbol, ship="", waypoint="", good=contract,
                              kind="CONTRACT", units=0, now=self.clock(), price_hint=payment,
                              owner=new_owner())
        try:
            accepted, credits = self.client.accept_contract(contract)
        except OutcomeUnknown:
            settle_ledger(ledger, self.client, self.agent.symbol, self.clock())
            return
        except ApiError as exc:
            ledger.fail(entry, str(exc), self.clock())
            raise
        ledger.confirm(entry, units=0, price_per_unit=accepted.on_accepted,
                       total=accepted.on_accepted, credits_after=credits, server_time=None,
                       now=self.clock())
        log.info("contract.accepted", contract=contract, paid=accepted.on_accepted)

    def take_over(self, runtime: Runtime) -> list[str]:
        """Take every factory of the agent nobody runs (each with one compare-and-set;
        whoever loses a race touches nothing and says who won)."""
        now = self.clock()
        taken = []
        lease = timedelta(seconds=self.settings.lease)
        for orphan in self.storage.factories.orphans(now, lease, owner_alive,
                                                     agent=self.agent.symbol):
            if self.storage.factories.take_over(orphan, runtime.owner, now):
                taken.append(orphan.factory)
            else:
                held = self.storage.factories.lease(orphan.factory)
                log.info("factory.taken_elsewhere", factory=orphan.factory,
                         owner=held.owner if held else None)
        return taken

    def stop(self, factory_id: str) -> str:
        """Stop a factory for good; returns what happened, in one line."""
        summary = self.storage.factories.summary(factory_id)
        if summary is None:
            raise ServiceError(f"no factory {factory_id}")
        if summary.status.finished:
            raise ServiceError(f"factory {factory_id} is already {summary.status.value}")
        now = self.clock()
        lease = timedelta(seconds=self.settings.lease)
        orphan = next((o for o in self.storage.factories.orphans(now, lease, owner_alive)
                       if o.factory == factory_id), None)
        me = new_owner()
        if orphan is None or not self.storage.factories.take_over(orphan, me, now):
            self.storage.factories.request_stop(factory_id)
            return f"stop requested: the process running {factory_id} will stop it"
        factory = self.storage.factories.load(factory_id)
        self.storage.factories.save(factory, factory.stop(now), owner=me)
        self.storage.assignments.release_factory(factory_id)
        self.storage.factories.release(factory_id, me)
        return f"factory {factory_id} stopped"

    # --- running ---------------------------------------------------------------------------

    def run(self, runtime: Runtime, ids: list[str], on_idle: Callable[[], None] | None = None
            ) -> Outcome:
        """Run factories in the foreground until they end, a signal stops them, or the run
        cannot go on."""
        _freeze_startup_heap()
        with _signals_stop(runtime):
            try:
                for factory_id in ids:
                    runtime.start_factory(factory_id)
                return runtime.wait(on_idle=on_idle)
            finally:
                asked = runtime.stop.is_set()  # a signal asked for a prompt exit
                runtime.shutdown()
                if not asked:
                    self._settle_own(runtime.owner)

    def _settle_own(self, owner: str) -> None:
        """Once every ship has stopped, settle what this process left open (a trade whose
        answer was lost and could not be decided then), so that a run that ends leaves a
        settled ledger when the server can tell; the rest waits for the next start."""
        try:
            settle_ledger(self.storage.ledger, self.client.unstopped(), self.agent.symbol,
                          self.clock(), may=lambda entry: entry.owner == owner)
        except (ApiError, *CONNECTION_LOST) as exc:
            log.warning("ledger.unsettled", error=str(exc))

    def serve(self, runtime: Runtime, every: float = 5.0,
              on_start: Callable[[str], None] | None = None) -> Outcome:
        """The standing mode: run every interrupted or submitted factory of the agent, and
        any that comes later, until a signal (a clean exit) or a failure."""
        adopted: set[str] = set()

        def adopt() -> None:
            taken = self.take_over(runtime)
            if taken:
                runtime.discover()  # the fleet may have grown since
            for factory_id in taken:
                if factory_id not in adopted:
                    adopted.add(factory_id)
                    runtime.start_factory(factory_id)
                    if on_start:
                        on_start(factory_id)

        _freeze_startup_heap()
        with _signals_stop(runtime):
            try:
                adopt()
                last = time.monotonic()
                while not runtime.stop.is_set():
                    runtime.pump(1.0)
                    error = runtime.supervise()
                    if error:
                        return Outcome(False, error)
                    if time.monotonic() - last >= every:
                        last = time.monotonic()
                        adopt()
                return Outcome(False)
            finally:
                runtime.shutdown()

    # --- holds and ships -------------------------------------------------------------------

    def unload(self, runtime: Runtime, ships: list[str] | None, sell: bool,
               on_sale: Callable[[Sale], None] | None = None) -> list[tuple[str, str, int, str]]:
        """What our free ships carry, and where it would sell best; with `sell`, fly there
        and sell it (ledger first, as always). Returns (ship, good, units, market)."""
        wanted = set(ships) if ships else None
        held = {a.ship for a in self.storage.assignments.all() if owner_alive(a.owner)}
        plan = []
        for ship in runtime.fleet.all():
            if (wanted and ship.symbol not in wanted) or ship.symbol in held or ship.lost:
                continue
            system = system_of(ship.waypoint)
            runtime.know_system(system)
            cargo = self.client.cargo(ship.symbol)
            for good, units in sorted(cargo.inventory.items()):
                market = self._best_buyer(runtime, system, good, ship)
                plan.append((ship.symbol, good, units, market or ""))
        if not sell:
            return plan
        worker_of: dict[str, ShipWorker] = {}
        for ship, good, units, market in plan:
            if not market:
                log.warning("unload.no_buyer", ship=ship, good=good, units=units)
                continue
            if not self.storage.assignments.claim(ship, runtime.owner, self.clock()):
                continue
            try:
                worker = worker_of.setdefault(ship, runtime._worker(ship))
                result = worker.run(Job(JobKind.UNLOAD, market, "", good=good,
                                        destination=market))
            finally:
                self.storage.assignments.release(ship, runtime.owner)
            if isinstance(result, JobDone) and on_sale:
                on_sale(Sale(ship, good, result.delivered, market))
            elif not isinstance(result, JobDone):
                log.warning("unload.failed", ship=ship, good=good, result=str(result))
        return plan

    def _best_buyer(self, runtime: Runtime, system: str, good: str, ship: ShipInfo
                    ) -> str | None:
        """The market that pays most for `good` (quotes known), else the nearest that
        buys it at all."""
        places = runtime.book.places(system)
        buyers = [m for m in runtime.book.snapshots(system)
                  if good in m.imports or good in m.exchange]
        if not buyers:
            return None
        here = places.get(ship.waypoint)

        def key(m):
            quote = m.quote(good)
            far = distance(here, places[m.waypoint]) if here and m.waypoint in places else 0
            return (-(quote.sell_price if quote else 0), far, m.waypoint)

        return min(buyers, key=key).waypoint

    def shipyard_for(self, ship_type: str) -> str:
        """A shipyard of the HQ's system that sells `ship_type` and where one of our
        ships is (prices and sales need one present)."""
        system = system_of(self.agent.headquarters)
        present = {s.nav.waypoint for s in self.client.ships() if s.nav.status != "IN_TRANSIT"}
        for waypoint in sorted(present):
            if system_of(waypoint) != system:
                continue
            try:
                offers = self.client.shipyard(waypoint)
            except ApiError:
                continue  # not a shipyard
            if any(o.type == ship_type for o in offers):
                return waypoint
        raise ServiceError(f"no shipyard with one of our ships present sells {ship_type}: "
                           "fly a ship to one, or name it with --at")

    def buy_ship(self, ship_type: str, waypoint: str) -> tuple[str, int, int]:
        """Buy one ship, written to the ledger like every other spending: returns its
        symbol, its price and the credits left."""
        ledger = self.storage.ledger
        before = len(self.client.ships())
        price = next((o.price for o in self.client.shipyard(waypoint) if o.type == ship_type),
                     None)
        entry = ledger.intend(agent=self.agent.symbol, ship="", waypoint=waypoint,
                              good=ship_type, kind="SHIP", units=1, now=self.clock(),
                              held_before=before, price_hint=price, owner=new_owner())
        try:
            ship, paid, credits = self.client.purchase_ship(ship_type, waypoint)
        except OutcomeUnknown:
            settled = settle_ledger(ledger, self.client, self.agent.symbol, self.clock(),
                                    may=lambda e: e.id == entry)
            if settled and settled[0].outcome == "CONFIRMED":
                newest = self.client.ships()[-1]
                return newest.symbol, price or 0, self.client.agent().credits
            raise ServiceError(f"buying a {ship_type} at {waypoint} may or may not have "
                               "happened; the ledger keeps it open") from None
        except ApiError as exc:
            ledger.fail(entry, str(exc), self.clock())
            raise
        ledger.confirm(entry, units=1, price_per_unit=paid, total=paid, credits_after=credits,
                       server_time=None, now=self.clock())
        return ship.symbol, paid, credits


class _signals_stop:
    """SIGINT and SIGTERM stop the run cleanly (in the main thread only)."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.previous: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._stop)
        return self

    def _stop(self, signum, _frame) -> None:
        log.warning("shutdown.requested", signal=signal.Signals(signum).name)
        self.runtime.request_stop()

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


_heap_frozen = threading.Event()


def _freeze_startup_heap() -> None:
    """Once per process, when the first run starts: move what start-up built (modules,
    classes, the client, the market book) out of the garbage collector's sight. A full
    collection walks every object the collector tracks; these live as long as the
    process, and walking them each time cost a run of one factory a fifth of its CPU.
    What was already garbage then stays (start-up makes little)."""
    if not _heap_frozen.is_set():
        _heap_frozen.set()
        gc.freeze()
