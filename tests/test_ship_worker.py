"""The ship's logic driven directly, without actor threads, against the local server."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

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
from api.client import Client
from api.ratelimit import RateLimiter
from domain.enums import SupplyLevel, TradeType
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
        system = self.game.universe.symbol
        self.storage.waypoints.save(system, self.client.waypoints(system))
        for waypoint in self.game.universe.markets:
            self.storage.markets.record(self.client.market(waypoint).snapshot)
        self.fleet, self.wallet = Fleet(), Wallet(reg.agent.credits)
        self.reports: list = []
        self.stop = threading.Event()
        self.ship = reg.ships[0].symbol
        from actors.ship import ShipWorker

        self.worker = ShipWorker(self.ship, agent="WORKER", client=self.client,
                                 storage=self.storage, fleet=self.fleet, wallet=self.wallet,
                                 clock=utcnow, stop=self.stop, report=self.reports.append)
        self.fleet.update(self.client.ship(self.ship))

    def sellers(self, good):
        return [w for w, m in self.game.universe.markets.items()
                if good in m.goods and m.goods[good].type is not TradeType.IMPORT]

    def buyer(self, good):
        return next(w for w, m in self.game.universe.markets.items()
                    if good in m.goods and m.goods[good].type is TradeType.IMPORT)

    def trade(self, good="IRON_ORE", units=40, **kw) -> Job:
        source = kw.pop("source", None) or max(
            self.sellers(good), key=lambda w: self.game.universe.markets[w].goods[good].stock)
        return Job(JobKind.TRADE, source, factory="f", task="t", good=good, units=units,
                   **{"destination": self.buyer(good), **kw})

    def server_trades(self, kind):
        return sum(1 for m in self.game.universe.markets.values() for tx in m.transactions
                   if tx["type"] == kind and tx["shipSymbol"] == self.ship)


@pytest.fixture
def rig(sim_factory, tmp_path):
    rig = Rig(sim_factory(seed=1, time_scale=500.0), tmp_path)
    yield rig
    rig.storage.close()


def test_a_trade_job_buys_flies_and_delivers(rig):
    job = rig.trade()
    assert rig.worker.run(job) == JobDone(rig.ship, job)
    traded = [r for r in rig.reports if isinstance(r, Traded)]
    assert [(t.kind, t.units) for t in traded] == [("PURCHASE", 40), ("SELL", 40)]
    assert rig.client.cargo(rig.ship).held("IRON_ORE") == 0
    entries = rig.storage.ledger.entries(agent="WORKER")
    assert {e.state for e in entries} == {"CONFIRMED"}
    assert rig.fleet.get(rig.ship).waypoint == job.destination
    assert rig.storage.ledger.entries(ship=rig.ship)[-1].kind == "SELL"


def test_unknown_outcome_of_a_purchase_is_read_back_not_repeated(rig):
    rig.server.faults = FaultPlan.parse("500after=1,on=purchase,times=1")
    job = rig.trade(destination=None)
    assert isinstance(rig.worker.run(job), JobDone)
    assert rig.server_trades("PURCHASE") == 1, "sent once"
    confirmed = [e for e in rig.storage.ledger.entries(ship=rig.ship) if e.kind == "PURCHASE"]
    assert [(e.state, e.units) for e in confirmed] == [("CONFIRMED", 40)]
    assert rig.client.cargo(rig.ship).held("IRON_ORE") == 40


def test_unknown_outcome_of_a_sale_and_a_navigation(rig):
    rig.server.faults = FaultPlan.parse("500after=1,on=sell,times=1")
    assert isinstance(rig.worker.run(rig.trade()), JobDone)
    assert rig.server_trades("SELL") == 1
    rig.server.faults = FaultPlan.parse("500after=1,on=navigate,times=1")
    assert isinstance(rig.worker.run(rig.trade(units=10)), JobDone)
    assert rig.client.cargo(rig.ship).held("IRON_ORE") == 0


def test_collect_waits_when_supply_is_below_the_threshold(rig):
    good = "CLOTHING"  # starved: SCARCE at its only exporter
    job = rig.trade(good, collect=True, min_supply=SupplyLevel.MODERATE)
    result = rig.worker.run(job)
    assert isinstance(result, JobNotReady) and "is SCARCE, below MODERATE" in result.reason
    assert rig.server_trades("PURCHASE") == 0


def test_ceiling_stops_the_buying(rig):
    job = rig.trade(ceiling=1)
    result = rig.worker.run(job)
    assert isinstance(result, JobNotReady) and "above the ceiling of 1" in result.reason


def test_out_of_credits_is_fatal(rig):
    rig.wallet.set(10)
    result = rig.worker.run(rig.trade(reserve=0))
    assert isinstance(result, JobFailed) and result.fatal
    assert result.error.startswith("not enough credits: 10 left")
    rig.wallet.set(10_000_000)  # the server disagrees with the wallet: 4600
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


def test_visit_reads_the_market_there(rig):
    target = rig.sellers("IRON_ORE")[0]
    seen = []
    rig.worker.observe = seen.append
    assert isinstance(rig.worker.run(Job(JobKind.VISIT, target)), JobDone)
    assert seen[-1].waypoint == target and seen[-1].has_quotes
    assert rig.storage.markets.snapshot(target).quote("IRON_ORE") is not None


def test_resumed_after_the_last_delivery_does_nothing(rig):
    job = rig.trade(delivered=40, held=0)
    assert isinstance(rig.worker.run(job), JobDone)
    assert rig.server_trades("PURCHASE") == 0


def test_a_refuel_stop_is_made_when_the_tank_is_short(rig):
    rig.game.ships[rig.ship].fuel = 5
    job = rig.trade(destination=None)
    assert isinstance(rig.worker.run(job), JobDone)
    refuels = [e for e in rig.storage.ledger.entries(ship=rig.ship) if e.kind == "REFUEL"]
    assert refuels and all(e.state == "CONFIRMED" for e in refuels)
