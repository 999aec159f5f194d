"""A ship at work: one trip at a time, from route to trade, and a report at the end.

`ShipWorker` holds the logic and can be driven directly (tests call `run`); `ShipActor`
gives it a thread and a mailbox. A trip starts from the truth, never from what a
coordinator believed: the ship as the server reports it, and the ledger once its open
entries have been settled against the server. What the ship holds for its task is then
progress (it is delivered), not an obstacle; cargo the factory does not account for is
reported and left alone. A worker never raises: every outcome, game errors included,
becomes a result for the coordinator.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

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
from actors.watcher import Directory, MarketBook
from api.client import Client
from api.errors import (
    ApiError,
    AuthError,
    Cancelled,
    InsufficientCreditsError,
    InsufficientFuelError,
    NotFoundError,
    OutcomeUnknown,
    ShipInTransitError,
    TradeVolumeError,
)
from api.models import Cargo, Fuel, MarketReading, Nav, Ship, Transaction
from api.ratelimit import Priority
from domain.enums import FlightMode
from domain.errors import NoRouteError
from domain.factory import DeliverKind
from domain.markets import Quote, system_of
from domain.navigation import distance, plan_route, refuel_market_units, travel_seconds
from storage.repositories import Storage

REFUEL_BELOW = 0.5  # top up when docked at a fuel market below this share of the tank
MAX_FRUITLESS = 3  # trade attempts in a row that move nothing before giving up


class _Stop(Exception):
    """Ends a job early with a given result."""

    def __init__(self, result: JobResult):
        super().__init__()
        self.result = result


class ShipWorker:
    def __init__(self, symbol: str, *, agent: str, client: Client, storage: Storage,
                 book: MarketBook, fleet: Fleet, wallet: Wallet,
                 clock: Callable[[], datetime], stop: threading.Event,
                 report: Callable[[str, object], None] = lambda factory, event: None,
                 owner: str | None = None, fresh_for: float = 0.0,
                 arrival_slack: float = 0.05):
        self.symbol = symbol
        self.agent = agent
        self.owner = owner  # the process, written on every ledger entry it sends
        self.client = client
        self.storage = storage
        self.book = book
        self.fleet = fleet
        self.wallet = wallet
        self.clock = clock
        self.stop = stop
        self.cancel = threading.Event()  # the coordinator abandons the job (hard)
        self.finish = threading.Event()  # the coordinator wants no more buying (soft)
        self.report = report  # (factory, event): progress goes to the job's coordinator
        self.fresh_for = fresh_for  # seconds a reading serves a trade's first slice
        self.arrival_slack = arrival_slack  # seconds past an arrival before acting there
        self.log = structlog.get_logger("ship").bind(ship=symbol)
        self.job: Job | None = None
        self.nav: Nav | None = None
        self.fuel: Fuel | None = None
        self.cargo: Cargo | None = None
        self._told_of: set[tuple[str, str]] = set()  # (factory, good) cargo already reported
        # nav, fuel and cargo are as this worker's last job left them, done in full (or
        # as the process read them at start): a job starts from them instead of reading
        # the ship again, unless another process recorded a move since or (for a trip,
        # which counts on the hold) a trade: the ledger's newest line of the ship then
        # is not `last_line`
        self.known = False
        self.last_line: int | None = None

    # --- the job -------------------------------------------------------------------------

    def run(self, job: Job) -> JobResult:
        self.cancel.clear()
        self.finish.clear()
        self.job = job
        # Every line this thread logs during the job (the client's, the ledger's) says
        # whose it is.
        structlog.contextvars.bind_contextvars(ship=self.symbol, factory=job.factory or None,
                                               task=job.task)
        self.log = structlog.get_logger("ship")
        known, self.known = self.known, False
        try:
            pending = self.storage.ledger.pending(self.agent, self.symbol)
            if pending or not (known and self._as_left() and (
                    job.kind is JobKind.VISIT or self._hold_as_left())):
                self._refresh()
            if pending:
                settle_ledger(self.storage.ledger, self.client, self.agent, self.clock(),
                              ship=self.symbol, state=self._ship)
            if job.kind is JobKind.VISIT:
                started = self.clock()
                self._go(job.source)
                # read since it began (a faster ship sent there after this one): served
                if self.book.read_between(job.source, started) is None and \
                        not self._read(job.source).snapshot.has_quotes:
                    self._not_there_yet(job.source)
                result: JobResult = JobDone(self.symbol, job)
            elif job.kind is JobKind.UNLOAD:
                self._go(job.destination)
                self._dock()
                result = JobDone(self.symbol, job, delivered=self._sell(
                    job, self.cargo.held(job.good or "")))
            else:
                result = self._trip(job)
            self.log.info("job.done", kind=job.kind.value, good=job.good)
            self._known_now()
            return result
        except _Stop as stop:
            return stop.result
        except Cancelled:
            self.log.info("job.interrupted")
            return JobInterrupted(self.symbol, job)
        except AuthError as exc:  # the token is refused: nothing will heal that here
            self.log.error("job.failed", error=str(exc))
            return JobFailed(self.symbol, job, str(exc), fatal=True)
        except NotFoundError as exc:
            if self._is_lost():
                self.log.warning("ship.lost", error=str(exc))
                return ShipLost(self.symbol, job)
            return JobFailed(self.symbol, job, str(exc))
        except (ApiError, NoRouteError) as exc:
            self.log.warning("job.failed", error=str(exc))
            return JobFailed(self.symbol, job, str(exc))
        except Exception as exc:  # a bug must not leave the task running: report it
            self.log.exception("job.crashed")
            return JobFailed(self.symbol, job, f"unexpected {type(exc).__name__}: {exc}")
        finally:
            structlog.contextvars.unbind_contextvars("factory", "task")

    def _trip(self, job: Job) -> JobDone:
        good = job.good or ""
        progress = self.storage.ledger.task_progress(job.factory, job.task).get(job.task)
        bought = progress.bought_by if progress else {}
        delivered = progress.delivered_by if progress else {}
        mine = bought.get(self.symbol, 0) - delivered.get(self.symbol, 0) - job.written_off
        has = self.cargo.held(good)
        held = max(0, min(mine, has))
        missing = max(0, mine - has)
        if missing:
            self.log.warning("cargo.missing", good=good, ledger=mine, hold=has)
        self._tell_of_other_cargo(job)
        acquired = sum(bought.values()) - job.lost - missing
        to_buy = max(0, job.units - acquired)
        keeps = job.destination is None
        got, supply_fell = 0, False
        at_source = self.nav.waypoint == job.source
        deliverable = 0 if keeps else held  # what is kept is not in the way
        if to_buy and self.cargo.free > 0 and (deliverable == 0 or at_source) \
                and not self.finish.is_set():
            self._go(job.source)
            self._dock()
            want = min(to_buy, self.cargo.free)
            got, reason, supply_fell = self._buy(job, want, read_after=not (
                job.collect and want == to_buy))
            held += got
            if 0 < got < to_buy:
                self.log.info("trade.stopped_buying", good=good, bought=got, wanted=to_buy,
                              reason=reason)
            if got == 0 and (keeps or held == 0):  # nothing bought, nothing to deliver
                self.log.info("job.not_ready", reason=reason)
                raise _Stop(JobNotReady(self.symbol, job, reason, supply_fell))
        if keeps or held == 0:
            if keeps:
                self._refresh()  # the goods are the product: make sure the ship has them
            return JobDone(self.symbol, job, got, 0, supply_fell, missing)
        self._go(job.destination)
        self._dock()
        sent, need = self._deliver(job, held)
        return JobDone(self.symbol, job, got, sent, supply_fell, missing, need)

    def _tell_of_other_cargo(self, job: Job) -> None:
        """Say once what the hold carries that this factory's tasks do not account for."""
        ledger = self.storage.ledger.ship_holdings(self.symbol)
        for good, units in sorted(self.cargo.inventory.items()):
            ours = ledger.get((job.factory, good), 0)
            extra = units - ours
            if extra > 0 and (job.factory, good) not in self._told_of:
                self._told_of.add((job.factory, good))
                others = sum(n for (f, g), n in ledger.items() if g == good and f != job.factory)
                self.log.warning("cargo.not_ours", good=good, units=extra,
                                 other_factories=min(extra, others),
                                 unknown_to_ledger=max(0, extra - others),
                                 reason="kept in the hold; `goods-factory unload` sells it")

    # --- moving --------------------------------------------------------------------------

    def _refresh(self) -> None:
        ship = self.client.ship(self.symbol)
        self._ship: Ship = ship
        self.nav, self.fuel, self.cargo = ship.nav, ship.fuel, ship.cargo
        self.fleet.update(ship)

    def _set_cargo(self, cargo: Cargo) -> None:
        self.cargo = cargo
        self.fleet.loaded(self.symbol, cargo)

    def _set_fuel(self, fuel: Fuel) -> None:
        self.fuel = fuel
        self.fleet.fuelled(self.symbol, fuel.current)

    def _set_nav(self, nav: Nav) -> None:
        self.nav = nav
        self.fleet.moved(self.symbol, nav)

    def _go(self, destination: str) -> None:
        self._wait_arrival()
        if self.nav.waypoint == destination:
            return
        system = system_of(destination)
        places = self.book.places(system)
        if places:  # the process's map, its distances already worked out
            route = self.book.travel_times(system).map.route(
                self.nav.waypoint, destination, fuel=self.fuel.current,
                fuel_capacity=self.fuel.capacity, speed=self._speed())
        else:
            places = self.storage.waypoints.places(system)
            route = plan_route(places, self.nav.waypoint, destination, fuel=self.fuel.current,
                               fuel_capacity=self.fuel.capacity, speed=self._speed())
        for leg in route.legs:
            if leg.refuel_before or self._should_top_up(places):
                self._dock()
                self._refuel(needed=leg.refuel_before)
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
                self._sleep(exc.seconds_to_arrival + self.arrival_slack)
                self._refresh()
                continue
            except InsufficientFuelError:
                places = self.book.places(system_of(destination)) or \
                    self.storage.waypoints.places(system_of(destination))
                here = places.get(self.nav.waypoint)
                if not (here and here.sells_fuel):
                    raise
                self._dock()
                self._refuel(needed=True)
                self._orbit()
                continue
            self._set_nav(nav)
            self._set_fuel(fuel)
            self._time_flight(nav)
            self.log.info("ship.navigate", destination=destination,
                          arrival=nav.arrival.isoformat() if nav.arrival else None)
            return
        raise ApiError(f"{self.symbol} could not set off for {destination}")

    def _time_flight(self, nav: Nav) -> None:
        """Tell the fleet how long this leg takes against the formula (its pace)."""
        places = self.book.places(nav.system)
        a, b = places.get(nav.origin), places.get(nav.waypoint)
        if a is None or b is None or nav.departure is None or nav.arrival is None:
            return
        try:
            mode = FlightMode(nav.flight_mode)
        except ValueError:
            return
        predicted = travel_seconds(distance(a, b), self._speed(), mode)
        self.fleet.flew(predicted, (nav.arrival - nav.departure).total_seconds())

    def _wait_arrival(self) -> None:
        now = self.clock()
        if self.nav.in_transit(now):
            self._sleep((self.nav.arrival - now).total_seconds() + self.arrival_slack)
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
            self._set_nav(self._landed(self.client.orbit))

    def _dock(self) -> None:
        if self.nav.status != "DOCKED":
            self._set_nav(self._landed(self.client.dock))

    def start_from(self, ship: Ship) -> None:
        """The ship as the process read it moments ago: its first job need not read it
        again (unless another process recorded a move or a trade since)."""
        self._ship = ship
        self.nav, self.fuel, self.cargo = ship.nav, ship.fuel, ship.cargo
        self._known_now()

    def _known_now(self) -> None:
        self.known = True
        self.last_line = self.storage.ledger.newest_of_ship(self.agent, self.symbol)

    def _hold_as_left(self) -> bool:
        """Has nobody traded with the ship since our last job? Every process writes a
        line before each trade; a tool that does not is caught by the server refusing the
        trade (the job fails, and the next one reads the ship)."""
        return self.storage.ledger.newest_of_ship(self.agent, self.symbol) == self.last_line

    def _as_left(self) -> bool:
        """Is the ship where our last job left it, by the record every process's fleet
        writes of its moves? Another process may have flown it between our jobs."""
        return self.nav is not None and \
            self.storage.ships.position(self.symbol) == (self.nav.waypoint, self.nav.status)

    def _not_there_yet(self, waypoint: str) -> None:
        """A reading at `waypoint` came without quotes: by the server's word no ship of
        ours is there. Either it has not landed yet (our clock ahead of the server's) or
        another process flew it since our last job: ask the server, then wait for the
        landing or fly there, and read again."""
        self._refresh()
        if self.nav.status == "IN_TRANSIT" and self.nav.waypoint == waypoint:
            self._set_nav(self._landed(self.client.orbit))
        else:
            self._go(waypoint)
        self._read(waypoint)

    def _landed(self, action: Callable[[str], Nav]) -> Nav:
        """`action` on this ship; if the server says it is still flying (our clock ahead
        of its by more than the slack), once more when it says the ship has landed."""
        try:
            return action(self.symbol)
        except ShipInTransitError as exc:
            # the server's count, not its arrival time against our clock: ours runs ahead
            self.log.info("ship.still_in_transit", seconds=exc.seconds_to_arrival)
            self._sleep(exc.seconds_to_arrival + self.arrival_slack)
            return action(self.symbol)

    def _speed(self) -> int:
        info = self.fleet.get(self.symbol)
        return info.speed if info else 10

    def _should_top_up(self, places) -> bool:
        here = places.get(self.nav.waypoint)
        return bool(self.fuel.capacity and here and here.sells_fuel
                    and self.fuel.current < REFUEL_BELOW * self.fuel.capacity)

    def _refuel(self, needed: bool = True) -> None:
        """Fill the tank, within the credit reserve: a top-up that would dip into it is
        skipped; a refuel the route needs is refused like a purchase."""
        missing = self.fuel.capacity - self.fuel.current
        if missing <= 0:
            return
        price = self._fuel_price()
        reserve = self.job.reserve if self.job else 0
        if price is not None and self.wallet.affordable(price, reserve) < \
                refuel_market_units(missing):
            if not needed:
                return
            message = (f"not enough credits: {self.wallet.credits} left, reserve {reserve}, "
                       f"fuel costs {price} a unit")
            raise _Stop(JobFailed(self.symbol, self.job, message, fatal=True))
        ledger = self.storage.ledger
        entry = ledger.intend(agent=self.agent, ship=self.symbol, waypoint=self.nav.waypoint,
                              good="FUEL", kind="REFUEL", units=refuel_market_units(missing),
                              now=self.clock(), factory=self.job.factory if self.job else None,
                              held_before=self.fuel.current, price_hint=price,
                              owner=self.owner)
        try:
            with self.wallet.hold(refuel_market_units(missing) * (price or 0)) as held:
                result = self.client.refuel(self.symbol)
                held.settle(result.credits, result.transaction.timestamp)
        except OutcomeUnknown:
            self._refresh()
            settle_entry(ledger, self.client, ledger.get(entry), self.clock(), self._ship)
            return
        except InsufficientCreditsError as exc:  # the server knows better than the wallet
            ledger.fail(entry, str(exc), self.clock())
            if not needed:
                return
            raise _Stop(JobFailed(self.symbol, self.job, f"not enough credits: {exc}",
                                  fatal=True)) from None
        except ApiError as exc:
            ledger.fail(entry, str(exc), self.clock())
            raise
        tx = self._confirm(entry, result.transaction, result.credits)
        if result.fuel is not None:
            self._set_fuel(result.fuel)
        if self.job:
            self.report(self.job.factory, Refuelled(self.symbol, self.job.factory, tx.total))
        self.log.info("ship.refuel", waypoint=self.nav.waypoint, units=tx.units, total=tx.total)

    def _fuel_price(self) -> int | None:
        latest = self.book.latest(self.nav.waypoint)
        quote = latest.quote("FUEL") if latest else None
        return quote.purchase_price if quote else None

    # --- trading -------------------------------------------------------------------------

    def _read(self, waypoint: str) -> MarketReading:
        return self.book.read(waypoint, priority=Priority.ACTION)

    def _quote(self, job: Job, waypoint: str, first: bool = False) -> Quote:
        """The good's quote there, read now; for a trade's `first` slice a reading taken
        in the last `fresh_for` seconds (the watcher's, as the ship landed) serves, unless
        one of our ships traded there since: reading again would only repeat it."""
        now = self.clock()
        latest = self.book.read_between(waypoint, now - timedelta(seconds=self.fresh_for),
                                        now, untraded=True) \
            if first and self.fresh_for > 0 else None
        if latest is not None and (quote := latest.quote(job.good or "")) is not None:
            return quote
        quote = self._read(waypoint).snapshot.quote(job.good or "")
        if quote is None:
            raise ApiError(f"{waypoint} does not trade {job.good}")
        return quote

    def _buy(self, job: Job, want: int, read_after: bool = True) -> tuple[int, str, bool]:
        """Buy up to `want` units, in tradeVolume slices, if the market holds the threshold
        when the ship starts (unless it is a raw material), while the price stays under the
        ceiling and the credits above the reserve. The threshold is the signal that the
        lot is there: once the first slice is bought the lot is finished even if our own
        buying pulls the supply under it, since stopping halfway would cost a whole
        production round for the rest (the ceiling still bounds what that costs). The
        market is read again after the last slice (unless not `read_after`), so that what
        our buying left is known: a seller we drained is redecided before the next lot goes
        there, and a lot bought over several trips waits for the exporter to answer again.
        A collect that completes its lot needs neither. Returns units bought, why it
        stopped, and whether the supply is below the threshold now."""
        good = job.good or ""
        quote = self._quote(job, job.source, first=True)
        bought, fruitless, reason = 0, 0, "bought what the hold and the order allowed"
        while bought < want and fruitless < MAX_FRUITLESS:
            if self.finish.is_set():
                reason = "the factory has what it needs"
                break
            if not bought and not job.below_threshold and quote.supply < job.min_supply:
                reason = (f"supply of {good} at {job.source} is {quote.supply.name}, below "
                          f"{job.min_supply.name}")
                return bought, reason, True
            if job.ceiling is not None and quote.purchase_price > job.ceiling:
                reason = (f"price of {good} at {job.source} is {quote.purchase_price}, above the "
                          f"ceiling of {job.ceiling}")
                break
            units = min(want - bought, quote.trade_volume, self.cargo.free)
            if units <= 0:
                break
            affordable = self.wallet.affordable(quote.purchase_price, job.reserve)
            if affordable <= 0:
                message = (f"not enough credits: {self.wallet.credits} left, reserve "
                           f"{job.reserve}, {good} costs {quote.purchase_price} a unit")
                if bought == 0:
                    raise _Stop(JobFailed(self.symbol, job, message, fatal=True))
                reason = message
                break
            done = self._trade("PURCHASE", job, job.source, min(units, affordable),
                               quote.purchase_price)
            bought += done
            fruitless = 0 if done else fruitless + 1
            if bought < want:
                quote = self._quote(job, job.source)
            elif done and read_after:  # the book learns what our buying left
                quote = self._read(job.source).snapshot.quote(good) or quote
        return bought, reason, not job.below_threshold and quote.supply < job.min_supply

    def _deliver(self, job: Job, held: int) -> tuple[int, int | None]:
        """Hand over what is held for the task at the destination; returns the units that
        left the hold and, for a site or a contract, what it still requires."""
        if job.deliver is DeliverKind.CONSTRUCTION:
            return self._supply(job, held)
        if job.deliver is DeliverKind.CONTRACT:
            return self._deliver_contract(job, held)
        return self._sell(job, held), None

    def _sell(self, job: Job, held: int) -> int:
        good = job.good or ""
        remaining = min(held, self.cargo.held(good))
        fruitless = sold = 0
        quote = None
        while remaining > 0 and fruitless < MAX_FRUITLESS:
            if quote is None or fruitless:  # the next slice needs only the trade volume
                quote = self._quote(job, job.destination, first=quote is None)
            done = self._trade("SELL", job, job.destination, min(remaining, quote.trade_volume),
                               quote.sell_price)
            remaining -= done
            sold += done
            fruitless = 0 if done else fruitless + 1
        if remaining > 0:
            raise ApiError(f"could not deliver {remaining} {good} to {job.destination}")
        return sold

    def _supply(self, job: Job, held: int) -> tuple[int, int]:
        good = job.good or ""
        need = self.client.construction(job.destination).remaining(good)
        units = min(held, need)
        if units <= 0:
            return 0, 0
        entry = self._intend("SUPPLY", job, job.destination, units)
        try:
            site, cargo = self.client.supply_construction(self.symbol, job.destination, good,
                                                          units)
        except OutcomeUnknown:
            return self._settled_delivery(entry, job, units), self.client.construction(
                job.destination).remaining(good)
        except ApiError as exc:
            self.storage.ledger.fail(entry, str(exc), self.clock())
            raise
        self._delivered(entry, job, units, cargo)
        return units, site.remaining(good)

    def _deliver_contract(self, job: Job, held: int) -> tuple[int, int]:
        good = job.good or ""
        contract = self.client.contract(job.contract)
        term = contract.term(good)
        if term is None:
            raise ApiError(f"contract {job.contract} does not ask for {good}")
        units = min(held, term.remaining)
        if units > 0:
            entry = self._intend("DELIVER", job, job.destination, units)
            try:
                contract, cargo = self.client.deliver_contract(job.contract, self.symbol, good,
                                                               units)
            except OutcomeUnknown:
                self._settled_delivery(entry, job, units)
                contract = self.client.contract(job.contract)
            except ApiError as exc:
                self.storage.ledger.fail(entry, str(exc), self.clock())
                raise
            else:
                self._delivered(entry, job, units, cargo)
        if all(t.remaining == 0 for t in contract.terms) and not contract.fulfilled:
            self._fulfil(job, contract.on_fulfilled)
        return max(0, units), contract.term(good).remaining

    def _fulfil(self, job: Job, payment: int) -> None:
        ledger = self.storage.ledger
        entry = ledger.intend(agent=self.agent, ship=self.symbol, waypoint=job.destination,
                              good=job.contract, kind="CONTRACT", units=1, now=self.clock(),
                              factory=job.factory, price_hint=payment, owner=self.owner)
        try:
            contract, credits = self.client.fulfill_contract(job.contract)
        except OutcomeUnknown:
            settle_entry(ledger, self.client, ledger.get(entry), self.clock())
            return
        except ApiError as exc:
            ledger.fail(entry, str(exc), self.clock())
            raise
        ledger.confirm(entry, units=1, price_per_unit=contract.on_fulfilled,
                       total=contract.on_fulfilled, credits_after=credits, server_time=None,
                       now=self.clock())
        self.wallet.apply(credits)
        self.log.info("contract.fulfilled", contract=job.contract, paid=contract.on_fulfilled)

    def _intend(self, kind: str, job: Job, waypoint: str, units: int,
                price: int | None = None) -> int:
        return self.storage.ledger.intend(
            agent=self.agent, ship=self.symbol, waypoint=waypoint, good=job.good or "",
            kind=kind, units=units, now=self.clock(), factory=job.factory or None, task=job.task,
            held_before=self.cargo.held(job.good or ""), price_hint=price, owner=self.owner)

    def _delivered(self, entry: int, job: Job, units: int, cargo: Cargo) -> None:
        self.storage.ledger.confirm(entry, units=units, price_per_unit=0, total=0,
                                    credits_after=None, server_time=None, now=self.clock())
        self._set_cargo(cargo)
        kind = "SUPPLY" if job.deliver is DeliverKind.CONSTRUCTION else "DELIVER"
        self.report(job.factory, Traded(self.symbol, job.factory, job.task or "", kind, units, 0))
        self.log.info(f"trade.{kind.lower()}", good=job.good, units=units,
                      waypoint=job.destination)

    def _settled_delivery(self, entry: int, job: Job, units: int) -> int:
        """A supply or delivery whose answer was lost: the hold says whether it happened."""
        self._refresh()
        settled = settle_entry(self.storage.ledger, self.client, self.storage.ledger.get(entry),
                               self.clock(), self._ship)
        if settled.outcome == "CONFIRMED":
            kind = "SUPPLY" if job.deliver is DeliverKind.CONSTRUCTION else "DELIVER"
            self.report(job.factory, Traded(self.symbol, job.factory, job.task or "", kind,
                                            units, 0))
            return units
        if settled.outcome == "UNKNOWN":
            raise ApiError(f"cannot tell whether the delivery of {units} {job.good} happened; "
                           "the ledger keeps it open")
        return 0

    def _trade(self, kind: str, job: Job, waypoint: str, units: int, price: int) -> int:
        """One purchase or sale, written to the ledger before and after. Returns the units
        that changed hands (0 when the server refused a size or it did not happen)."""
        ledger = self.storage.ledger
        good = job.good or ""
        entry = self._intend(kind, job, waypoint, units, price)
        call = self.client.purchase if kind == "PURCHASE" else self.client.sell
        try:
            with self.wallet.hold(units * price if kind == "PURCHASE" else 0) as held:
                try:
                    result = call(self.symbol, good, units)
                finally:  # whatever came of it, a reading from before may be out of date
                    self.book.traded(waypoint, self.clock())
                held.settle(result.credits, result.transaction.timestamp)
        except OutcomeUnknown:
            self._refresh()
            outcome = settle_entry(ledger, self.client, ledger.get(entry), self.clock(),
                                   self._ship)
            if outcome.outcome == "UNKNOWN":
                raise ApiError(f"cannot tell whether {kind.lower()} of {units} {good} "
                               "happened; the ledger keeps it open") from None
            if outcome.outcome == "FAILED":
                return 0
            settled = ledger.get(entry)
            self.report(job.factory, Traded(self.symbol, job.factory, job.task or "", kind,
                                            settled.units, settled.total or 0))
            return settled.units
        except TradeVolumeError as exc:
            ledger.fail(entry, str(exc), self.clock())
            return 0
        except InsufficientCreditsError as exc:
            ledger.fail(entry, str(exc), self.clock())
            raise _Stop(JobFailed(self.symbol, job, f"not enough credits: {exc}",
                                  fatal=True)) from None
        except ApiError as exc:
            ledger.fail(entry, str(exc), self.clock())
            raise
        tx = self._confirm(entry, result.transaction, result.credits)
        self._set_cargo(result.cargo)
        self.report(job.factory, Traded(self.symbol, job.factory, job.task or "", kind,
                                        tx.units, tx.total))
        self.log.info("trade." + kind.lower(), good=good, units=tx.units,
                      price=tx.price_per_unit, total=tx.total, waypoint=waypoint)
        return tx.units

    def _confirm(self, entry: int, tx: Transaction, credits: int) -> Transaction:
        """The server answered: write the bill down and believe its credit balance."""
        self.storage.ledger.confirm(entry, units=tx.units, price_per_unit=tx.price_per_unit,
                                    total=tx.total, credits_after=credits,
                                    server_time=tx.timestamp, now=self.clock())
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
    """A thread and a mailbox for one ship; the logic lives in ShipWorker. A result goes
    to the coordinator of the job's factory; a bug outside the worker kills the actor,
    and the pool tells that coordinator (`ShipCrashed`)."""

    use_daemon_thread = True

    def __init__(self, worker: ShipWorker, directory: Directory,
                 on_crash: Callable[[str, Job | None, str], None]):
        super().__init__()
        self.worker = worker
        self.directory = directory
        self.on_crash = on_crash
        self.current: Job | None = None

    def on_start(self) -> None:
        structlog.contextvars.bind_contextvars(ship=self.worker.symbol)

    def on_receive(self, message: object) -> None:
        if isinstance(message, RunJob):
            self.current = message.job
            result = self.worker.run(message.job)
            self.worker.fleet.free(self.worker.symbol)
            self.current = None
            self.directory.tell(message.job.factory, result)

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        self.worker.fleet.free(self.worker.symbol)
        self.on_crash(self.worker.symbol, self.current,
                      f"{getattr(exception_type, '__name__', 'error')}: {exception_value}")

