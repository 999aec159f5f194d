"""A ship at work: one job at a time, from route to trade, and a report at the end.

`ShipWorker` holds the logic and can be driven directly (tests call `run`); `ShipActor`
gives it a thread and a mailbox. A worker never raises: every outcome, game errors
included, becomes a result message for the coordinator.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

import pykka
import structlog

from actors.fleet import Fleet, Wallet
from actors.messages import (
    Job,
    JobDone,
    JobFailed,
    JobInterrupted,
    JobKind,
    JobNotReady,
    JobResult,
    Refuelled,
    RunJob,
    ShipLost,
    Traded,
)
from actors.recovery import settle_entry, settle_ledger
from api.client import Client
from api.errors import (
    ApiError,
    Cancelled,
    InsufficientCreditsError,
    InsufficientFuelError,
    NotFoundError,
    OutcomeUnknown,
    ShipInTransitError,
    TradeVolumeError,
)
from api.models import Cargo, Fuel, MarketReading, Nav, TradeResult, Transaction
from api.ratelimit import Priority
from domain.errors import NoRouteError
from domain.markets import MarketSnapshot, system_of
from domain.navigation import plan_route, refuel_market_units
from storage.repositories import Storage

REFUEL_BELOW = 0.5  # top up when docked at a fuel market below this share of the tank
MAX_FRUITLESS = 3  # trade attempts in a row that move nothing before giving up
ARRIVAL_SLACK = 0.05  # seconds past the arrival time before acting


class _Stop(Exception):
    """Ends a job early with a given result."""

    def __init__(self, result_factory: Callable[[], JobResult]):
        super().__init__()
        self.result = result_factory


class ShipWorker:
    def __init__(self, symbol: str, *, agent: str, client: Client, storage: Storage,
                 fleet: Fleet, wallet: Wallet, clock: Callable[[], datetime],
                 stop: threading.Event, report: Callable[[object], None] = lambda e: None,
                 observe: Callable[[MarketSnapshot], None] = lambda s: None):
        self.symbol = symbol
        self.agent = agent
        self.client = client
        self.storage = storage
        self.fleet = fleet
        self.wallet = wallet
        self.clock = clock
        self.stop = stop
        self.cancel = threading.Event()  # set by the coordinator to abandon the job
        self.report = report
        self.observe = observe
        self.log = structlog.get_logger("ship").bind(ship=symbol)
        self.factory: str | None = None  # whose job it is: fuel is charged to it
        self.nav: Nav | None = None
        self.fuel: Fuel | None = None
        self.cargo: Cargo | None = None

    # --- the job -------------------------------------------------------------------------

    def run(self, job: Job) -> JobResult:
        self.cancel.clear()
        self.factory = job.factory
        log = self.log.bind(factory=job.factory, task=job.task)
        try:
            self._refresh()
            if self.storage.ledger.pending(self.agent, self.symbol):
                settle_ledger(self.storage.ledger, self.client, self.agent, self.clock(),
                              ship=self.symbol)
            if job.kind is JobKind.VISIT:
                self._go(job.source)
                self._read(job.source)
            else:
                self._trade_job(job)
            log.info("job.done", kind=job.kind.value, good=job.good)
            return JobDone(self.symbol, job)
        except _Stop as stop:
            return stop.result()
        except Cancelled:
            log.info("job.interrupted")
            return JobInterrupted(self.symbol, job)
        except NotFoundError as exc:
            if self._is_lost():
                log.warning("ship.lost", error=str(exc))
                return ShipLost(self.symbol, job)
            return JobFailed(self.symbol, job, str(exc))
        except (ApiError, NoRouteError) as exc:
            log.warning("job.failed", error=str(exc))
            return JobFailed(self.symbol, job, str(exc))
        except Exception as exc:  # a bug must not kill the ship's thread
            log.exception("job.crashed")
            return JobFailed(self.symbol, job, f"unexpected {type(exc).__name__}: {exc}")

    def _trade_job(self, job: Job) -> None:
        good = job.good or ""
        held = min(job.held, self.cargo.held(good))
        if job.destination is not None and job.delivered > 0 and held == 0:
            return  # resumed after the last delivery: nothing left to do
        at_source = self.nav.waypoint == job.source
        if held < job.units and (held == 0 or at_source) and self.cargo.free > 0:
            self._go(job.source)
            self._dock()
            bought, reason = self._buy(job, job.units - held)
            held += bought
            if 0 < held < job.units:
                self.log.info("trade.stopped_buying", good=good, held=held, wanted=job.units,
                              reason=reason)
            if held == 0:
                self.log.info("job.not_ready", task=job.task, reason=reason)
                raise _Stop(lambda: JobNotReady(self.symbol, job, reason))
        if held == 0:
            raise _Stop(lambda: JobNotReady(self.symbol, job, "no room in the hold"))
        if job.destination is None:
            self._refresh()  # the goods are the product: make sure the ship still has them
            return
        self._go(job.destination)
        self._dock()
        self._sell(job, held)
        self._read(job.destination)  # the exporter's supply right after the delivery

    # --- moving --------------------------------------------------------------------------

    def _refresh(self) -> None:
        ship = self.client.ship(self.symbol)
        self.nav, self.fuel, self.cargo = ship.nav, ship.fuel, ship.cargo
        self.fleet.update(ship)

    def _set_cargo(self, cargo: Cargo) -> None:
        self.cargo = cargo
        self.fleet.loaded(self.symbol, cargo)

    def _set_nav(self, nav: Nav) -> None:
        self.nav = nav
        self.fleet.moved(self.symbol, nav)

    def _go(self, destination: str) -> None:
        self._wait_arrival()
        if self.nav.waypoint == destination:
            return
        places = self.storage.waypoints.places(system_of(destination))
        route = plan_route(places, self.nav.waypoint, destination, fuel=self.fuel.current,
                           fuel_capacity=self.fuel.capacity, speed=self._speed())
        for leg in route.legs:
            if leg.refuel_before or self._should_top_up(places):
                self._dock()
                self._refuel()
            if self.nav.flight_mode != leg.mode.value:
                self._set_nav(self.client.set_flight_mode(self.symbol, leg.mode.value))
            self._orbit()
            self._navigate(leg.destination)
            self._wait_arrival()

    def _navigate(self, destination: str) -> None:
        for _ in range(3):
            try:
                nav, fuel = self.client.navigate(self.symbol, destination)
            except OutcomeUnknown:
                self._refresh()  # did it leave?
                if self.nav.waypoint == destination:
                    return
                continue
            except ShipInTransitError as exc:
                self._sleep(exc.seconds_to_arrival + ARRIVAL_SLACK)
                self._refresh()
                continue
            except InsufficientFuelError:
                places = self.storage.waypoints.places(system_of(destination))
                here = places.get(self.nav.waypoint)
                if not (here and here.sells_fuel):
                    raise
                self._dock()
                self._refuel()
                self._orbit()
                continue
            self._set_nav(nav)
            self.fuel = fuel
            self.log.info("ship.navigate", destination=destination, arrival=str(nav.arrival))
            return
        raise ApiError(f"{self.symbol} could not set off for {destination}")

    def _wait_arrival(self) -> None:
        now = self.clock()
        if self.nav.in_transit(now):
            self._sleep((self.nav.arrival - now).total_seconds() + ARRIVAL_SLACK)
        self._set_nav(self.nav.settled(self.clock()))

    def _sleep(self, seconds: float) -> None:
        """Wait without ever being deaf to a stop for more than half a second."""
        deadline = self.clock().timestamp() + max(0.0, seconds)
        while True:
            if self.stop.is_set() or self.cancel.is_set():
                raise Cancelled("stopped")
            left = deadline - self.clock().timestamp()
            if left <= 0:
                return
            self.stop.wait(min(left, 0.5))

    def _orbit(self) -> None:
        if self.nav.status != "IN_ORBIT":
            self._set_nav(self.client.orbit(self.symbol))

    def _dock(self) -> None:
        if self.nav.status != "DOCKED":
            self._set_nav(self.client.dock(self.symbol))

    def _speed(self) -> int:
        info = self.fleet.get(self.symbol)
        return info.speed if info else 10

    def _should_top_up(self, places) -> bool:
        here = places.get(self.nav.waypoint)
        return bool(self.fuel.capacity and here and here.sells_fuel
                    and self.fuel.current < REFUEL_BELOW * self.fuel.capacity)

    def _refuel(self) -> None:
        missing = self.fuel.capacity - self.fuel.current
        if missing <= 0:
            return
        ledger = self.storage.ledger
        entry = ledger.intend(agent=self.agent, ship=self.symbol, waypoint=self.nav.waypoint,
                              good="FUEL", kind="REFUEL", units=refuel_market_units(missing),
                              now=self.clock(), factory=self.factory)
        try:
            result = self.client.refuel(self.symbol)
        except OutcomeUnknown:
            settle_entry(ledger, self.client, ledger.get(entry), self.clock())
            self.fuel = self.client.ship(self.symbol).fuel
            return
        except ApiError as exc:
            ledger.fail(entry, str(exc), self.clock())
            raise
        tx = self._confirm(entry, result)
        self.fuel = result.fuel
        self.report(Refuelled(self.symbol, self.factory, tx.total))
        self.log.info("ship.refuel", waypoint=self.nav.waypoint, units=tx.units, total=tx.total)

    # --- trading -------------------------------------------------------------------------

    def _read(self, waypoint: str) -> MarketReading:
        reading = self.client.market(waypoint, priority=Priority.ACTION)
        self.storage.markets.record(reading.snapshot)
        self.observe(reading.snapshot)
        return reading

    def _buy(self, job: Job, want: int) -> tuple[int, str]:
        good = job.good or ""
        quote = self._read(job.source).snapshot.quote(good)
        if quote is None:
            raise ApiError(f"{job.source} does not sell {good}")
        if job.collect and quote.supply < job.min_supply:
            return 0, (f"supply of {good} at {job.source} is {quote.supply.name}, below "
                       f"{job.min_supply.name}")
        bought, fruitless, reason = 0, 0, "bought what the hold and the market allowed"
        while bought < want and fruitless < MAX_FRUITLESS:
            units = min(want - bought, quote.trade_volume, self.cargo.free)
            if units <= 0:
                break
            if job.ceiling is not None and quote.purchase_price > job.ceiling:
                reason = (f"price of {good} at {job.source} is {quote.purchase_price}, above the "
                          f"ceiling of {job.ceiling}")
                break
            affordable = self.wallet.affordable(quote.purchase_price, job.reserve)
            if affordable <= 0:
                message = (f"not enough credits: {self.wallet.credits} left, reserve "
                           f"{job.reserve}, {good} costs {quote.purchase_price} a unit")
                if bought == 0:
                    raise _Stop(lambda m=message: JobFailed(self.symbol, job, m, fatal=True))
                reason = message
                break
            done = self._trade("PURCHASE", job, job.source, min(units, affordable),
                               quote.purchase_price)
            bought += done
            fruitless = 0 if done else fruitless + 1
            if bought < want:
                quote = self._read(job.source).snapshot.quote(good)
                if quote is None:
                    break
        return bought, reason

    def _sell(self, job: Job, held: int) -> None:
        good = job.good or ""
        remaining = min(held, self.cargo.held(good))
        fruitless = 0
        while remaining > 0 and fruitless < MAX_FRUITLESS:
            quote = self._read(job.destination).snapshot.quote(good)
            if quote is None:
                raise ApiError(f"{job.destination} does not buy {good}")
            done = self._trade("SELL", job, job.destination, min(remaining, quote.trade_volume),
                               quote.sell_price)
            remaining -= done
            fruitless = 0 if done else fruitless + 1
        if remaining > 0:
            raise ApiError(f"could not deliver {remaining} {good} to {job.destination}")

    def _trade(self, kind: str, job: Job, waypoint: str, units: int, price: int) -> int:
        """One purchase or sale, written to the ledger before and after. Returns the units
        that changed hands (0 when the server refused a size or it did not happen)."""
        ledger = self.storage.ledger
        good = job.good or ""
        entry = ledger.intend(agent=self.agent, ship=self.symbol, waypoint=waypoint, good=good,
                              kind=kind, units=units, now=self.clock(), factory=job.factory,
                              task=job.task)
        call = self.client.purchase if kind == "PURCHASE" else self.client.sell
        try:
            with self.wallet.hold(units * price if kind == "PURCHASE" else 0):
                result = call(self.symbol, good, units)
        except OutcomeUnknown:
            outcome = settle_entry(ledger, self.client, ledger.get(entry), self.clock())
            self._set_cargo(self.client.cargo(self.symbol))
            if outcome.outcome == "UNKNOWN":
                raise ApiError(f"cannot tell whether {kind.lower()} of {units} {good} "
                               "happened; the ledger keeps it open") from None
            if outcome.outcome == "FAILED":
                return 0
            settled = ledger.get(entry)
            self.report(Traded(self.symbol, job.task or "", kind, settled.units,
                               settled.total or 0))
            return settled.units
        except TradeVolumeError as exc:
            ledger.fail(entry, str(exc), self.clock())
            return 0
        except InsufficientCreditsError as exc:
            ledger.fail(entry, str(exc), self.clock())
            message = f"not enough credits: {exc}"
            raise _Stop(lambda: JobFailed(self.symbol, job, message, fatal=True)) from None
        except ApiError as exc:
            ledger.fail(entry, str(exc), self.clock())
            raise
        tx = self._confirm(entry, result)
        self._set_cargo(result.cargo)
        self.report(Traded(self.symbol, job.task or "", kind, tx.units, tx.total))
        self.log.info("trade." + kind.lower(), good=good, units=tx.units,
                      price=tx.price_per_unit, total=tx.total, waypoint=waypoint)
        return tx.units

    def _confirm(self, entry: int, result: TradeResult) -> Transaction:
        """The server answered: write the bill down and believe its credit balance."""
        tx = result.transaction
        self.storage.ledger.confirm(entry, units=tx.units, price_per_unit=tx.price_per_unit,
                                    total=tx.total, credits_after=result.credits,
                                    server_time=tx.timestamp, now=self.clock())
        self.wallet.set(result.credits)
        return tx

    def _is_lost(self) -> bool:
        try:
            self.client.ship(self.symbol)
        except NotFoundError:
            self.fleet.mark_lost(self.symbol)
            return True
        except ApiError:
            return False
        return False


class ShipActor(pykka.ThreadingActor):
    """A thread and a mailbox for one ship; the logic lives in ShipWorker."""

    use_daemon_thread = True

    def __init__(self, worker: ShipWorker):
        super().__init__()
        self.worker = worker

    def on_start(self) -> None:
        structlog.contextvars.bind_contextvars(ship=self.worker.symbol)

    def on_receive(self, message):
        if isinstance(message, RunJob):
            self.worker.report = message.reply
            result = self.worker.run(message.job)
            self.worker.fleet.free(self.worker.symbol)
            message.reply(result)
