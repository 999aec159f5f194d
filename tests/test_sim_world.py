"""The simulator's worlds and economy: captured systems load faithfully, generated ones
contain every good, and feeding a starved exporter is what raises its supply."""

import json

import pytest

from domain.enums import Acquisition, ActivityLevel, SupplyLevel, TradeType
from domain.markets import MarketSnapshot
from domain.plan import resolve
from sim.economy import ECONOMIES, Stock, price_factor
from sim.server import build_game
from sim.universe import STARVED, drop_nulls, generate_universe
from storage.files import default_supply_chain
from tests.conftest import DATA

AD75 = DATA / "X1-AD75"


class ManualClock:
    def __init__(self):
        self.t = 1_800_000_000.0

    def __call__(self):
        return self.t


@pytest.mark.reference
def test_captured_system_reproduces_its_markets():
    game = build_game(universe_dir=AD75)
    captured = json.loads((AD75 / "markets.json").read_text())
    assert len(game.universe.markets) == len(captured) == 25
    for m in captured:
        served = game.universe.markets[m["symbol"]].payload(True, {})
        for kind in ("exports", "imports", "exchange"):
            assert [g["symbol"] for g in served[kind]] == [g["symbol"] for g in m[kind]]
        quotes = {q["symbol"]: q for q in served["tradeGoods"]}
        for q in m["tradeGoods"]:
            got = quotes[q["symbol"]]
            assert (got["supply"], got["tradeVolume"], got["purchasePrice"], got["sellPrice"]) \
                == (q["supply"], q["tradeVolume"], q["purchasePrice"], q["sellPrice"])
            assert got.get("activity") == q["activity"]
    waypoints = json.loads((AD75 / "waypoints.json").read_text())
    assert game.waypoints("X1-AD75", None, []) == [drop_nulls(w) for w in waypoints]
    assert game.system("X1-AD75")["sectorSymbol"] == "X1"
    assert game.universe.headquarters == "X1-AD75-A1"
    assert game.universe.start_probe_at == "X1-AD75-H52"
    yard = game.shipyard(None, "X1-AD75", "X1-AD75-A2")
    assert {t["type"] for t in yard["shipTypes"]} == {"SHIP_PROBE", "SHIP_LIGHT_HAULER",
                                                      "SHIP_LIGHT_SHUTTLE"}
    assert game.universe.shipyards["X1-AD75-A2"].prices["SHIP_LIGHT_HAULER"] == 272_775


@pytest.mark.reference
def test_captured_system_plans_like_the_offline_planner():
    game = build_game(universe_dir=AD75)
    markets = [MarketSnapshot.from_api(m.payload(True, {})) for m in game.universe.markets.values()]
    tree = resolve("CLOTHING", default_supply_chain(), markets, min_supply=SupplyLevel.ABUNDANT)
    assert [n.waypoint for n in tree.flatten()] == ["X1-AD75-K81", "X1-AD75-E46", "X1-AD75-G50"]


def test_generated_world_has_an_exporter_for_every_good_and_starved_chains():
    chain = default_supply_chain()
    universe = generate_universe(11, chain)
    exported = {s for m in universe.markets.values() for s, g in m.goods.items()
                if g.type is TradeType.EXPORT}
    assert set(chain.as_dict()) <= exported
    for good in STARVED:
        sellers = [m for m in universe.markets.values()
                   if good in m.goods and m.goods[good].type is not TradeType.IMPORT]
        assert len(sellers) == 1
        stock = sellers[0].goods[good]
        assert stock.supply is SupplyLevel.SCARCE and stock.type is TradeType.EXPORT
    markets = [MarketSnapshot.from_api(m.payload(True, {})) for m in universe.markets.values()]
    depths = {k: resolve(v, chain, markets).depth() for k, v in universe.showcase.items()}
    assert depths == {"buy": 0, "depth2": 2, "depth3": 3}
    assert resolve(universe.showcase["depth2"], chain, markets).method is Acquisition.FABRICATE
    hq = universe.waypoints[universe.headquarters]
    assert universe.start_probe_at in {o["symbol"] for o in hq["orbitals"]}
    assert universe.waypoints[universe.start_probe_at]["x"] == hq["x"]


def test_generation_is_repeatable_per_seed():
    chain = default_supply_chain()
    a, b, c = (generate_universe(s, chain) for s in (3, 3, 4))
    assert a.system == b.system and a.system != c.system
    assert {w: m.goods.keys() for w, m in a.markets.items()} == \
        {w: m.goods.keys() for w, m in b.markets.items()}


def _starved_fabrics(delivered: int, economy: str = "gentle", lots: int = 1):
    clock = ManualClock()
    game = build_game(seed=11, time_scale=1.0, now=clock, economy=economy)
    agent_data = game.register({"symbol": "FEEDER", "faction": "COSMIC"})
    agent = game.agents["FEEDER"]
    ship = agent_data["ships"][0]["symbol"]
    exporter = next(m for m in game.universe.markets.values()
                    if "FABRICS" in m.goods and m.goods["FABRICS"].type is TradeType.EXPORT)
    game.ships[ship].waypoint = exporter.waypoint  # the delivery run itself is tested elsewhere
    tick = exporter.economy.tick_seconds
    system = exporter.waypoint.rsplit("-", 1)[0]
    seen = []
    for lot in range(lots):
        if delivered:
            game.ships[ship].cargo["FERTILIZERS"] = delivered
            game.sell(agent, ship, {"symbol": "FERTILIZERS", "units": delivered})
        if lot < lots - 1:
            clock.t += 3 * tick
    for _ in range(12):
        clock.t += tick
        quote = next(q for q in game.market(agent, system, exporter.waypoint)["tradeGoods"]
                     if q["symbol"] == "FABRICS")
        seen.append((SupplyLevel.parse(quote["supply"]), quote["activity"]))
    return seen


def test_feeding_a_starved_exporter_raises_its_supply():
    fed = _starved_fabrics(40)
    assert fed[0][1] in ("WEAK", "GROWING", "STRONG"), "inputs stocked: no longer RESTRICTED"
    assert fed[-1][0] >= SupplyLevel.MODERATE
    assert [s for s, _ in fed] == sorted(s for s, _ in fed), "supply only rises meanwhile"


def test_without_inputs_a_starved_exporter_stays_scarce_and_restricted():
    starved = _starved_fabrics(0)
    assert {s for s, _ in starved} == {SupplyLevel.SCARCE}
    assert {a for _, a in starved} == {"RESTRICTED"}


def test_a_hungry_economy_needs_several_lots_and_drains_output():
    one = _starved_fabrics(40, economy="hungry")
    assert max(s for s, _ in one) < SupplyLevel.MODERATE, "one lot is not enough"
    assert one[-1][0] <= one[4][0], "and what it made drains away"
    four = _starved_fabrics(40, economy="hungry", lots=4)
    assert max(s for s, _ in four) >= SupplyLevel.MODERATE, "several lots lift it"


def test_economy_profiles_are_named_and_unknown_ones_refused():
    assert set(ECONOMIES) >= {"gentle", "hungry", "slow", "strict"}
    assert ECONOMIES["slow"].production_rate(ActivityLevel.WEAK) == pytest.approx(
        ECONOMIES["gentle"].production_rate(ActivityLevel.WEAK) / 3)
    assert ECONOMIES["strict"].production_rate(ActivityLevel.RESTRICTED) == 0.05
    with pytest.raises(ValueError, match="unknown economy 'lavish'"):
        build_game(seed=1, economy="lavish")


def test_prices_follow_stock_and_volume_grows_with_trade():
    stock = Stock.at_level("IRON", TradeType.EXPORT, 60, 40.0, SupplyLevel.ABUNDANT,
                           ActivityLevel.WEAK)
    cheap = stock.purchase_price
    assert stock.purchase_price == pytest.approx(stock.sell_price * 2.05, abs=1)
    stock.trade(-60)
    assert stock.purchase_price > cheap, "buying raises the price"
    stock.trade(+120)
    assert stock.purchase_price < cheap, "selling lowers it"
    for _ in range(3):
        stock.trade(-60)
    assert stock.trade_volume == 66
    assert price_factor(0, 20) == 2.2 and price_factor(10_000, 20) == 0.45
    exchange = Stock.at_level("FUEL", TradeType.EXCHANGE, 180, 55.0, SupplyLevel.MODERATE)
    assert exchange.purchase_price == pytest.approx(exchange.sell_price * 1.06, abs=1)
    assert "activity" not in exchange.quote()
