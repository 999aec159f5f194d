"""The simulator's game rules: agents, ships, travel, trade, and the errors the real API gives.

Every public method is one endpoint. It runs under one lock, reads the time from the
injected clock, and returns the `data` payload or raises SimError with the real error
code, message shape and `data`.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from domain.enums import FlightMode, TradeType
from domain.markets import system_of
from domain.navigation import Place, distance, fuel_cost, refuel_market_units, travel_seconds
from domain.supply_chain import SupplyChain
from sim.deliveries import ConstructionSite, Contract, Term, new_contract_id
from sim.economy import MarketState
from sim.ships import SHIP_TYPES, ShipType
from sim.universe import FACTIONS, Universe

STARTING_CREDITS = 175_000
SPEED_ORDER = [FlightMode.DRIFT, FlightMode.STEALTH, FlightMode.CRUISE, FlightMode.BURN]


class SimError(Exception):
    """An API error: HTTP status plus the `{"error": {code, message, data}}` body."""

    def __init__(self, status: int, code: int, message: str, data: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.data = status, code, message, data

    def body(self) -> dict:
        error = {"message": self.message, "code": self.code}
        if self.data is not None:
            error["data"] = self.data
        return {"error": error}


def iso(ts: float) -> str:
    """`2025-04-09T17:25:34.980Z`, the API's timestamp format."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class SimClock:
    """Real UTC time for timestamps; game time runs `time_scale` times faster."""

    def __init__(self, time_scale: float = 1.0, now=time.time):
        if time_scale <= 0:
            raise ValueError("time scale must be positive")
        self.scale = time_scale
        self._now = now
        self._start = now()

    def now(self) -> float:
        return self._now()

    def game_now(self) -> float:
        return (self._now() - self._start) * self.scale

    def after(self, game_seconds: float) -> float:
        """The real moment `game_seconds` of game time from now."""
        return self._now() + game_seconds / self.scale


@dataclass(frozen=True)
class Entry:
    """One line of the server's books: what an agent's ship bought, sold, refuelled,
    supplied or delivered, and the credits it moved (positive either way)."""

    agent: str
    ship: str
    waypoint: str
    good: str
    kind: str  # PURCHASE, SELL, REFUEL, SHIP, SUPPLY or DELIVER
    units: int
    credits: int


@dataclass
class ShipState:
    symbol: str
    agent: str
    type: ShipType
    parts: dict
    waypoint: str
    status: str = "DOCKED"
    flight_mode: FlightMode = FlightMode.CRUISE
    origin: str = ""
    departure: float = 0.0
    arrival: float = 0.0
    fuel: int = 0
    consumed: tuple[int, float] = (0, 0.0)
    cargo: dict[str, int] = field(default_factory=dict)

    @property
    def cargo_units(self) -> int:
        return sum(self.cargo.values())

    @property
    def cargo_capacity(self) -> int:
        return self.type.cargo_capacity


@dataclass
class AgentState:
    symbol: str
    account_id: str
    faction: str
    headquarters: str
    credits: int
    ships: list[str] = field(default_factory=list)
    next_ship: int = 1


class Game:
    def __init__(self, universe: Universe, chain: SupplyChain, clock: SimClock,
                 trade_goods: dict[str, dict], account_token: str | None = None,
                 starting_credits: int = STARTING_CREDITS):
        self.universe = universe
        self.chain = chain
        self.clock = clock
        self.trade_goods = trade_goods
        self.account_token = account_token
        self.starting_credits = starting_credits  # the real game's 175,000 unless benchmarking
        self.lock = threading.RLock()
        self.reset_id = iso(clock.now())
        self.agents: dict[str, AgentState] = {}
        self.tokens: dict[str, str] = {}
        self.ships: dict[str, ShipState] = {}
        self._ids = itertools.count(1)
        self.books: list[Entry] = []  # every credit or good that changed hands, in order
        self.contracts: dict[str, Contract] = {}
        self.places = {s: Place(s, w["x"], w["y"]) for s, w in universe.waypoints.items()}

    # --- auth ----------------------------------------------------------------------------

    def agent_for(self, token: str | None) -> AgentState:
        if not token:
            raise SimError(401, 4103, "Missing bearer token. Please provide a valid token.")
        symbol = self.tokens.get(token)
        if symbol is None:
            claims = _claims(token)
            if claims and claims.get("reset_date") != self.reset_id:
                raise SimError(401, 401, "Failed to parse token. Token reset_date does not "
                               "match the server. Server resets happen on a weekly to "
                               "bi-weekly frequency during alpha. After a reset, you should "
                               "re-register your agent.")
            raise SimError(401, 401, "Failed to parse token. Token is invalid or expired.")
        return self.agents[symbol]

    def check_account(self, token: str | None) -> None:
        if not token:
            raise SimError(401, 4103, "Missing bearer token. Please provide a valid token.")
        if token in self.tokens or (self.account_token and token != self.account_token):
            raise SimError(401, 4104, "Invalid account token.")

    # --- server and agent ----------------------------------------------------------------

    def status(self) -> dict:
        reset_day = self.reset_id[:10]
        richest = sorted(self.agents.values(), key=lambda a: -a.credits)[:10]
        return {
            "status": "SpaceTraders is currently online and available to play",
            "version": "v2.3.0", "resetDate": reset_day,
            "description": "A local SpaceTraders simulator (goods-factory).",
            "stats": {"accounts": len(self.agents), "agents": len(self.agents),
                      "ships": len(self.ships), "systems": 1,
                      "waypoints": len(self.universe.waypoints)},
            "leaderboards": {"mostCredits": [{"agentSymbol": a.symbol, "credits": a.credits}
                                             for a in richest],
                             "mostSubmittedCharts": []},
            "serverResets": {"next": iso(self.clock.now() + 7 * 86400), "frequency": "weekly"},
            "announcements": [], "links": [],
        }

    def register(self, body: dict) -> dict:
        symbol, faction = body.get("symbol"), body.get("faction")
        problems = {}
        if not isinstance(symbol, str) or not 3 <= len(symbol) <= 14:
            problems["symbol"] = ["The symbol must be between 3 and 14 characters."]
        if faction not in FACTIONS:
            problems["faction"] = ["The faction must be a valid faction symbol."]
        if problems:
            raise _invalid(problems)
        symbol = symbol.upper()
        if symbol in self.agents:
            raise SimError(409, 4111, f"Cannot register agent. Agent symbol {symbol} has "
                           "already been claimed.", {"agentSymbol": symbol})
        agent = AgentState(symbol, secrets.token_hex(12), faction, self.universe.headquarters,
                           credits=self.starting_credits)
        self.agents[symbol] = agent
        token = _token(symbol, self.reset_id)
        self.tokens[token] = symbol
        frigate = self._new_ship(agent, SHIP_TYPES["SHIP_COMMAND_FRIGATE"],
                                 self.universe.headquarters)
        probe = self._new_ship(agent, SHIP_TYPES["SHIP_PROBE"], self.universe.start_probe_at)
        contract = self._starting_contract(agent)
        return {
            "token": token,
            "agent": self.agent_payload(agent),
            "faction": {"symbol": faction, "name": faction.title(),
                        "description": f"The {faction.title()} faction.",
                        "headquarters": self.universe.system["symbol"], "traits": [],
                        "isRecruiting": True},
            "contract": contract.payload(),
            "ships": [self.ship_payload(frigate), self.ship_payload(probe)],
        }

    def _starting_contract(self, agent: AgentState) -> Contract:
        """New agents are offered a procurement contract, as on the real server: here the
        universe's buyable showcase good, to a market that imports something."""
        good = self.universe.showcase.get("buy") or "IRON_ORE"
        destination = next((w for w, m in sorted(self.universe.markets.items())
                             if good in m.goods and m.goods[good].type is TradeType.IMPORT),
                            agent.headquarters)
        return self.offer_contract(agent.symbol, good, 60, destination)

    def offer_contract(self, agent: str, good: str, units: int, destination: str,
                       on_accepted: int = 2_000, on_fulfilled: int = 12_000) -> Contract:
        """Add a procurement contract to the agent's offers (tests and drills use it)."""
        now = self.clock.now()
        contract = Contract(new_contract_id(), agent, self.agents[agent].faction,
                            [Term(good, destination, units)], on_accepted, on_fulfilled,
                            deadline=iso(now + 7 * 86400), expiration=iso(now + 86400))
        self.contracts[contract.id] = contract
        return contract

    def agent_payload(self, agent: AgentState) -> dict:
        return {"accountId": agent.account_id, "symbol": agent.symbol,
                "headquarters": agent.headquarters, "credits": agent.credits,
                "startingFaction": agent.faction, "shipCount": len(agent.ships)}

    def supply_chain(self) -> dict:
        return {"exportToImportMap": self.chain.as_dict()}

    # --- ships: reading ------------------------------------------------------------------

    def ship(self, agent: AgentState, symbol: str) -> ShipState:
        ship = self.ships.get(symbol)
        if ship is None or ship.agent != agent.symbol:
            raise SimError(404, 404, f"Ship {symbol} not found.", {"shipSymbol": symbol})
        self._settle(ship)
        return ship

    def list_ships(self, agent: AgentState) -> list[dict]:
        return [self.ship_payload(self.ship(agent, s)) for s in agent.ships]

    def lose_ship(self, symbol: str) -> bool:
        """Fault injection: the ship is gone (destroyed, or lost in a reset)."""
        ship = self.ships.pop(symbol, None)
        if ship is None:
            return False
        self.agents[ship.agent].ships.remove(symbol)
        return True

    # --- ships: actions ------------------------------------------------------------------

    def orbit(self, agent: AgentState, symbol: str) -> dict:
        ship = self._not_in_transit(agent, symbol)
        ship.status = "IN_ORBIT"
        return {"nav": self.nav_payload(ship)}

    def dock(self, agent: AgentState, symbol: str) -> dict:
        ship = self._not_in_transit(agent, symbol)
        ship.status = "DOCKED"
        return {"nav": self.nav_payload(ship)}

    def navigate(self, agent: AgentState, symbol: str, body: dict) -> dict:
        target = body.get("waypointSymbol")
        if not isinstance(target, str):
            raise _invalid({"waypointSymbol": ["The waypointSymbol field is required."]})
        ship = self._not_in_transit(agent, symbol)
        if ship.status != "IN_ORBIT":
            raise SimError(400, 4236, "Ship action failed. Ship is not currently in orbit at "
                           f"{ship.waypoint}.", {"waypointSymbol": ship.waypoint})
        if system_of(target) != system_of(ship.waypoint):
            raise SimError(400, 4202, f"Navigation failed. Waypoint {target} is outside of "
                           "the ship's current system.", {"waypointSymbol": target})
        if target not in self.universe.waypoints:
            raise SimError(404, 404, f"Waypoint {target} not found.", {"waypointSymbol": target})
        if target == ship.waypoint:
            raise SimError(400, 4204, f"Navigate request failed. Ship {symbol} is currently "
                           f"located at the destination.", {"destinationSymbol": target})
        d = distance(self.places[ship.waypoint], self.places[target])
        needed = fuel_cost(d, ship.flight_mode, ship.type.fuel_capacity)
        if needed > ship.fuel:
            raise SimError(400, 4203, f"Navigate request failed. Ship {symbol} requires "
                           f"{needed - ship.fuel} more fuel for navigation.",
                           {"shipSymbol": symbol, "fuelRequired": needed,
                            "fuelAvailable": ship.fuel})
        now = self.clock.now()
        ship.fuel -= needed
        ship.consumed = (needed, now)
        ship.origin, ship.waypoint = ship.waypoint, target
        ship.departure = now
        ship.arrival = self.clock.after(travel_seconds(d, ship.type.speed, ship.flight_mode))
        ship.status = "IN_TRANSIT"
        return {"nav": self.nav_payload(ship), "fuel": self.fuel_payload(ship), "events": []}

    def set_flight_mode(self, agent: AgentState, symbol: str, body: dict) -> dict:
        try:
            mode = FlightMode(body.get("flightMode"))
        except ValueError:
            raise _invalid({"flightMode": ["The flightMode must be a valid flight mode."]}
                           ) from None
        ship = self.ship(agent, symbol)
        if ship.status == "IN_TRANSIT" and mode is not ship.flight_mode:
            if SPEED_ORDER.index(mode) < SPEED_ORDER.index(ship.flight_mode):
                raise SimError(400, 4200, "Ship is in transit and cannot slow down to "
                               f"{mode.value}.", {"flightMode": mode.value})
            d = distance(self.places[ship.origin], self.places[ship.waypoint])
            extra = fuel_cost(d, mode, ship.type.fuel_capacity) - fuel_cost(
                d, ship.flight_mode, ship.type.fuel_capacity)
            if extra > ship.fuel:
                raise SimError(400, 4203, f"Ship {symbol} requires {extra - ship.fuel} more "
                               "fuel to change flight mode.",
                               {"shipSymbol": symbol, "fuelRequired": extra,
                                "fuelAvailable": ship.fuel})
            now = self.clock.now()
            left = max(0.0, ship.arrival - now)
            factor = travel_seconds(d, ship.type.speed, mode) / travel_seconds(
                d, ship.type.speed, ship.flight_mode)
            ship.arrival = now + left * factor
            ship.fuel -= max(0, extra)
        ship.flight_mode = mode
        return {"nav": self.nav_payload(ship), "fuel": self.fuel_payload(ship), "events": []}

    def refuel(self, agent: AgentState, symbol: str, body: dict) -> dict:
        ship = self._docked(agent, symbol, code=4225)
        market = self._market_here(ship)
        fuel_good = market.goods.get("FUEL") if market else None
        if fuel_good is None or fuel_good.type is TradeType.IMPORT:
            raise SimError(400, 4226, f"Ship refuel failed. Waypoint {ship.waypoint} does not "
                           "sell fuel.", {"waypointSymbol": ship.waypoint})
        room = ship.type.fuel_capacity - ship.fuel
        wanted = body.get("units")
        if wanted is not None and (not isinstance(wanted, int) or wanted < 1):
            raise _invalid({"units": ["The units must be a positive integer."]})
        added = room if wanted is None else min(wanted, room)
        units = refuel_market_units(added)
        from_cargo = bool(body.get("fromCargo"))
        if from_cargo and ship.cargo.get("FUEL", 0) < units:
            raise SimError(400, 4219, f"Failed to update ship cargo. Ship {symbol} cargo does "
                           f"not contain {units} unit(s) of FUEL.",
                           {"shipSymbol": symbol, "tradeSymbol": "FUEL",
                            "cargoUnits": ship.cargo.get("FUEL", 0), "unitsToRemove": units})
        price = 0 if from_cargo else fuel_good.purchase_price
        self._charge(agent, price * units, "FUEL", units, price)
        if from_cargo:
            self._remove_cargo(ship, "FUEL", units)
        else:
            fuel_good.trade(-units)
        ship.fuel += added
        tx = self._transaction(market, ship, "FUEL", "PURCHASE", units, price, booked="REFUEL")
        out = {"agent": self.agent_payload(agent), "fuel": self.fuel_payload(ship),
               "transaction": tx}
        if from_cargo:
            out["cargo"] = self.cargo_payload(ship)
        return out

    def purchase(self, agent: AgentState, symbol: str, body: dict) -> dict:
        good, units = _trade_args(body, "symbol")
        ship = self._docked(agent, symbol)
        market = self._market_here(ship)
        item = market.goods.get(good) if market else None
        if item is None or item.type is TradeType.IMPORT:
            raise SimError(400, 4601, f"Market purchase failed. Trade good {good} is not "
                           f"available at {ship.waypoint}.",
                           {"waypointSymbol": ship.waypoint, "tradeSymbol": good})
        self._check_volume(ship, good, units, item.trade_volume)
        room = ship.cargo_capacity - ship.cargo_units
        if units > room:
            raise SimError(400, 4217, f"Failed to update ship cargo. Cannot add {units} unit(s)"
                           f" to ship cargo. Exceeds max limit of {ship.cargo_capacity}.",
                           {"shipSymbol": symbol, "tradeSymbol": good, "units": units,
                            "cargoUnits": ship.cargo_units,
                            "cargoCapacity": ship.cargo_capacity})
        price = item.purchase_price
        self._charge(agent, price * units, good, units, price)
        item.trade(-units)
        ship.cargo[good] = ship.cargo.get(good, 0) + units
        tx = self._transaction(market, ship, good, "PURCHASE", units, price)
        return {"agent": self.agent_payload(agent), "cargo": self.cargo_payload(ship),
                "transaction": tx}

    def sell(self, agent: AgentState, symbol: str, body: dict) -> dict:
        good, units = _trade_args(body, "symbol")
        ship = self._docked(agent, symbol)
        market = self._market_here(ship)
        item = market.goods.get(good) if market else None
        if item is None:
            raise SimError(400, 4602, f"Market sell failed. Trade good {good} is not listed "
                           f"at {ship.waypoint}.",
                           {"waypointSymbol": ship.waypoint, "tradeSymbol": good})
        self._check_volume(ship, good, units, item.trade_volume)
        self._remove_cargo(ship, good, units)
        price = item.sell_price
        agent.credits += price * units
        item.trade(units)
        tx = self._transaction(market, ship, good, "SELL", units, price)
        return {"agent": self.agent_payload(agent), "cargo": self.cargo_payload(ship),
                "transaction": tx}

    def jettison(self, agent: AgentState, symbol: str, body: dict) -> dict:
        good, units = _trade_args(body, "symbol")
        ship = self._not_in_transit(agent, symbol)
        self._remove_cargo(ship, good, units)
        return {"cargo": self.cargo_payload(ship)}

    def transfer(self, agent: AgentState, symbol: str, body: dict) -> dict:
        good, units = _trade_args(body, "tradeSymbol")
        other_symbol = body.get("shipSymbol")
        ship = self._not_in_transit(agent, symbol)
        if other_symbol == symbol:
            raise SimError(400, 4233, "Cannot transfer cargo to the same ship.",
                           {"shipSymbol": symbol})
        other = self.ships.get(other_symbol or "")
        if other is None or other.agent != agent.symbol:
            raise SimError(400, 4231, f"Ship {other_symbol} not found for transfer.",
                           {"shipSymbol": other_symbol})
        self._settle(other)
        if (other.waypoint, other.status) != (ship.waypoint, ship.status):
            raise SimError(400, 4234, "Ships must be at the same waypoint and in the same "
                           "state to transfer cargo.",
                           {"fromShip": symbol, "toShip": other_symbol})
        if other.cargo_units + units > other.cargo_capacity:
            raise SimError(400, 4217, f"Cannot transfer {units} unit(s): exceeds the cargo of "
                           f"{other_symbol}.", {"shipSymbol": other_symbol, "units": units})
        self._remove_cargo(ship, good, units)
        other.cargo[good] = other.cargo.get(good, 0) + units
        return {"cargo": self.cargo_payload(ship)}

    def purchase_ship(self, agent: AgentState, body: dict) -> dict:
        type_, waypoint = body.get("shipType"), body.get("waypointSymbol")
        if not isinstance(type_, str) or not isinstance(waypoint, str):
            raise _invalid({"shipType": ["The shipType and waypointSymbol fields are "
                                         "required."]})
        yard = self.universe.shipyards.get(waypoint)
        if yard is None:
            raise SimError(404, 404, f"Shipyard {waypoint} not found.",
                           {"waypointSymbol": waypoint})
        if not self._present(agent, waypoint):
            raise SimError(400, 4245, "Failed to purchase ship. Agent does not have a ship "
                           f"present at {waypoint}.", {"waypointSymbol": waypoint})
        if type_ not in yard.types:
            raise SimError(400, 4001, f"Shipyard {waypoint} does not sell {type_}.",
                           {"waypointSymbol": waypoint, "shipType": type_})
        price = yard.prices[type_]
        if agent.credits < price:
            raise SimError(400, 4216, "Failed to purchase ship. Agent has insufficient funds.",
                           {"creditsAvailable": agent.credits, "creditsNeeded": price})
        agent.credits -= price
        ship = self._new_ship(agent, yard.types[type_], waypoint)
        tx = {"waypointSymbol": waypoint, "shipSymbol": ship.symbol, "shipType": type_,
              "price": price, "agentSymbol": agent.symbol, "timestamp": iso(self.clock.now())}
        yard.transactions.append(tx)
        self.books.append(Entry(agent.symbol, ship.symbol, waypoint, type_, "SHIP", 1, price))
        return {"agent": self.agent_payload(agent), "ship": self.ship_payload(ship),
                "transaction": tx}

    # --- systems and markets -------------------------------------------------------------

    def system(self, system: str) -> dict:
        self._system(system)
        return self.universe.system

    def waypoints(self, system: str, type_: str | None, traits: list[str]) -> list[dict]:
        self._system(system)
        out = []
        for w in self.universe.waypoints.values():
            have = {t["symbol"] for t in w["traits"]}
            if (type_ is None or w["type"] == type_) and set(traits) <= have:
                out.append(w)
        return out

    def waypoint(self, system: str, waypoint: str) -> dict:
        self._system(system)
        found = self.universe.waypoints.get(waypoint)
        if found is None or system_of(waypoint) != system:
            raise SimError(404, 404, f"Waypoint {waypoint} not found.",
                           {"waypointSymbol": waypoint})
        return found

    def market(self, agent: AgentState | None, system: str, waypoint: str) -> dict:
        self.waypoint(system, waypoint)
        market = self.universe.markets.get(waypoint)
        if market is None:
            raise SimError(404, 4603, f"Market not found at {waypoint}.",
                           {"waypointSymbol": waypoint})
        market.advance(self.clock.game_now())
        present = agent is not None and self._present(agent, waypoint)
        return market.payload(present, self.trade_goods)

    def shipyard(self, agent: AgentState | None, system: str, waypoint: str) -> dict:
        self.waypoint(system, waypoint)
        yard = self.universe.shipyards.get(waypoint)
        if yard is None:
            raise SimError(404, 404, f"Shipyard not found at {waypoint}.",
                           {"waypointSymbol": waypoint})
        body = {"symbol": waypoint, "shipTypes": [{"type": t} for t in yard.types],
                "modificationsFee": yard.modifications_fee}
        if agent is not None and self._present(agent, waypoint):
            body["ships"] = [t.listing() for t in yard.types.values()]
            body["transactions"] = list(yard.transactions[-20:])
        return body

    # --- construction sites --------------------------------------------------------------

    def construction(self, system: str, waypoint: str) -> dict:
        return self._site(system, waypoint).payload()

    def supply_construction(self, agent: AgentState, system: str, waypoint: str,
                            body: dict) -> dict:
        good, units = _trade_args(body, "tradeSymbol")
        site = self._site(system, waypoint)
        ship = self._not_in_transit(agent, body.get("shipSymbol") or "")
        if ship.waypoint != waypoint:
            raise SimError(400, 4802, f"Ship {ship.symbol} must be at {waypoint} to supply "
                           "its construction.", {"shipSymbol": ship.symbol,
                                                 "waypointSymbol": waypoint})
        material = site.materials.get(good)
        if material is None:
            raise SimError(400, 4800, f"Construction material {good} is not required at "
                           f"{waypoint}.", {"waypointSymbol": waypoint, "tradeSymbol": good})
        left = material.required - material.fulfilled
        if units > left:
            raise SimError(400, 4801, f"Construction material {good} at {waypoint} needs only "
                           f"{left} more unit(s).", {"waypointSymbol": waypoint,
                                                     "tradeSymbol": good, "remaining": left})
        self._remove_cargo(ship, good, units)
        material.fulfilled += units
        if site.complete:
            self.universe.waypoints[waypoint]["isUnderConstruction"] = False
        self.books.append(Entry(agent.symbol, ship.symbol, waypoint, good, "SUPPLY", units, 0))
        return {"construction": site.payload(), "cargo": self.cargo_payload(ship)}

    def _site(self, system: str, waypoint: str) -> ConstructionSite:
        self.waypoint(system, waypoint)
        site = self.universe.constructions.get(waypoint)
        if site is None:
            raise SimError(404, 404, f"Waypoint {waypoint} is not under construction.",
                           {"waypointSymbol": waypoint})
        return site

    # --- contracts -----------------------------------------------------------------------

    def list_contracts(self, agent: AgentState) -> list[dict]:
        return [c.payload() for c in self.contracts.values() if c.agent == agent.symbol]

    def contract(self, agent: AgentState, contract_id: str) -> Contract:
        found = self.contracts.get(contract_id)
        if found is None or found.agent != agent.symbol:
            raise SimError(404, 404, f"Contract {contract_id} not found.",
                           {"contractId": contract_id})
        return found

    def accept_contract(self, agent: AgentState, contract_id: str) -> dict:
        contract = self.contract(agent, contract_id)
        if contract.accepted:
            raise SimError(400, 4501, f"Contract {contract_id} has already been accepted.",
                           {"contractId": contract_id})
        contract.accepted = True
        agent.credits += contract.on_accepted
        self.books.append(Entry(agent.symbol, "", "", contract_id, "CONTRACT", 0,
                                contract.on_accepted))
        return {"agent": self.agent_payload(agent), "contract": contract.payload()}

    def deliver_contract(self, agent: AgentState, contract_id: str, body: dict) -> dict:
        good, units = _trade_args(body, "tradeSymbol")
        contract = self.contract(agent, contract_id)
        if not contract.accepted:
            raise SimError(400, 4505, f"Contract {contract_id} has not been accepted.",
                           {"contractId": contract_id})
        if contract.fulfilled:
            raise SimError(400, 4504, f"Contract {contract_id} has already been fulfilled.",
                           {"contractId": contract_id})
        term = next((t for t in contract.terms if t.good == good), None)
        if term is None:
            raise SimError(400, 4508, f"Contract {contract_id} does not require {good}.",
                           {"contractId": contract_id, "tradeSymbol": good})
        ship = self._not_in_transit(agent, body.get("shipSymbol") or "")
        if ship.waypoint != term.destination:
            raise SimError(400, 4510, f"Ship {ship.symbol} must be at {term.destination} to "
                           "deliver this contract.", {"shipSymbol": ship.symbol,
                                                      "destinationSymbol": term.destination})
        if term.fulfilled + units > term.required:
            raise SimError(400, 4509, f"Contract {contract_id} needs only "
                           f"{term.required - term.fulfilled} more {good}.",
                           {"contractId": contract_id, "tradeSymbol": good})
        self._remove_cargo(ship, good, units)
        term.fulfilled += units
        self.books.append(Entry(agent.symbol, ship.symbol, ship.waypoint, good, "DELIVER",
                                units, 0))
        return {"contract": contract.payload(), "cargo": self.cargo_payload(ship)}

    def fulfill_contract(self, agent: AgentState, contract_id: str) -> dict:
        contract = self.contract(agent, contract_id)
        if contract.fulfilled:
            raise SimError(400, 4504, f"Contract {contract_id} has already been fulfilled.",
                           {"contractId": contract_id})
        if not contract.accepted or not contract.delivered_all:
            raise SimError(400, 4502, f"Contract {contract_id} cannot be fulfilled: its "
                           "deliveries are not complete.", {"contractId": contract_id})
        contract.fulfilled = True
        agent.credits += contract.on_fulfilled
        self.books.append(Entry(agent.symbol, "", "", contract_id, "CONTRACT", 0,
                                contract.on_fulfilled))
        return {"agent": self.agent_payload(agent), "contract": contract.payload()}

    def negotiate_contract(self, agent: AgentState, symbol: str) -> dict:
        self._not_in_transit(agent, symbol)
        if any(c.agent == agent.symbol and not c.fulfilled for c in self.contracts.values()):
            open_ = next(c for c in self.contracts.values()
                         if c.agent == agent.symbol and not c.fulfilled)
            raise SimError(400, 4511, f"Agent {agent.symbol} already has an active contract.",
                           {"agentSymbol": agent.symbol, "contractId": open_.id})
        return {"contract": self._starting_contract(agent).payload()}

    # --- payloads ------------------------------------------------------------------------

    def ship_payload(self, ship: ShipState) -> dict:
        t = ship.type
        return {
            "symbol": ship.symbol,
            "registration": {"name": ship.symbol, "factionSymbol":
                             self.agents[ship.agent].faction, "role": t.role},
            "nav": self.nav_payload(ship),
            "crew": {"current": t.crew_required, "required": t.crew_required,
                     "capacity": t.crew_capacity, "rotation": "STRICT", "morale": 100,
                     "wages": 0},
            **ship.parts,
            "cooldown": {"shipSymbol": ship.symbol, "totalSeconds": 0, "remainingSeconds": 0},
            "cargo": self.cargo_payload(ship),
            "fuel": self.fuel_payload(ship),
        }

    def nav_payload(self, ship: ShipState) -> dict:
        origin = ship.origin or ship.waypoint
        return {"systemSymbol": system_of(ship.waypoint), "waypointSymbol": ship.waypoint,
                "route": {"origin": self._route_point(origin),
                          "destination": self._route_point(ship.waypoint),
                          "departureTime": iso(ship.departure), "arrival": iso(ship.arrival)},
                "status": ship.status, "flightMode": ship.flight_mode.value}

    def cargo_payload(self, ship: ShipState) -> dict:
        inventory = []
        for good, units in ship.cargo.items():
            known = self.trade_goods.get(good, {})
            inventory.append({"symbol": good, "name": known.get("name", good.title()),
                              "description": known.get("description", good.title()),
                              "units": units})
        return {"capacity": ship.cargo_capacity, "units": ship.cargo_units,
                "inventory": inventory}

    def fuel_payload(self, ship: ShipState) -> dict:
        amount, at = ship.consumed
        return {"current": ship.fuel, "capacity": ship.type.fuel_capacity,
                "consumed": {"amount": amount, "timestamp": iso(at)}}

    # --- internals -----------------------------------------------------------------------

    def _route_point(self, symbol: str) -> dict:
        w = self.universe.waypoints[symbol]
        return {"symbol": symbol, "type": w["type"], "systemSymbol": w["systemSymbol"],
                "x": w["x"], "y": w["y"]}

    def _new_ship(self, agent: AgentState, type_: ShipType, waypoint: str) -> ShipState:
        symbol = f"{agent.symbol}-{agent.next_ship:X}"
        agent.next_ship += 1
        now = self.clock.now()
        ship = ShipState(symbol, agent.symbol, type_, type_.components(), waypoint,
                         fuel=type_.fuel_capacity, departure=now, arrival=now,
                         consumed=(0, now))
        self.ships[symbol] = ship
        agent.ships.append(symbol)
        return ship

    def _settle(self, ship: ShipState) -> None:
        """Ships arrive lazily: IN_TRANSIT turns IN_ORBIT once the arrival time has passed."""
        if ship.status == "IN_TRANSIT" and self.clock.now() >= ship.arrival:
            ship.status = "IN_ORBIT"

    def _not_in_transit(self, agent: AgentState, symbol: str) -> ShipState:
        ship = self.ship(agent, symbol)
        if ship.status == "IN_TRANSIT":
            left = max(0, math.ceil(ship.arrival - self.clock.now()))
            raise SimError(400, 4214, f"Ship is currently in-transit from {ship.origin} to "
                           f"{ship.waypoint} and arrives in {left} seconds.",
                           {"departureSymbol": ship.origin, "destinationSymbol": ship.waypoint,
                            "arrival": iso(ship.arrival), "departureTime": iso(ship.departure),
                            "secondsToArrival": left})
        return ship

    def _docked(self, agent: AgentState, symbol: str, code: int = 4244) -> ShipState:
        ship = self._not_in_transit(agent, symbol)
        if ship.status != "DOCKED":
            raise SimError(400, code, "Ship action failed. Ship is not currently docked at "
                           f"{ship.waypoint}.", {"waypointSymbol": ship.waypoint})
        return ship

    def _market_here(self, ship: ShipState) -> MarketState | None:
        market = self.universe.markets.get(ship.waypoint)
        if market is not None:
            market.advance(self.clock.game_now())
        return market

    def _present(self, agent: AgentState, waypoint: str) -> bool:
        for symbol in agent.ships:
            ship = self.ships[symbol]
            self._settle(ship)
            if ship.waypoint == waypoint and ship.status != "IN_TRANSIT":
                return True
        return False

    def _system(self, system: str) -> None:
        if system != self.universe.symbol:
            raise SimError(404, 404, f"System {system} not found.", {"systemSymbol": system})

    def _check_volume(self, ship: ShipState, good: str, units: int, volume: int) -> None:
        if units > volume:
            raise SimError(400, 4604, f"Market transaction failed. Trade good {good} has a "
                           f"limit of {volume} units per transaction.",
                           {"waypointSymbol": ship.waypoint, "tradeSymbol": good,
                            "units": units, "tradeVolume": volume})

    def _charge(self, agent: AgentState, total: int, good: str, units: int, price: int) -> None:
        if total > agent.credits:
            raise SimError(400, 4600, "Market purchase failed. Agent does not have sufficient "
                           f"credits to purchase {units} unit(s) of {good}",
                           {"agentCredits": agent.credits, "totalPrice": total,
                            "tradeSymbol": good, "units": units, "purchasePrice": price})
        agent.credits -= total

    def _remove_cargo(self, ship: ShipState, good: str, units: int) -> None:
        held = ship.cargo.get(good, 0)
        if held < units:
            raise SimError(400, 4219, f"Failed to update ship cargo. Ship {ship.symbol} cargo "
                           f"does not contain {units} unit(s) of {good}. Ship has {held} "
                           f"unit(s) of {good}.",
                           {"shipSymbol": ship.symbol, "tradeSymbol": good,
                            "cargoUnits": held, "unitsToRemove": units})
        if held == units:
            del ship.cargo[good]
        else:
            ship.cargo[good] = held - units

    def _transaction(self, market: MarketState, ship: ShipState, good: str, kind: str,
                     units: int, price: int, booked: str | None = None) -> dict:
        tx = {"waypointSymbol": market.waypoint, "shipSymbol": ship.symbol,
              "tradeSymbol": good, "type": kind, "units": units, "pricePerUnit": price,
              "totalPrice": price * units, "timestamp": iso(self.clock.now())}
        market.transactions.append(tx)
        self.books.append(Entry(ship.agent, ship.symbol, market.waypoint, good, booked or kind,
                                units, price * units))
        return tx


def _trade_args(body: dict, good_key: str) -> tuple[str, int]:
    good, units = body.get(good_key), body.get("units")
    problems = {}
    if not isinstance(good, str) or not good:
        problems[good_key] = [f"The {good_key} field is required."]
    if not isinstance(units, int) or isinstance(units, bool) or units < 1:
        problems["units"] = ["The units field must be a positive integer."]
    if problems:
        raise _invalid(problems)
    return good, units


def _invalid(problems: dict) -> SimError:
    return SimError(422, 422, "Request could not be processed due to an invalid payload.",
                    problems)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token(symbol: str, reset_id: str) -> str:
    """A JWT-shaped agent token that carries the reset it belongs to, like the real ones."""
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    claims = _b64(json.dumps({"identifier": symbol, "version": "v2.3.0",
                              "reset_date": reset_id, "iat": int(time.time()),
                              "sub": "agent-token"}).encode())
    return f"{header}.{claims}.{_b64(secrets.token_bytes(32))}"


def _claims(token: str) -> dict | None:
    try:
        part = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return None
