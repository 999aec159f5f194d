"""The simulator's endpoints: shapes checked against the official spec, and the game rules."""

import time

import pytest

from domain.navigation import Place, distance, fuel_cost, travel_seconds
from sim.server import ROUTES
from tests.conftest import Raw
from tests.spec import spec


def wait_arrival(raw, ship):
    while True:
        nav = raw.get(f"/my/ships/{ship}/nav").json()["data"]
        if nav["status"] != "IN_TRANSIT":
            return nav
        time.sleep(0.02)


def fly(raw, ship, dest, game):
    game.ships[ship].fuel = game.ships[ship].type.fuel_capacity  # shapes, not fuel, matter here
    raw.post(f"/my/ships/{ship}/orbit")
    r = raw.post(f"/my/ships/{ship}/navigate", {"waypointSymbol": dest})
    assert r.status_code == 200, r.text
    wait_arrival(raw, ship)
    raw.post(f"/my/ships/{ship}/dock")
    return r.json()["data"]


@pytest.fixture
def world(sim_factory):
    record = []
    server = sim_factory(seed=5, record=record)
    raw = Raw(server.url)
    reg = raw.register()
    return server, raw, reg, record


def markets_selling(server, good):
    return [w for w, m in server.game.universe.markets.items()
            if good in m.goods and m.goods[good].type.value != "IMPORT"]


@pytest.mark.reference
def test_every_response_matches_the_official_spec(world):
    server, raw, reg, record = world
    frigate, probe = (s["symbol"] for s in reg["ships"])
    system = reg["agent"]["headquarters"].rsplit("-", 1)[0]
    hq = reg["agent"]["headquarters"]
    yard = server.game.universe.start_probe_at
    raw.get("/")
    raw.get("/my/agent")
    raw.get("/my/ships", limit=1, page=2)
    raw.get(f"/my/ships/{frigate}")
    raw.get(f"/my/ships/{frigate}/cargo")
    raw.get(f"/my/ships/{frigate}/cooldown")
    raw.get(f"/systems/{system}")
    raw.get(f"/systems/{system}/waypoints", limit=20, traits="MARKETPLACE")
    raw.get(f"/systems/{system}/waypoints/{hq}")
    raw.get(f"/systems/{system}/waypoints/{hq}/market")
    raw.get(f"/systems/{system}/waypoints/{yard}/shipyard")
    raw.get(f"/systems/{system}/waypoints/{yard}/market", token="")
    raw.get("/market/supply-chain")
    raw.post(f"/my/ships/{frigate}/refuel", {"units": 10})
    seller = markets_selling(server, "IRON_ORE")[0]
    fly(raw, frigate, seller, server.game)
    raw.call("PATCH", f"/my/ships/{frigate}/nav", {"flightMode": "BURN"})
    assert raw.get(f"/my/ships/{frigate}/nav").json()["data"]["flightMode"] == "BURN"
    raw.call("PATCH", f"/my/ships/{frigate}/nav", {"flightMode": "CRUISE"})
    raw.get(f"/systems/{system}/waypoints/{seller}/market")
    raw.post(f"/my/ships/{frigate}/purchase", {"symbol": "IRON_ORE", "units": 10})
    raw.post(f"/my/ships/{frigate}/jettison", {"symbol": "IRON_ORE", "units": 1})
    raw.post(f"/my/ships/{frigate}/refuel", {})
    buyer = next(w for w, m in server.game.universe.markets.items()
                 if "IRON_ORE" in m.goods and m.goods["IRON_ORE"].type.value == "IMPORT")
    fly(raw, frigate, buyer, server.game)
    raw.post(f"/my/ships/{frigate}/sell", {"symbol": "IRON_ORE", "units": 9})
    fly(raw, probe, hq, server.game)
    raw.post(f"/my/ships/{frigate}/purchase", {"symbol": "FUEL", "units": 1})
    fly(raw, frigate, yard, server.game)
    raw.post(f"/my/ships/{frigate}/orbit")
    raw.post(f"/my/ships/{probe}/orbit")
    raw.get(f"/systems/{system}/waypoints/{yard}/shipyard")
    raw.post("/my/ships", {"shipType": "SHIP_LIGHT_SHUTTLE", "waypointSymbol": yard})
    new = raw.get("/my/ships").json()["data"][-1]["symbol"]
    raw.post(f"/my/ships/{new}/orbit")
    raw.post(f"/my/ships/{frigate}/transfer", {"tradeSymbol": "FUEL", "units": 1,
                                               "shipSymbol": new})
    gate = next(iter(server.game.universe.constructions))
    raw.get(f"/systems/{system}/waypoints/{gate}/construction")
    server.game.ships[frigate].cargo["FAB_MATS"] = 5
    server.game.ships[frigate].waypoint = gate  # the flight is tested elsewhere
    raw.post(f"/systems/{system}/waypoints/{gate}/construction/supply",
             {"shipSymbol": frigate, "tradeSymbol": "FAB_MATS", "units": 5})
    contract = raw.get("/my/contracts").json()["data"][0]
    term = contract["terms"]["deliver"][0]
    raw.get(f"/my/contracts/{contract['id']}")
    raw.post(f"/my/contracts/{contract['id']}/accept")
    server.game.ships[frigate].cargo[term["tradeSymbol"]] = term["unitsRequired"]
    server.game.ships[frigate].waypoint = term["destinationSymbol"]
    raw.post(f"/my/contracts/{contract['id']}/deliver",
             {"shipSymbol": frigate, "tradeSymbol": term["tradeSymbol"],
              "units": term["unitsRequired"]})
    raw.post(f"/my/contracts/{contract['id']}/fulfill")
    raw.post(f"/my/ships/{frigate}/negotiate/contract")
    raw.post(f"/my/ships/{frigate}/navigate", {"waypointSymbol": hq})
    raw.post(f"/my/ships/{frigate}/dock")  # 4214 if still in transit
    raw.post(f"/my/ships/{probe}/jettison", {"symbol": "GOLD", "units": 1})  # 4219
    raw.post(f"/my/ships/{frigate}/purchase", {"symbol": "NOPE"})  # 422
    raw.get("/my/ships/NOBODY-1")  # 404

    ok_paths = {(x.method, x.spec_path) for x in record if x.status < 300}
    assert ok_paths == {(r.method, r.spec_path) for r in ROUTES}, "every endpoint once at least"
    assert {x.status for x in record} >= {200, 201, 204, 400, 404, 422}
    problems = []
    for x in record:
        for err in spec().response_errors(x.method, x.spec_path, x.status, x.response):
            problems.append(f"{x.method} {x.spec_path} {x.status}: {err}")
    assert not problems, "\n".join(problems[:20])


def test_construction_sites_and_contracts_follow_the_rules(world):
    server, raw, reg, _ = world
    game = server.game
    frigate = reg["ships"][0]["symbol"]
    system = reg["agent"]["headquarters"].rsplit("-", 1)[0]
    gate = next(iter(game.universe.constructions))
    assert game.universe.waypoints[gate]["isUnderConstruction"]
    site = f"/systems/{system}/waypoints/{gate}/construction"
    needs = {m["tradeSymbol"]: m["required"] - m["fulfilled"]
             for m in raw.get(site).json()["data"]["materials"]}
    assert needs == {"FAB_MATS": 1600, "ADVANCED_CIRCUITRY": 400, "QUANTUM_STABILIZERS": 0}

    def supply(good, units):
        return raw.post(site + "/supply", {"shipSymbol": frigate, "tradeSymbol": good,
                                           "units": units})

    game.ships[frigate].cargo["FAB_MATS"] = 10
    assert supply("FAB_MATS", 5).json()["error"]["code"] == 4802, "not there yet"
    game.ships[frigate].waypoint = gate  # flights are tested elsewhere
    assert supply("IRON", 1).json()["error"]["code"] == 4800
    assert supply("QUANTUM_STABILIZERS", 1).json()["error"]["code"] == 4801
    assert supply("FAB_MATS", 20).json()["error"]["code"] == 4219, "only 10 in the hold"
    done = supply("FAB_MATS", 10)
    assert done.status_code == 201 and done.json()["data"]["cargo"]["units"] == 0
    assert raw.get(site).json()["data"]["materials"][0]["fulfilled"] == 10
    assert raw.get(f"/systems/{system}/waypoints/{reg['agent']['headquarters']}/construction"
                   ).status_code == 404

    contract = game.offer_contract("TESTER", "IRON_ORE", 30, gate, 500, 3_000)
    base = f"/my/contracts/{contract.id}"
    deliver = {"shipSymbol": frigate, "tradeSymbol": "IRON_ORE", "units": 30}
    assert raw.post(base + "/deliver", deliver).json()["error"]["code"] == 4505
    credits = game.agents["TESTER"].credits
    assert raw.post(base + "/accept").json()["data"]["agent"]["credits"] == credits + 500
    assert raw.post(base + "/accept").json()["error"]["code"] == 4501
    assert raw.post(base + "/fulfill").json()["error"]["code"] == 4502
    game.ships[frigate].cargo["IRON_ORE"] = 40
    assert raw.post(base + "/deliver", {**deliver, "units": 31}).json()["error"]["code"] == 4509
    assert raw.post(base + "/deliver", {**deliver, "tradeSymbol": "GOLD"}
                    ).json()["error"]["code"] == 4508
    assert raw.post(base + "/deliver", deliver).json()["data"]["contract"]["terms"][
        "deliver"][0]["unitsFulfilled"] == 30
    assert raw.post(base + "/fulfill").json()["data"]["agent"]["credits"] == credits + 3_500
    assert raw.post(base + "/fulfill").json()["error"]["code"] == 4504
    assert [(e.kind, e.units, e.credits) for e in game.books[-3:]] == [
        ("CONTRACT", 0, 500), ("DELIVER", 30, 0), ("CONTRACT", 0, 3_000)]


@pytest.mark.reference
def test_a_captured_gate_is_a_construction_site(sim_factory, shared):
    server = sim_factory(universe_dir=shared / "spacetraders-data" / "X1-AD75")
    site = server.game.universe.constructions["X1-AD75-I55"]
    assert {m.good: m.required for m in site.materials.values()} == {
        "FAB_MATS": 1600, "ADVANCED_CIRCUITRY": 400, "QUANTUM_STABILIZERS": 1}


def test_travel_time_and_fuel_follow_the_formulas(world):
    server, raw, reg, _ = world
    frigate = reg["ships"][0]
    here = frigate["nav"]["waypointSymbol"]
    dest = markets_selling(server, "IRON_ORE")[0]
    w = server.game.universe.waypoints
    d = distance(Place(here, w[here]["x"], w[here]["y"]), Place(dest, w[dest]["x"], w[dest]["y"]))
    raw.post(f"/my/ships/{frigate['symbol']}/orbit")
    data = raw.post(f"/my/ships/{frigate['symbol']}/navigate", {"waypointSymbol": dest}).json()
    nav, fuel = data["data"]["nav"], data["data"]["fuel"]
    from datetime import datetime

    def ts(s):
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

    scale = server.game.clock.scale
    flight = ts(nav["route"]["arrival"]) - ts(nav["route"]["departureTime"])
    assert flight == pytest.approx(travel_seconds(d, 36) / scale, abs=0.002)
    assert fuel["consumed"]["amount"] == fuel_cost(d) == 400 - fuel["current"]
    assert nav["status"] == "IN_TRANSIT" and nav["waypointSymbol"] == dest
    r = raw.post(f"/my/ships/{frigate['symbol']}/dock")
    if r.status_code == 400:  # still flying: 4214 says when it lands
        err = r.json()["error"]
        assert err["code"] == 4214 and err["data"]["destinationSymbol"] == dest
        assert {"arrival", "departureTime", "secondsToArrival"} <= set(err["data"])
    assert wait_arrival(raw, frigate["symbol"])["status"] == "IN_ORBIT"


def test_game_rule_errors_carry_codes_and_data(sim_factory):
    server = sim_factory(seed=5, time_scale=0.001)  # flights never land in this test
    raw = Raw(server.url)
    reg = raw.register()
    frigate = reg["ships"][0]["symbol"]
    game = server.game

    def error(r, status, code):
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code, r.text
        return r.json()["error"]

    hq = reg["agent"]["headquarters"]
    error(raw.post(f"/my/ships/{frigate}/navigate", {"waypointSymbol": hq}), 400, 4236)
    error(raw.post(f"/my/ships/{frigate}/purchase", {"symbol": "FUEL", "units": 181}), 400, 4604)
    e = error(raw.post(f"/my/ships/{frigate}/purchase", {"symbol": "FUEL", "units": 41}), 400,
              4217)
    assert e["data"]["cargoCapacity"] == 40
    error(raw.post(f"/my/ships/{frigate}/purchase", {"symbol": "FOOD", "units": 1}), 400, 4601)
    error(raw.post(f"/my/ships/{frigate}/sell", {"symbol": "FOOD", "units": 1}), 400, 4219)
    error(raw.post(f"/my/ships/{frigate}/sell", {"symbol": "IRON_ORE", "units": 1}), 400, 4602)
    game.agents["TESTER"].credits = 10
    e = error(raw.post(f"/my/ships/{frigate}/purchase", {"symbol": "FUEL", "units": 5}), 400,
              4600)
    assert e["data"]["agentCredits"] == 10 and e["data"]["units"] == 5
    e = error(raw.post("/my/ships", {"shipType": "SHIP_PROBE",
                                     "waypointSymbol": game.universe.start_probe_at}), 400, 4216)
    assert e["data"] == {"creditsAvailable": 10, "creditsNeeded": 21_627}
    error(raw.post("/my/ships", {"shipType": "SHIP_PROBE", "waypointSymbol": hq}), 404, 404)
    raw.post(f"/my/ships/{frigate}/orbit")
    error(raw.post(f"/my/ships/{frigate}/purchase", {"symbol": "FUEL", "units": 1}), 400, 4244)
    error(raw.post(f"/my/ships/{frigate}/refuel"), 400, 4225)
    error(raw.post(f"/my/ships/{frigate}/navigate", {"waypointSymbol": hq}), 400, 4204)
    error(raw.post(f"/my/ships/{frigate}/navigate", {"waypointSymbol": "X9-ZZ99-A1"}), 400, 4202)
    far = max(game.universe.waypoints, key=lambda s: abs(game.universe.waypoints[s]["x"]))
    game.ships[frigate].fuel = 1
    e = error(raw.post(f"/my/ships/{frigate}/navigate", {"waypointSymbol": far}), 400, 4203)
    assert e["data"]["fuelAvailable"] == 1 and e["data"]["fuelRequired"] > 1
    game.ships[frigate].fuel = 400
    raw.post(f"/my/ships/{frigate}/navigate", {"waypointSymbol": far})
    e = error(raw.post(f"/my/ships/{frigate}/orbit"), 400, 4214)
    assert e["data"]["secondsToArrival"] > 0
    e = error(raw.call("PATCH", f"/my/ships/{frigate}/nav", {"flightMode": "DRIFT"}), 400, 4200)
    error(raw.post(f"/my/ships/{frigate}/purchase", {"units": 0}), 422, 422)
    error(raw.post("/my/ships/X/purchase", {"symbol": "FUEL", "units": 1}), 404, 404)
    error(raw.get("/systems/X1-NOPE"), 404, 404)
    error(raw.get("/my/agent", token="garbage"), 401, 401)
    error(raw.get("/my/agent", token=None), 401, 4103)
    error(raw.post("/register", {"symbol": "TESTER", "faction": "COSMIC"}, token="acct"), 409,
          4111)
    error(raw.post("/register", {"symbol": "AB", "faction": "NOPE"}, token="acct"), 422, 422)
    error(raw.get("/my/ships", limit=21), 422, 422)
    error(raw.get("/nowhere"), 404, 404)


def test_token_from_before_a_reset_is_refused_plainly(sim_factory):
    old = sim_factory(seed=5)
    token = Raw(old.url).register()["token"]
    time.sleep(0.002)
    new = sim_factory(seed=5)
    r = Raw(new.url, token).get("/my/agent")
    assert r.status_code == 401
    assert "reset_date does not match the server" in r.json()["error"]["message"]


def test_market_quotes_only_with_a_ship_present(world):
    server, raw, reg, _ = world
    hq = reg["agent"]["headquarters"]
    system = hq.rsplit("-", 1)[0]
    other = next(w for w in server.game.universe.markets if w not in (
        hq, server.game.universe.start_probe_at))
    here = raw.get(f"/systems/{system}/waypoints/{hq}/market").json()["data"]
    there = raw.get(f"/systems/{system}/waypoints/{other}/market").json()["data"]
    assert "tradeGoods" in here and "transactions" in here
    assert "tradeGoods" not in there and there["exports"] + there["imports"] + there["exchange"]
    public = raw.get(f"/systems/{system}/waypoints/{hq}/market", token="").json()["data"]
    assert "tradeGoods" not in public


def test_refuel_bills_market_units_and_trade_moves_price(world):
    server, raw, reg, _ = world
    frigate = reg["ships"][0]["symbol"]
    server.game.ships[frigate].fuel = 166
    before = raw.get("/my/agent").json()["data"]["credits"]
    data = raw.post(f"/my/ships/{frigate}/refuel").json()["data"]
    tx = data["transaction"]
    assert data["fuel"]["current"] == 400 and tx["units"] == 3 and tx["tradeSymbol"] == "FUEL"
    assert data["agent"]["credits"] == before - tx["totalPrice"] == before - 3 * tx["pricePerUnit"]
    hq = reg["agent"]["headquarters"]
    market_path = f"/systems/{hq.rsplit('-', 1)[0]}/waypoints/{hq}/market"

    def fuel_quote():
        return next(g for g in raw.get(market_path).json()["data"]["tradeGoods"]
                    if g["symbol"] == "FUEL")

    first = fuel_quote()
    for _ in range(4):
        raw.post(f"/my/ships/{frigate}/purchase", {"symbol": "FUEL", "units": 10})
    assert fuel_quote()["purchasePrice"] > first["purchasePrice"]
    assert raw.get(market_path).json()["data"]["transactions"][-1]["units"] == 10


def test_pagination_and_waypoint_filters(world):
    server, raw, reg, _ = world
    system = reg["agent"]["headquarters"].rsplit("-", 1)[0]
    all_ = server.game.universe.waypoints
    seen = []
    page = 1
    while True:
        body = raw.get(f"/systems/{system}/waypoints", limit=20, page=page).json()
        assert body["meta"] == {"total": len(all_), "page": page, "limit": 20}
        if not body["data"]:
            break
        seen += [w["symbol"] for w in body["data"]]
        page += 1
    assert seen == list(all_)
    markets = raw.get(f"/systems/{system}/waypoints", limit=20, traits="MARKETPLACE").json()
    assert markets["meta"]["total"] == len(server.game.universe.markets)
    both = raw.get(f"/systems/{system}/waypoints", traits=["MARKETPLACE", "SHIPYARD"]).json()
    assert [w["symbol"] for w in both["data"]] == list(server.game.universe.shipyards)
    fuel = raw.get(f"/systems/{system}/waypoints", type="FUEL_STATION").json()
    assert fuel["meta"]["total"] == 3


def test_lost_ship_answers_404(world):
    server, raw, reg, _ = world
    probe = reg["ships"][1]["symbol"]
    assert server.game.lose_ship(probe) and not server.game.lose_ship(probe)
    r = raw.get(f"/my/ships/{probe}")
    assert r.status_code == 404 and r.json()["error"]["data"]["shipSymbol"] == probe
    assert raw.get("/my/agent").json()["data"]["shipCount"] == 1


def test_binds_to_loopback_only():
    from sim.server import SimServer, build_game

    with pytest.raises(ValueError, match="loopback only"):
        SimServer(build_game(seed=1), host="0.0.0.0")
