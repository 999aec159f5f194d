"""The ship's logic driven directly, without actor threads, against the local server."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from actors.fleet import Fleet, Wallet
from actors.messages import (
    Job,
    JobDone,
    JobFailed,
    JobInterrupted,
    JobKind,
    JobNotReady,
    ShipLost,
    Traded,
)
from actors.ship import ShipWorker
from actors.watcher import MarketBook
from api.client import Client
from api.ratelimit import RateLimiter
from domain.enums import SupplyLevel, TradeType
from domain.factory import DeliverKind
from sim.faults import FaultPlan
from storage.db import open_database
from storage.repositories import Storage


def utcnow():
    return datetime.now(UTC)


class Rig:
    """One registered agent, its frigate's worker, and the server behind them."""

    def __init__(self, server, tmp_path):
        self.server = server
        self.game = server.game
        anon = Client(server.url, token="", limiter=RateLimiter.unlimited())
        reg = anon.register("WORKER", "COSMIC", "account")
        self.client = anon.with_token(reg.token)
        self.storage = Storage(open_database(str(tmp_path / "w.db")))
        self.book = MarketBook(self.client, self.storage)
        self.book.know_system(self.game.universe.symbol)
        self.fleet = self.recording_fleet()
        self.wallet = Wallet(reg.agent.credits)
        self.reports: list = []
        self.stop = threading.Event()
        self.ship = reg.ships[0].symbol
        self.worker = self.new_worker()
        self.fleet.update(self.client.ship(self.ship))

    def recording_fleet(self) -> Fleet:
        """A fleet that records positions as the runtime does, in the shared database."""
        return Fleet(on_move=lambda ship, nav, role: self.storage.ships.record(
            ship, nav, role, utcnow()))

    def new_worker(self, clock=utcnow, fleet: Fleet | None = None) -> ShipWorker:
        """A worker for the rig's ship (`fleet`: another process's, else the rig's)."""
        return ShipWorker(self.ship, agent="WORKER", client=self.client, storage=self.storage,
                          book=self.book, fleet=fleet or self.fleet, wallet=self.wallet,
                          clock=clock, stop=self.stop,
                          report=lambda factory, event: self.reports.append(event),
                          owner="test:1:x")

    def sellers(self, good):
        return [w for w, m in self.game.universe.markets.items()
                if good in m.goods and m.goods[good].type is not TradeType.IMPORT]

    def buyer(self, good):
        return next(w for w, m in self.game.universe.markets.items()
                    if good in m.goods and m.goods[good].type is TradeType.IMPORT)

    def trade(self, good="IRON_ORE", units=40, **kw) -> Job:
        source = kw.pop("source", None) or max(
            self.sellers(good), key=lambda w: self.game.universe.markets[w].goods[good].stock)
        return Job(JobKind.TRADE, source, "f", task="t", good=good, units=units,
                   **{"destination": self.buyer(good), **kw})

    def books(self, kind, good=None):
        return sum(e.units for e in self.game.books
                   if e.kind == kind and e.ship == self.ship and (good is None or e.good == good))


@pytest.fixture
def rig(sim_factory, tmp_path):
    rig = Rig(sim_factory(seed=1, time_scale=500.0), tmp_path)
    yield rig
    rig.storage.close()


def test_a_trip_buys_flies_and_delivers(rig):
    job = rig.trade()
    assert rig.worker.run(job) == JobDone(rig.ship, job, bought=40, delivered=40)
    traded = [r for r in rig.reports if isinstance(r, Traded)]
    assert [(t.kind, t.units) for t in traded] == [("PURCHASE", 40), ("SELL", 40)]
    assert rig.client.cargo(rig.ship).held("IRON_ORE") == 0
    entries = rig.storage.ledger.entries(agent="WORKER")
    assert {e.state for e in entries} == {"CONFIRMED"}
    assert {e.owner for e in entries} == {"test:1:x"}
    assert rig.fleet.get(rig.ship).waypoint == job.destination
    assert rig.books("PURCHASE", "IRON_ORE") == rig.books("SELL", "IRON_ORE") == 40


def test_a_lot_bigger_than_the_hold_takes_several_trips(rig):
    job = rig.trade(units=100)
    first = rig.worker.run(job)
    assert (first.bought, first.delivered) == (40, 40)
    second = rig.worker.run(job)
    assert (second.bought, second.delivered) == (40, 40)
    third = rig.worker.run(job)
    assert (third.bought, third.delivered) == (20, 20), "only what the lot still needs"
    assert rig.books("PURCHASE", "IRON_ORE") == 100


def test_unknown_outcome_of_a_purchase_is_read_back_not_repeated(rig):
    rig.server.faults = FaultPlan.parse("500after=1,on=purchase,times=1")
    job = rig.trade(destination=None)
    assert isinstance(rig.worker.run(job), JobDone)
    assert rig.books("PURCHASE") == 40, "sent once"
    confirmed = [e for e in rig.storage.ledger.entries(ship=rig.ship) if e.kind == "PURCHASE"]
    assert [(e.state, e.units) for e in confirmed] == [("CONFIRMED", 40)]
    assert rig.client.cargo(rig.ship).held("IRON_ORE") == 40


def test_unknown_outcome_of_a_sale_and_a_navigation(rig):
    rig.server.faults = FaultPlan.parse("500after=1,on=sell,times=1")
    assert isinstance(rig.worker.run(rig.trade()), JobDone)
    assert rig.books("SELL") == 40
    rig.server.faults = FaultPlan.parse("500after=1,on=navigate,times=1")
    assert isinstance(rig.worker.run(Job(JobKind.TRADE, rig.trade().source, "f", task="t2",
                                         good="IRON_ORE", units=10,
                                         destination=rig.buyer("IRON_ORE"))), JobDone)
    assert rig.client.cargo(rig.ship).held("IRON_ORE") == 0


def test_restarted_after_a_purchase_it_delivers_what_it_holds_and_buys_no_more(rig):
    """The process died after the purchase was answered, before it was written down: the
    next job settles the entry from the market's books and delivers, nothing bought twice."""
    job = rig.trade()
    rig.worker.run(Job(JobKind.VISIT, job.source, "f"))
    rig.client.dock(rig.ship)
    held = rig.client.cargo(rig.ship).held("IRON_ORE")
    entry = rig.storage.ledger.intend(agent="WORKER", ship=rig.ship, waypoint=job.source,
                                      good="IRON_ORE", kind="PURCHASE", units=40,
                                      now=utcnow(), factory="f", task="t", held_before=held)
    rig.client.purchase(rig.ship, "IRON_ORE", 20)
    rig.client.purchase(rig.ship, "IRON_ORE", 20)  # the server took it in two, say
    rig.storage.ledger.confirm(entry, units=40, price_per_unit=0, total=0,
                               credits_after=None, server_time=None, now=utcnow())
    result = rig.worker.run(job)
    assert (result.bought, result.delivered) == (0, 40), "a full hold is progress"
    assert rig.books("PURCHASE", "IRON_ORE") == 40


def test_an_open_entry_is_settled_before_the_trip_and_counted(rig):
    job = rig.trade()
    rig.worker.run(Job(JobKind.VISIT, job.source, "f"))
    rig.client.dock(rig.ship)
    rig.storage.ledger.intend(agent="WORKER", ship=rig.ship, waypoint=job.source,
                              good="IRON_ORE", kind="PURCHASE", units=40, now=utcnow(),
                              factory="f", task="t", held_before=0, owner="dead:1:x")
    rig.client.purchase(rig.ship, "IRON_ORE", 40)  # answered, never confirmed
    result = rig.worker.run(job)
    assert (result.bought, result.delivered) == (0, 40)
    assert rig.books("PURCHASE", "IRON_ORE") == 40
    assert rig.storage.ledger.pending("WORKER") == []
    fresh = rig.client.agent().credits
    rig.storage.ledger.record_balance("WORKER", fresh, utcnow())
    assert rig.storage.ledger.expected_credits("WORKER") == fresh


def test_cargo_that_belongs_to_no_task_is_reported_and_kept(rig, capsys):
    import structlog

    structlog.configure(processors=[structlog.processors.JSONRenderer()],
                        logger_factory=structlog.PrintLoggerFactory())
    rig.game.ships[rig.ship].cargo["GOLD"] = 7
    result = rig.worker.run(rig.trade(units=20))
    out = capsys.readouterr().out
    structlog.reset_defaults()
    assert isinstance(result, JobDone) and result.bought == 20
    assert '"cargo.not_ours"' in out and '"good": "GOLD"' in out and '"units": 7' in out
    assert rig.client.cargo(rig.ship).held("GOLD") == 7, "never dropped"


def test_goods_gone_from_the_hold_are_reported_missing(rig):
    job = rig.trade(units=40, destination=None)
    rig.worker.run(job)
    rig.game.ships[rig.ship].cargo["IRON_ORE"] = 30  # ten vanished (jettisoned by hand)
    # by a tool that writes no ledger line: the worker's view of the hold is stale, and
    # the server refuses the sale of what is gone; the next trip reads the ship
    refused = rig.worker.run(rig.trade(units=40))
    assert isinstance(refused, JobFailed) and rig.books("SELL") == 0
    result = rig.worker.run(rig.trade(units=40))
    assert result.missing == 10 and rig.books("SELL") == 30


def test_a_collect_waits_when_supply_is_below_the_threshold(rig):
    good = "CLOTHING"  # starved: SCARCE at its only exporter
    job = rig.trade(good, min_supply=SupplyLevel.MODERATE)
    result = rig.worker.run(job)
    assert isinstance(result, JobNotReady) and "is SCARCE, below MODERATE" in result.reason
    assert result.supply_fell
    assert rig.books("PURCHASE") == 0


def _just_moderate(rig):
    source = rig.trade().source
    stock = rig.game.universe.markets[source].goods["IRON_ORE"]
    stock.stock = stock.target = 0.62 * stock.scale  # just MODERATE, and no miners refill it
    stock.trade_volume = 20  # 20 units make it LIMITED
    return stock


def test_a_lot_begun_at_the_threshold_is_finished_below_it(rig):
    stock = _just_moderate(rig)
    result = rig.worker.run(rig.trade(units=40, destination=None))
    assert isinstance(result, JobDone) and result.bought == 40 and result.supply_fell
    assert rig.books("PURCHASE") == 40
    assert stock.supply < SupplyLevel.MODERATE  # the server's view after our buying
    after = rig.worker.book.latest(rig.trade().source).quote("IRON_ORE")
    assert after.supply is stock.supply, "read again after the last slice"


def test_the_ceiling_still_stops_a_lot_our_buying_made_dearer(rig):
    stock = _just_moderate(rig)
    first = stock.purchase_price
    result = rig.worker.run(rig.trade(units=40, destination=None, ceiling=first))
    assert isinstance(result, JobDone) and result.bought == 20
    assert rig.books("PURCHASE") == 20


def test_a_raw_material_is_bought_whatever_the_supply(rig):
    source = rig.trade().source
    stock = rig.game.universe.markets[source].goods["IRON_ORE"]
    stock.stock = 0.1 * stock.scale
    result = rig.worker.run(rig.trade(units=20, destination=None, below_threshold=True))
    assert isinstance(result, JobDone) and result.bought == 20


def test_the_ceiling_stops_the_buying(rig):
    result = rig.worker.run(rig.trade(ceiling=1))
    assert isinstance(result, JobNotReady) and "above the ceiling of 1" in result.reason
    assert not result.supply_fell


def test_out_of_credits_is_fatal(rig):
    rig.wallet.apply(10)
    result = rig.worker.run(rig.trade(reserve=0))
    assert isinstance(result, JobFailed) and result.fatal
    assert result.error.startswith("not enough credits: 10 left")
    rig.wallet.apply(10_000_000)  # the server disagrees with the wallet: 4600
    rig.game.agents["WORKER"].credits = 10
    result = rig.worker.run(rig.trade())
    assert isinstance(result, JobFailed) and result.fatal and "4600" in result.error
    assert [e.state for e in rig.storage.ledger.entries(ship=rig.ship)] == ["FAILED"]


def test_a_ship_that_vanishes_is_reported_lost(rig):
    rig.server.faults = FaultPlan.parse("lose=purchase:1")
    result = rig.worker.run(rig.trade())
    assert result == ShipLost(rig.ship, rig.trade())
    assert rig.fleet.get(rig.ship).lost


def test_stop_interrupts_a_flight_at_once(sim_factory, tmp_path):
    slow = Rig(sim_factory(seed=1, time_scale=1.0), tmp_path)  # flights take minutes
    threading.Timer(0.3, slow.stop.set).start()
    started = utcnow()
    result = slow.worker.run(slow.trade())
    assert isinstance(result, JobInterrupted)
    assert (utcnow() - started).total_seconds() < 2
    slow.storage.close()


def test_finish_lets_it_deliver_what_it_holds_but_buy_nothing(rig):
    rig.worker.run(rig.trade(units=40, destination=None))
    rig.worker.finish.set()
    result = rig.worker.run(rig.trade(units=80))
    assert (result.bought, result.delivered) == (0, 40)


def test_a_visit_reads_the_market_there(rig):
    target = rig.sellers("IRON_ORE")[0]
    seen = []
    rig.book.listen(seen.append)
    assert isinstance(rig.worker.run(Job(JobKind.VISIT, target, "f")), JobDone)
    assert seen[-1].waypoint == target and seen[-1].has_quotes
    assert rig.storage.markets.snapshot(target).quote("IRON_ORE") is not None
    assert rig.book.latest(target).has_quotes


def skewed(rig, ahead: float) -> ShipWorker:
    """The rig's ship driven by a worker whose clock runs `ahead` seconds of the server's."""
    return rig.new_worker(clock=lambda: utcnow() + timedelta(seconds=ahead))


def far(rig, good: str) -> str:
    here = rig.client.ship(rig.ship).nav.waypoint
    return next(w for w in rig.sellers(good) if w != here)


def test_a_clock_ahead_of_the_servers_waits_for_the_landing_before_trading(rig):
    """Our clock says the ship has landed; the server's does not yet (4214 on docking):
    the ship waits the seconds the server gives and trades, instead of failing the job."""
    worker = skewed(rig, ahead=0.4)
    job = rig.trade(source=far(rig, "IRON_ORE"), units=10)
    assert worker.run(job) == JobDone(rig.ship, job, bought=10, delivered=10)
    assert rig.books("PURCHASE", "IRON_ORE") == rig.books("SELL", "IRON_ORE") == 10


def test_a_clock_ahead_of_the_servers_reads_the_market_once_landed(rig):
    """A read before the server's landing has no quotes (no ship of ours there yet)."""
    target = far(rig, "IRON_ORE")
    assert isinstance(skewed(rig, ahead=0.4).run(Job(JobKind.VISIT, target, "f")), JobDone)
    assert rig.book.latest(target).has_quotes


def nearest_markets(rig, n: int) -> list[str]:
    """The `n` markets nearest the ship where no ship of the agent is (a reading there
    has quotes only if this one is)."""
    ships = rig.client.ships()
    here = rig.game.places[next(s for s in ships if s.symbol == rig.ship).nav.waypoint]
    taken = {s.nav.waypoint for s in ships}
    others = [w for w in rig.game.universe.markets if w not in taken]
    return sorted(others, key=lambda w: (rig.game.places[w].x - here.x) ** 2
                  + (rig.game.places[w].y - here.y) ** 2)[:n]


def test_a_job_after_one_done_in_full_does_not_read_the_ship_again(rig):
    """The worker knows where its last job left the ship and what it holds; a job after
    one that did not end in full reads the ship first."""
    first, second = nearest_markets(rig, 2)
    before = rig.client.calls["ship"]
    assert isinstance(rig.worker.run(Job(JobKind.VISIT, first, "f")), JobDone)
    assert rig.client.calls["ship"] == before + 1, "a new worker knows nothing yet"
    assert isinstance(rig.worker.run(Job(JobKind.VISIT, second, "f")), JobDone)
    assert rig.client.calls["ship"] == before + 1
    assert rig.book.latest(second).has_quotes
    assert rig.worker.run(rig.trade(units=10)) == JobDone(rig.ship, rig.trade(units=10),
                                                          bought=10, delivered=10)
    assert rig.client.calls["ship"] == before + 1
    assert isinstance(rig.worker.run(rig.trade(ceiling=1)), JobNotReady)
    rig.worker.run(rig.trade(units=10))
    assert rig.client.calls["ship"] == before + 2, "after a job not done in full"


def test_a_trip_after_another_process_traded_with_the_ship_reads_it_first(rig):
    """Between two of our jobs another process bought into the ship's hold where it
    stands (no move to see): its ledger line tells the next trip to read the ship."""
    job = rig.trade(units=10, destination=None)
    assert isinstance(rig.worker.run(job), JobDone)
    other = rig.new_worker(fleet=rig.recording_fleet())  # another process's, same ship
    assert other.run(replace(job, task="other")).bought == 10  # into the same hold
    before = rig.client.calls["ship"]
    result = rig.worker.run(replace(job, task="more", units=20,
                                    destination=rig.buyer("IRON_ORE")))
    assert rig.client.calls["ship"] == before + 1
    assert (result.bought, result.delivered) == (20, 20)
    assert rig.worker.cargo.held("IRON_ORE") == 20 == rig.client.cargo(rig.ship).held(
        "IRON_ORE")


@pytest.mark.parametrize("read_after_start, reads", [(True, 0), (False, 1)])
def test_a_visit_to_a_market_read_since_it_began_reads_nothing(rig, read_after_start, reads):
    """A faster ship sent to the same market read it first: the slower one's visit is
    served when it lands."""
    here = rig.client.ship(rig.ship).nav.waypoint
    if not read_after_start:
        rig.book.read(here)
    began = utcnow()
    if read_after_start:
        rig.book.read(here)  # the faster ship's reading
    before = rig.client.calls["market"]
    worker = rig.new_worker(clock=lambda: began)
    assert isinstance(worker.run(Job(JobKind.VISIT, here, "f")), JobDone)
    assert rig.client.calls["market"] == before + reads


def test_a_worker_started_from_the_fleet_just_read_visits_without_reading_the_ship(rig):
    target, = nearest_markets(rig, 1)
    rig.worker.start_from(next(s for s in rig.client.ships() if s.symbol == rig.ship))
    before = rig.client.calls["ship"]
    assert isinstance(rig.worker.run(Job(JobKind.VISIT, target, "f")), JobDone)
    assert rig.client.calls["ship"] == before
    assert rig.book.latest(target).has_quotes
    rig.worker.run(rig.trade(units=10))
    assert rig.client.calls["ship"] == before, "nor its first trip"
    assert rig.books("SELL", "IRON_ORE") == 10


def test_a_visit_from_where_another_process_left_the_ship_still_reads_the_market(rig):
    """Between two of our jobs another process flew the ship elsewhere: the reading at
    the market we believe it is at comes without quotes, so the ship asks the server
    where it is, flies back and reads."""
    here, there = nearest_markets(rig, 2)
    assert isinstance(rig.worker.run(Job(JobKind.VISIT, here, "f")), JobDone)
    other = rig.new_worker(fleet=rig.recording_fleet())  # another process's, same ship
    assert isinstance(other.run(Job(JobKind.VISIT, there, "f")), JobDone)
    assert rig.client.ship(rig.ship).nav.waypoint == there
    assert isinstance(rig.worker.run(Job(JobKind.VISIT, here, "f")), JobDone)
    assert rig.client.ship(rig.ship).nav.waypoint == here
    assert rig.book.latest(here).has_quotes and rig.book.latest(here).observed_at > \
        rig.book.latest(there).observed_at


@pytest.mark.parametrize("fresh_for, reads", [(60.0, 1), (1e-6, 2)])
def test_a_reading_taken_moments_ago_serves_the_first_slice(rig, fresh_for, reads):
    """As a ship lands the watcher reads the market; the ship trades on that reading
    instead of repeating it, unless it is older than `fresh_for`. The reading after the
    last slice (what our buying left) is always taken."""
    rig.worker.fresh_for = fresh_for
    job = rig.trade(units=10)  # one slice
    rig.worker.run(Job(JobKind.VISIT, job.source, "f"))  # there, the market just read
    seen = []
    rig.book.listen(seen.append)
    assert rig.worker.run(job).bought == 10
    assert sum(1 for s in seen if s.waypoint == job.source) == reads
    assert rig.books("PURCHASE", "IRON_ORE") == 10


def test_a_reading_taken_before_one_of_our_trades_there_is_read_again(rig):
    """Two of our ships at one market: the second must not trade on the reading taken
    before the first one bought (stock and price moved since): its ceiling would not
    hold."""
    rig.worker.fresh_for = 60.0
    job = rig.trade(units=10)
    rig.worker.run(Job(JobKind.VISIT, job.source, "f"))  # there, the market just read
    price = rig.book.latest(job.source).quote("IRON_ORE").purchase_price
    stock = rig.game.universe.markets[job.source].goods["IRON_ORE"]
    stock.stock *= 0.8  # the other ship's buying made it dearer
    assert stock.purchase_price > price and stock.supply >= SupplyLevel.MODERATE
    rig.book.traded(job.source, utcnow())
    result = rig.worker.run(replace(job, ceiling=price))
    assert isinstance(result, JobNotReady) and "above the ceiling" in result.reason
    assert rig.books("PURCHASE", "IRON_ORE") == 0


@pytest.mark.parametrize("units, reads", [(10, 0), (100, 1)])
def test_a_collect_reads_what_its_buying_left_only_if_the_lot_goes_on(rig, units, reads):
    """A lot collected from the exporter that made it waits for a reading taken after
    it, so a collect that completes its lot reads nothing more; one the hold cannot take
    in one trip reads what its buying left (its next trip waits if the supply fell)."""
    rig.worker.fresh_for = 60.0
    job = rig.trade(units=units, destination=None, collect=True)
    rig.worker.run(Job(JobKind.VISIT, job.source, "f"))  # there, the market just read
    seen = []
    rig.book.listen(seen.append)
    assert rig.worker.run(job).bought == min(units, 40)
    assert sum(1 for s in seen if s.waypoint == job.source) == reads
    # with nothing read after its buying, the reading from before serves no other ship
    since = utcnow() - timedelta(minutes=1)
    assert (rig.book.read_between(job.source, since, untraded=True) is None) == (reads == 0)
    assert rig.book.read_between(job.source, since) is not None, "a poll need not repeat it"


def test_a_sale_in_slices_reads_the_market_once(rig):
    job = rig.trade(units=40)
    stock = rig.game.universe.markets[job.destination].goods["IRON_ORE"]
    stock.trade_volume = 10
    seen = []
    rig.book.listen(seen.append)
    rig.worker.fresh_for = 0.0
    assert rig.worker.run(job) == JobDone(rig.ship, job, bought=40, delivered=40)
    assert rig.books("SELL", "IRON_ORE") == 40
    sells = [e for e in rig.storage.ledger.entries(ship=rig.ship) if e.kind == "SELL"]
    assert [e.units for e in sells] == [10, 10, 10, 10]
    assert sum(1 for s in seen if s.waypoint == job.destination) == 1


def test_flights_teach_the_fleet_the_servers_pace(rig):
    """This server runs 500 times faster than the formula's seconds: the fleet learns so
    from the departure and arrival times it answers with."""
    assert rig.fleet.pace == 1.0
    target = next(w for w in rig.sellers("IRON_ORE") if w != rig.fleet.get(rig.ship).waypoint)
    assert isinstance(rig.worker.run(Job(JobKind.VISIT, target, "f")), JobDone)
    assert rig.fleet.pace == pytest.approx(1 / 500, rel=0.2)


def test_a_refuel_stop_is_made_when_the_tank_is_short(rig):
    rig.game.ships[rig.ship].fuel = 5
    job = rig.trade(destination=None)
    assert isinstance(rig.worker.run(job), JobDone)
    refuels = [e for e in rig.storage.ledger.entries(ship=rig.ship) if e.kind == "REFUEL"]
    assert refuels and all(e.state == "CONFIRMED" and e.held_before is not None
                           for e in refuels)


def test_a_refuel_the_server_refuses_for_credits_ends_the_factory_not_a_retry(rig):
    rig.game.ships[rig.ship].fuel = 5
    rig.game.agents["WORKER"].credits = 1  # the wallet still believes in 175,000
    result = rig.worker.run(rig.trade(destination=None))
    assert isinstance(result, JobFailed) and result.fatal
    assert result.error.startswith("not enough credits") and "4600" in result.error
    refuels = [e for e in rig.storage.ledger.entries(ship=rig.ship) if e.kind == "REFUEL"]
    assert [e.state for e in refuels] == ["FAILED"]


def test_supplying_a_construction_site(rig):
    gate = next(iter(rig.game.universe.constructions))
    rig.game.ships[rig.ship].cargo["FAB_MATS"] = 30
    rig.game.ships[rig.ship].waypoint = gate
    rig.storage.ledger.record_balance("WORKER", 0, utcnow())
    entry = rig.storage.ledger.intend(agent="WORKER", ship=rig.ship, waypoint="x",
                                      good="FAB_MATS", kind="PURCHASE", units=30,
                                      now=utcnow(), factory="f", task="t")
    rig.storage.ledger.confirm(entry, units=30, price_per_unit=1, total=30,
                               credits_after=None, server_time=None, now=utcnow())
    job = Job(JobKind.TRADE, gate, "f", task="t", good="FAB_MATS", units=30,
              destination=gate, deliver=DeliverKind.CONSTRUCTION)
    result = rig.worker.run(job)
    assert (result.delivered, result.need) == (30, 1570)
    assert rig.game.universe.constructions[gate].materials["FAB_MATS"].fulfilled == 30
    assert rig.books("SUPPLY", "FAB_MATS") == 30


def test_delivering_and_fulfilling_a_contract(rig):
    contract = rig.game.offer_contract("WORKER", "IRON_ORE", 40, rig.buyer("IRON_ORE"),
                                       100, 5_000)
    rig.client.accept_contract(contract.id)
    job = rig.trade(units=40, deliver=DeliverKind.CONTRACT, contract=contract.id)
    credits = rig.client.agent().credits
    result = rig.worker.run(job)
    assert (result.delivered, result.need) == (40, 0)
    assert contract.fulfilled
    assert rig.client.agent().credits > credits
    paid = [e for e in rig.storage.ledger.entries(ship=rig.ship) if e.kind == "CONTRACT"]
    assert [(e.state, e.total) for e in paid] == [("CONFIRMED", 5_000)]


def test_unloading_sells_everything_of_a_good(rig):
    rig.game.ships[rig.ship].cargo["IRON_ORE"] = 25
    buyer = rig.buyer("IRON_ORE")
    result = rig.worker.run(Job(JobKind.UNLOAD, buyer, "", good="IRON_ORE",
                                destination=buyer))
    assert result.delivered == 25 and rig.client.cargo(rig.ship).held("IRON_ORE") == 0
    [sale] = [e for e in rig.storage.ledger.entries(ship=rig.ship) if e.kind == "SELL"]
    assert sale.factory is None and sale.state == "CONFIRMED"


def test_the_wallet_never_shows_credits_between_an_answer_and_its_balance():
    wallet = Wallet(1000)
    with wallet.hold(600) as held:
        assert wallet.affordable(100, reserve=0) == 4
        held.settle(400, datetime(2026, 1, 1, tzinfo=UTC))  # hold goes, balance comes: one step
        assert wallet.affordable(100, reserve=0) == 4
    assert wallet.credits == 400 and wallet.affordable(100, reserve=0) == 4


def test_an_older_balance_arriving_late_does_not_undo_a_newer_one():
    wallet, t = Wallet(1000), datetime(2026, 1, 1, tzinfo=UTC)
    first, second = wallet.hold(300), wallet.hold(200)
    a, b = first.__enter__(), second.__enter__()
    b.settle(500, t + timedelta(milliseconds=2))  # the server applied A then B; B is read first
    a.settle(700, t + timedelta(milliseconds=1))  # A's older balance arrives late
    first.__exit__(None, None, None), second.__exit__(None, None, None)
    assert wallet.credits == 500 and wallet.affordable(1, reserve=0) == 500
    wallet.apply(450, t + timedelta(milliseconds=2))  # same instant: the lower wins
    assert wallet.credits == 450
    wallet.apply(750)  # a contract paid, no server time
    assert wallet.credits == 750
