"""The fleet at work, end to end against the local server (in this process)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from actors.runtime import Outcome
from actors.service import Order, Service
from actors.settings import Settings
from api.client import Client
from api.ratelimit import RateLimiter
from domain.enums import Acquisition
from domain.factory import Destination, Factory, FactoryStatus, TaskPurpose, TaskState
from domain.markets import MarketSnapshot
from domain.navigation import distance
from domain.plan import resolve
from domain.report import render_status, status_dict
from sim.faults import FaultPlan
from sim.server import SimServer
from storage.db import open_database
from storage.files import default_supply_chain
from storage.repositories import Storage

FAST = dict(poll_initial=0.3, poll_settled=0.6, blind_check_after=0.6, answer_wait=0.8, tick=0.2)
pytestmark = pytest.mark.slow


@dataclass
class World:
    server: SimServer
    token: str
    agent: str
    storage: Storage

    def client(self) -> Client:
        """A fresh client: a finished run stops the one it was given."""
        return Client(self.server.url, self.token, limiter=RateLimiter.unlimited())

    @property
    def game(self):
        return self.server.game

    def service(self, chain=None, **settings) -> Service:
        return Service(self.client(), self.storage, chain or default_supply_chain(),
                       Settings(**{**FAST, **settings}))

    def produce(self, target: str, units=None, lot=None, deliver="hold", ships=None,
                chain=None, **settings) -> tuple[Outcome, Factory]:
        service = self.service(chain, **settings)
        runtime = service.runtime(ships=set(ships) if ships else None)
        try:
            factory = service.create(runtime, Order(target, None, ships, units, lot,
                                                    Destination.parse(deliver)), runtime.owner)
        except BaseException:
            runtime.shutdown()
            raise
        outcome = service.run(runtime, [factory.id])
        return outcome, self.storage.factories.load(factory.id)

    def ledger_matches_server(self) -> bool:
        return self.storage.ledger.expected_credits(self.agent) == self.client().agent().credits

    def books(self, kind, good=None) -> int:
        return sum(e.units for e in self.game.books if e.agent == self.agent and e.kind == kind
                   and (good is None or e.good == good))

    def held(self, good: str) -> int:
        return sum(s.cargo.held(good) for s in self.client().ships())


def make_world(tmp_path, economy="gentle", shuttles=1, scale=250.0):
    """A world on another economy profile (stop its server when done)."""
    from sim.server import build_game

    game = build_game(seed=1, time_scale=scale, economy=economy, starting_credits=1_000_000)
    server = SimServer(game, rate_limit=False)
    server.start()
    anon = Client(server.url, token="", limiter=RateLimiter.unlimited())
    reg = anon.register("FACTORY", "COSMIC", "account")
    client = anon.with_token(reg.token)
    for _ in range(shuttles):
        client.purchase_ship("SHIP_LIGHT_SHUTTLE", game.universe.start_probe_at)
    storage = Storage(open_database(str(tmp_path / "gf.db")))
    return World(server, reg.token, "FACTORY", storage)


@pytest.fixture
def world(sim_factory, tmp_path):
    server = sim_factory(seed=1, time_scale=250.0)
    anon = Client(server.url, token="", limiter=RateLimiter.unlimited())
    reg = anon.register("FACTORY", "COSMIC", "account")
    client = anon.with_token(reg.token)
    client.purchase_ship("SHIP_LIGHT_SHUTTLE", server.game.universe.start_probe_at)
    storage = Storage(open_database(str(tmp_path / "gf.db")))
    yield World(server, reg.token, "FACTORY", storage)
    storage.close()


def test_a_start_reads_the_agent_once_and_opens_the_ledger_with_it(world):
    client = world.client()
    service = Service(client, world.storage, default_supply_chain(), Settings(**FAST))
    runtime = service.runtime()
    runtime.shutdown()
    assert client.calls["agent"] == 1
    assert world.ledger_matches_server()
    again = world.client()
    Service(again, world.storage, default_supply_chain(), Settings(**FAST)).runtime().shutdown()
    assert again.calls["agent"] == 1, "a second start: the ledger is quiet, one read"


def test_buy_only_good(world):
    outcome, f = world.produce("IRON_ORE")
    assert outcome.finished and f.status is FactoryStatus.COMPLETED
    assert f.plan.method is Acquisition.BUY and f.plan.depth() == 0
    assert f.units_acquired == 40 == world.held("IRON_ORE") == world.books("PURCHASE", "IRON_ORE")
    purchases = [e for e in world.storage.ledger.entries(factory=f.id) if e.kind == "PURCHASE"]
    assert {e.state for e in purchases} == {"CONFIRMED"}
    assert f.credits_spent == sum(e.total for e in world.storage.ledger.entries(factory=f.id))
    assert world.ledger_matches_server()
    assert world.storage.assignments.all() == [], "every ship is free again"


def test_a_run_takes_start_up_objects_out_of_the_collectors_sight_once(world, monkeypatch):
    import gc
    import threading

    from actors import service

    monkeypatch.setattr(service, "_heap_frozen", threading.Event())
    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(gc.get_count()))
    world.produce("IRON_ORE")
    world.produce("IRON_ORE")
    assert len(frozen) == 1, "once per process, when its first run starts"


def test_depth_two_fabrication_feeds_the_exporter(world):
    outcome, f = world.produce("CLOTHING")
    assert outcome.finished and f.status is FactoryStatus.COMPLETED, f.error
    stations = f.stations()
    clothing = next(s for s in stations.values() if s.good == "CLOTHING")
    fabrics = next(s for s in stations.values() if s.good == "FABRICS")
    assert clothing.fed()["FABRICS"] > 0 and fabrics.fed()["FERTILIZERS"] > 0
    feeds = [t for t in f.tasks.values() if t.purpose is TaskPurpose.FEED]
    assert {t.destination for t in feeds if t.good == "FABRICS"} == {clothing.waypoint}, \
        "inputs go to the exporter"
    exporter = world.game.universe.markets[clothing.waypoint]
    assert exporter.goods["FABRICS"].type.value == "IMPORT"
    assert f.units_acquired > 0 and world.held("CLOTHING") == f.units_acquired
    assert world.books("PURCHASE", "FERTILIZERS") == world.books("SELL", "FERTILIZERS"), \
        "nothing stranded"
    assert world.ledger_matches_server()


def test_depth_three_runs_branches_in_parallel_on_several_ships(world):
    outcome, f = world.produce("ADVANCED_CIRCUITRY")
    assert outcome.finished and f.status is FactoryStatus.COMPLETED, f.error
    ships = {e.ship for e in world.storage.ledger.entries(factory=f.id) if e.kind != "REFUEL"}
    assert len(ships) >= 2
    done = [t for t in f.tasks.values() if t.started_at and t.finished_at]
    overlap = any(a.last_ship != b.last_ship and a.started_at < b.finished_at
                  and b.started_at < a.finished_at for a in done for b in done)
    assert overlap, "two ships worked at the same time"
    copper = [s for s in f.stations().values() if s.good == "COPPER"]
    assert len(copper) == 1, "one COPPER exporter, fed once for both consumers"
    assert world.ledger_matches_server()


def test_more_units_than_the_fleet_can_hold_lot_by_lot(world):
    """200 units with 80 units of hold: lots in flight at once, none left short."""
    outcome, f = world.produce("IRON_ORE", units=200, deliver=f"sell:{_buyer(world, 'IRON_ORE')}")
    assert outcome.finished and f.status is FactoryStatus.COMPLETED, f.error
    assert f.units_acquired == 200 == world.books("SELL", "IRON_ORE")
    assert world.books("PURCHASE", "IRON_ORE") == 200
    lots = f.outputs()
    assert len(lots) >= 5 and all(t.state is TaskState.DONE for t in lots)
    starts = sorted(t.started_at for t in lots)
    ends = sorted(t.finished_at for t in lots)
    assert starts[1] < ends[0], "lots overlap"
    assert world.ledger_matches_server()


def test_one_ship_and_more_units_than_its_hold(world):
    """A hold keeps what it can; past that the product goes elsewhere, lot by lot."""
    from actors.service import ServiceError

    ship = next(s.symbol for s in world.client().ships() if s.role == "TRANSPORT")
    with pytest.raises(ServiceError, match=r"--units 70 cannot be kept in the hold: the "
                                           r"usable haulers have room for 40 more"):
        world.produce("IRON_ORE", units=70, ships=(ship,))
    outcome, f = world.produce("IRON_ORE", units=70, ships=(ship,),
                               deliver=f"sell:{_buyer(world, 'IRON_ORE')}")
    assert outcome.finished and f.status is FactoryStatus.COMPLETED, f.error
    assert f.units_acquired == 70 == world.books("SELL", "IRON_ORE")
    assert world.held("IRON_ORE") == 0


def test_a_lot_bigger_than_a_hold_takes_several_trips(world):
    ship = next(s.symbol for s in world.client().ships() if s.role == "TRANSPORT")
    buyer = _buyer(world, "IRON_ORE")
    outcome, f = world.produce("IRON_ORE", units=100, lot=100, ships=(ship,),
                               deliver=f"sell:{buyer}")
    assert outcome.finished, f.error
    [lot] = f.outputs()
    assert lot.trips >= 3 and lot.units_delivered == 100


def test_supplying_the_jump_gate(world):
    gate = next(iter(world.game.universe.constructions))
    outcome, f = world.produce("FAB_MATS", units=60, deliver="construction")
    assert outcome.finished and f.status is FactoryStatus.COMPLETED, f.error
    assert f.destination.waypoint == gate
    assert world.game.universe.constructions[gate].materials["FAB_MATS"].fulfilled == 60
    assert world.books("SUPPLY", "FAB_MATS") == 60 == world.books("PURCHASE", "FAB_MATS")
    assert world.ledger_matches_server()


def test_a_procurement_contract_is_accepted_delivered_and_fulfilled(world):
    buyer = _buyer(world, "IRON_ORE")
    contract = world.game.offer_contract("FACTORY", "IRON_ORE", 50, buyer, 1_000, 20_000)
    credits = world.client().agent().credits
    outcome, f = world.produce("IRON_ORE", deliver=f"contract:{contract.id}")
    assert outcome.finished and f.status is FactoryStatus.COMPLETED, f.error
    assert contract.accepted and contract.fulfilled and f.units_acquired == 50
    assert world.books("DELIVER", "IRON_ORE") == 50
    assert world.client().agent().credits > credits, "paid"
    assert world.ledger_matches_server()


def test_a_contract_several_ships_deliver_to_at_once_gets_exactly_its_units(tmp_path):
    """Three lots on several ships, each delivery capped by what the contract still
    needs: the server's books show the contract's units delivered once, and nothing
    bought beyond them. (The race between two deliveries' reports is replayed in
    test_coordinator.py; here the ships reach the seller and the buyer at different
    times.)"""
    world = make_world(tmp_path, shuttles=4, scale=1000.0)
    try:
        buyer = _buyer(world, "IRON_ORE")
        contract = world.game.offer_contract("FACTORY", "IRON_ORE", 120, buyer, 1_000, 20_000)
        outcome, f = world.produce("IRON_ORE", deliver=f"contract:{contract.id}")
        assert outcome.finished and f.status is FactoryStatus.COMPLETED, f.error
        assert contract.fulfilled and contract.terms[0].fulfilled == 120
        deliverers = {e.ship for e in world.game.books if e.kind == "DELIVER"}
        assert len(deliverers) >= 2, "several ships delivered"
        assert world.books("DELIVER", "IRON_ORE") == 120 == world.books("PURCHASE", "IRON_ORE")
        assert f.units_acquired == 120 and world.held("IRON_ORE") == 0
        assert world.ledger_matches_server()
    finally:
        world.server.stop()
        world.storage.close()


def test_a_hungry_economy_is_fed_lot_after_lot_until_it_answers(tmp_path):
    world = make_world(tmp_path, economy="hungry", shuttles=2, scale=500.0)
    try:
        outcome, f = world.produce("FABRICS", units=40)
        assert outcome.finished and f.status is FactoryStatus.COMPLETED, f.error
        station = next(s for s in f.stations().values() if s.good == "FABRICS")
        fed = station.fed()["FERTILIZERS"]
        assert fed >= 3 * f.lot, f"several lots were needed, {fed} fed"
        assert world.books("SELL", "FERTILIZERS") == world.books("PURCHASE", "FERTILIZERS")
        assert f.units_acquired == 40 and world.ledger_matches_server()
        # two shuttles buying lot after lot at one seller: by the server's books, no
        # purchase above the ceiling, whatever reading a ship traded on
        over = [e for e in world.game.books if e.agent == world.agent and e.kind == "PURCHASE"
                and e.credits > e.units * 1.5 * f.reference[e.good]]
        assert over == []
    finally:
        world.server.stop()
        world.storage.close()


def test_a_raw_material_below_the_threshold_is_bought_anyway(world):
    for market in world.game.universe.markets.values():  # nobody has IRON_ORE at MODERATE
        stock = market.goods.get("IRON_ORE")
        if stock is not None and stock.type.value != "IMPORT":
            stock.stock = stock.target = 0.4 * stock.scale
            market.recipes.pop("IRON_ORE", None)  # and nobody mines more
    from domain.supply_chain import SupplyChain

    raw = SupplyChain({"IRON_ORE": []})  # no market can be made to produce it
    outcome, f = world.produce("IRON_ORE", chain=raw)
    assert outcome.finished and f.status is FactoryStatus.COMPLETED, f.error
    assert f.outputs()[0].below_threshold and f.plan.below_threshold
    _strict, g = world.produce("IRON_ORE", chain=raw, strict_supply=True)
    assert g.status is FactoryStatus.FAILED and "lower the supply threshold" in g.error


def test_the_ceiling_is_fixed_when_the_factory_starts(world):
    outcome, f = world.produce("IRON_ORE", units=160, deliver=f"sell:{_buyer(world, 'IRON_ORE')}")
    assert outcome.finished, f.error
    first = f.reference["IRON_ORE"]
    paid = [e.price_per_unit for e in world.storage.ledger.entries(factory=f.id)
            if e.kind == "PURCHASE"]
    assert max(paid) <= 1.5 * first, "never above the ceiling"
    again = world.storage.factories.load(f.id)
    assert again.reference["IRON_ORE"] == first, "our own buying did not move it"
    assert f"IRON_ORE {first:,}" in render_status(again, datetime.now(UTC), 1.5)


def test_two_factories_share_one_fleet(world):
    service = world.service()
    runtime = service.runtime()
    first = service.create(runtime, Order("CLOTHING"), runtime.owner)
    second = service.create(runtime, Order("IRON_ORE"), runtime.owner)
    assert service.run(runtime, [first.id, second.id]).finished
    for factory_id in (first.id, second.id):
        assert world.storage.factories.load(factory_id).status is FactoryStatus.COMPLETED
    assert world.storage.assignments.all() == []
    assert world.ledger_matches_server()


def known_markets(world: World) -> list:
    """Put every market's current quotes in the database, as a scout would have."""
    now = datetime.now(UTC)
    snapshots = [MarketSnapshot.from_api(m.payload(True, {}), observed_at=now)
                 for m in world.game.universe.markets.values()]
    world.storage.markets.record(*snapshots)
    return snapshots


def _buyer(world: World, good: str) -> str:
    return next(w for w, m in sorted(world.game.universe.markets.items())
                if good in m.goods and m.goods[good].type.value == "IMPORT")


def test_a_ship_stranded_without_fuel_is_not_chosen(world):
    game = world.game
    source = resolve("IRON_ORE", default_supply_chain(), known_markets(world)).waypoint
    places = game.places
    near = min((w for w in game.universe.waypoints if w not in game.universe.markets),
               key=lambda w: distance(places[w], places[source]))
    frigate = game.ships["FACTORY-1"]
    frigate.waypoint, frigate.status, frigate.fuel = near, "IN_ORBIT", 0  # nearest, stranded
    outcome, f = world.produce("IRON_ORE")
    assert outcome.finished, f.error
    assert f.outputs()[0].attempts == 0, "no route from there: it was never sent"
    buyer = {e.ship for e in world.storage.ledger.entries(factory=f.id) if e.kind == "PURCHASE"}
    assert buyer == {"FACTORY-3"}, "the shuttle did it"


def test_a_lost_ship_gives_its_task_to_another(world):
    world.server.faults = FaultPlan.parse("lose=purchase:1")
    outcome, f = world.produce("IRON_ORE")
    assert outcome.finished, f.error
    task = f.outputs()[0]
    assert task.units_lost == 40 and task.units_acquired == 40 == f.units_acquired
    buyers = [e.ship for e in world.storage.ledger.entries(factory=f.id)
              if e.kind == "PURCHASE"]
    assert len(buyers) == 2 and buyers[0] != buyers[1]
    assert world.held("IRON_ORE") == 40
    assert world.ledger_matches_server()


def test_not_enough_credits_fails_with_one_reason(world):
    world.game.agents["FACTORY"].credits = 50
    outcome, f = world.produce("IRON_ORE")
    assert outcome.finished and f.status is FactoryStatus.FAILED
    assert f.error.startswith("not enough credits: 50 left")
    assert world.storage.assignments.all() == []


def test_reserve_is_never_spent(world):
    credits = world.client().agent().credits
    outcome, f = world.produce("IRON_ORE", reserve=credits - 500)
    assert outcome.finished and f.status is FactoryStatus.COMPLETED
    assert world.client().agent().credits >= credits - 500
    assert 0 < f.units_acquired < 40


def test_unknown_good_and_a_good_that_cannot_be_sourced(world):
    from domain.errors import UnknownGoodError
    from domain.supply_chain import SupplyChain

    with pytest.raises(UnknownGoodError, match="unknown good WIDGETS"):
        world.produce("WIDGETS")
    for market in world.game.universe.markets.values():  # nobody holds IRON_ORE any more
        if "IRON_ORE" in market.goods and market.goods["IRON_ORE"].type.value != "IMPORT":
            market.goods["IRON_ORE"].stock = market.goods["IRON_ORE"].target = 0.0
    odd_chain = SupplyChain({"IRON_ORE": ["ANTIMATTER"]})  # no exporter imports it
    _outcome, f = world.produce("IRON_ORE", chain=odd_chain, strict_supply=True)
    assert f.status is FactoryStatus.FAILED
    assert "no exporter of IRON_ORE" in f.error and "lower the supply threshold" in f.error


def test_status_report_of_a_finished_factory(world):
    _outcome, f = world.produce("CLOTHING")
    text = render_status(f, datetime.now(UTC))
    assert "Status: COMPLETED" in text and "✅ DONE" in text
    assert "FABRICS [FABRICATE at" in text and "FERTILIZERS [BUY at" in text
    assert "fed " in text and "FABRICS since" in text
    received = sum(t.revenue for t in f.tasks.values())
    assert received > 0 and (f"got {received:,} back for the inputs delivered: net "
                             f"{f.credits_spent:,}") in text
    data = status_dict(f, datetime.now(UTC))
    assert data["tree"]["task"]["state"] == "DONE"
    assert data["tree"]["children"][0]["children"][0]["task"]["units_delivered"] > 0
    assert data["stations"] and data["reference_prices"]["CLOTHING"] > 0


def test_a_runner_whose_factory_is_taken_over_lets_go(world):
    storage, result = world.storage, {}
    runner = threading.Thread(target=lambda: result.update(
        outcome=world.produce("ADVANCED_CIRCUITRY")[0]))
    runner.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = storage.factories.list()
        if rows and any(t.state is TaskState.RUNNING
                        for t in storage.factories.load(rows[-1].id).tasks.values()):
            break
        time.sleep(0.05)
    summary = storage.factories.list()[-1]
    assert storage.factories.take_over(storage.factories.lease(summary.id), "elsewhere:1:x",
                                       datetime.now(UTC))
    runner.join(30)
    assert not runner.is_alive() and result["outcome"].finished
    after = storage.factories.summary(summary.id)
    assert after.owner == "elsewhere:1:x" and after.status is FactoryStatus.ACTIVE
