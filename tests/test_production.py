"""The fleet at work, end to end against the local server (in this process)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from api.client import Client
from api.ratelimit import RateLimiter
from cli import RunOptions, _run, _runtime, create_factory, start_production
from domain.enums import Acquisition
from domain.factory import FactoryStatus, TaskState
from domain.markets import MarketSnapshot
from domain.navigation import distance
from domain.plan import resolve
from sim.faults import FaultPlan
from sim.server import SimServer
from storage.db import open_database
from storage.files import default_supply_chain
from storage.repositories import Storage

FAST = dict(poll_initial=0.3, poll_settled=0.6, tick=0.2)
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

    def produce(self, target: str, chain=None, **options) -> tuple[int, object]:
        code = start_production(self.client(), self.storage, chain or default_supply_chain(),
                                target, RunOptions(**{**FAST, **options}))
        return code, self.storage.factories.load(self.storage.factories.list()[-1].id)

    def ledger_matches_server(self) -> bool:
        return self.storage.ledger.expected_credits(self.agent) == self.client().agent().credits


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


def held_by_fleet(world: World, good: str) -> int:
    return sum(s.cargo.held(good) for s in world.client().ships())


def test_buy_only_good(world):
    code, f = world.produce("IRON_ORE")
    assert code == 0 and f.status is FactoryStatus.COMPLETED
    assert f.plan.method is Acquisition.BUY and f.plan.depth() == 0
    assert f.units_acquired == 40 == held_by_fleet(world, "IRON_ORE")
    purchases = [e for e in world.storage.ledger.entries(factory=f.id) if e.kind == "PURCHASE"]
    assert [e.state for e in purchases] == ["CONFIRMED"]
    assert f.credits_spent == sum(e.total for e in world.storage.ledger.entries(factory=f.id))
    assert world.ledger_matches_server()
    assert world.storage.assignments.all() == [], "every ship is free again"


def test_depth_two_fabrication_feeds_the_exporter(world):
    code, f = world.produce("CLOTHING")
    assert code == 0, f.error
    assert f.plan.depth() == 2 and [n.method for n in f.plan.flatten()] == [
        Acquisition.FABRICATE, Acquisition.FABRICATE, Acquisition.BUY]
    by_path = {t.node_path: t for t in f.tasks.values()}
    clothing_exporter = f.plan.waypoint
    assert by_path["0.0"].destination == clothing_exporter, "inputs go to the exporter"
    assert by_path["0.0.0"].destination == f.plan.children[0].waypoint
    assert all(t.state is TaskState.DONE and t.attempts == 0 for t in f.tasks.values())
    assert by_path["0.0"].units_delivered == by_path["0.0"].units_bought > 0
    assert f.units_acquired > 0 and held_by_fleet(world, "CLOTHING") == f.units_acquired
    exporter = world.game.universe.markets[clothing_exporter]
    assert exporter.goods["FABRICS"].type.value == "IMPORT"
    assert world.ledger_matches_server()


def test_depth_three_runs_branches_in_parallel_on_several_ships(world):
    code, f = world.produce("ADVANCED_CIRCUITRY")
    assert code == 0, f.error
    assert f.plan.depth() == 3
    ships = {e.ship for e in world.storage.ledger.entries(factory=f.id) if e.kind != "REFUEL"}
    assert len(ships) >= 2
    done = [t for t in f.tasks.values() if t.started_at and t.finished_at]
    overlap = any(a.last_ship != b.last_ship and a.started_at < b.finished_at
                  and b.started_at < a.finished_at for a in done for b in done)
    assert overlap, "two ships worked at the same time"
    assert world.ledger_matches_server()


def test_two_factories_share_one_fleet(world):
    storage, chain = world.storage, default_supply_chain()
    opts = RunOptions(**FAST)
    runtime = _runtime(world.client(), storage, chain, opts)
    runtime.discover()
    first = create_factory(runtime, storage, chain, "CLOTHING", opts)
    second = create_factory(runtime, storage, chain, "IRON_ORE", opts)
    assert _run(runtime, storage, [first.id, second.id]) == 0
    for factory_id in (first.id, second.id):
        assert storage.factories.load(factory_id).status is FactoryStatus.COMPLETED
    assert storage.assignments.all() == []
    assert world.ledger_matches_server()


def known_markets(world: World) -> list:
    """Put every market's current quotes in the database, as a scout would have."""
    now = datetime.now(UTC)
    snapshots = [MarketSnapshot.from_api(m.payload(True, {}), observed_at=now)
                 for m in world.game.universe.markets.values()]
    for snapshot in snapshots:
        world.storage.markets.record(snapshot)
    return snapshots


def test_a_failed_task_is_retried_on_another_ship(world):
    game = world.game
    source = resolve("IRON_ORE", default_supply_chain(), known_markets(world)).waypoint
    places = game.places
    near = min((w for w in game.universe.waypoints if w not in game.universe.markets),
               key=lambda w: distance(places[w], places[source]))
    frigate = game.ships["FACTORY-1"]
    frigate.waypoint, frigate.status, frigate.fuel = near, "IN_ORBIT", 0  # nearest, stranded
    code, f = world.produce("IRON_ORE")
    assert code == 0, f.error
    task = f.root_task()
    assert task.attempts == 1 and "no route" in task.last_error
    buyer = {e.ship for e in world.storage.ledger.entries(factory=f.id) if e.kind == "PURCHASE"}
    assert buyer == {"FACTORY-3"}, "the shuttle did it"


def test_a_lost_ship_gives_its_task_to_another(world):
    world.server.faults = FaultPlan.parse("lose=purchase:1")
    code, f = world.produce("IRON_ORE")
    assert code == 0, f.error
    task = f.root_task()
    assert task.units_lost == 40 and task.units_held == 40 == f.units_acquired
    buyers = [e.ship for e in world.storage.ledger.entries(factory=f.id)
              if e.kind == "PURCHASE"]
    assert len(buyers) == 2 and buyers[0] != buyers[1]
    assert held_by_fleet(world, "IRON_ORE") == 40
    assert world.ledger_matches_server()


def test_not_enough_credits_fails_with_one_reason(world):
    world.game.agents["FACTORY"].credits = 50
    code, f = world.produce("IRON_ORE")
    assert code == 1 and f.status is FactoryStatus.FAILED
    assert f.error.startswith("not enough credits: 50 left")
    assert world.storage.assignments.all() == []


def test_reserve_is_never_spent(world):
    credits = world.client().agent().credits
    code, f = world.produce("IRON_ORE", reserve=credits - 500)
    assert code == 0
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
    code, f = world.produce("IRON_ORE", chain=odd_chain)
    assert code == 1 and f.status is FactoryStatus.FAILED
    assert "no exporter of IRON_ORE" in f.error and "lower the supply threshold" in f.error


def test_units_cycle_until_held(world):
    code, f = world.produce("IRON_ORE", units=70)
    assert code == 0 and f.units_acquired >= 70 and f.round >= 2
    assert held_by_fleet(world, "IRON_ORE") >= 70


def test_status_report_of_a_finished_factory(world):
    from domain.report import render_status, status_dict

    _code, f = world.produce("CLOTHING")
    text = render_status(f, datetime.now(UTC))
    assert "Status: COMPLETED" in text and "Progress: 3/3 nodes completed" in text
    assert "✅ DONE" in text and "FERTILIZERS [BUY at" in text
    received = sum(t.revenue for t in f.tasks.values())
    assert received > 0 and (f"got {received:,} back for the inputs delivered: net "
                             f"{f.credits_spent:,}") in text
    data = status_dict(f, datetime.now(UTC))
    assert data["tree"]["task"]["state"] == "DONE"
    assert data["tree"]["children"][0]["children"][0]["task"]["units_delivered"] > 0


def test_a_runner_whose_factory_is_taken_over_lets_go(world):
    import threading
    import time

    storage, result = world.storage, {}
    runner = threading.Thread(target=lambda: result.update(
        code=world.produce("ADVANCED_CIRCUITRY")[0]))
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
    assert not runner.is_alive() and result["code"] == 1
    after = storage.factories.summary(summary.id)
    assert after.owner == "elsewhere:1:x" and after.status is FactoryStatus.ACTIVE
