"""The simulator's world: one system, loaded from a captured one or generated from a seed."""

from __future__ import annotations

import json
import random
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from domain.enums import ActivityLevel, SupplyLevel, TradeType
from domain.supply_chain import SupplyChain
from sim.deliveries import ConstructionSite, Material
from sim.economy import DEFAULT_ECONOMY, Economy, MarketState, Stock
from sim.ships import SHIP_TYPES, ShipType

FACTIONS = ("COSMIC", "VOID", "GALACTIC", "QUANTUM", "DOMINION", "ASTRO", "CORSAIRS",
            "OBSIDIAN", "AEGIS", "UNITED", "SOLITARY", "COBALT", "OMEGA", "ECHO", "LORDS",
            "CULT", "ANCIENTS", "SHADOW", "ETHEREAL")
ROLES = {"SHIP_PROBE": "SATELLITE", "SHIP_LIGHT_HAULER": "HAULER",
         "SHIP_LIGHT_SHUTTLE": "TRANSPORT", "SHIP_MINING_DRONE": "EXCAVATOR",
         "SHIP_SIPHON_DRONE": "EXCAVATOR", "SHIP_SURVEYOR": "SURVEYOR",
         "SHIP_COMMAND_FRIGATE": "COMMAND", "SHIP_EXPLORER": "EXPLORER",
         "SHIP_HEAVY_FREIGHTER": "HAULER", "SHIP_INTERCEPTOR": "INTERCEPTOR",
         "SHIP_ORE_HOUND": "EXCAVATOR", "SHIP_REFINING_FREIGHTER": "REFINERY",
         "SHIP_BULK_FREIGHTER": "HAULER"}
TRAITS = {
    "MARKETPLACE": ("Marketplace", "A thriving centre of commerce."),
    "SHIPYARD": ("Shipyard", "A facility that builds and sells ships."),
    "SCATTERED_SETTLEMENTS": ("Scattered Settlements", "Dispersed communities."),
    "MINERAL_DEPOSITS": ("Mineral Deposits", "Deposits of common minerals."),
    "COMMON_METAL_DEPOSITS": ("Common Metal Deposits", "Deposits of common metals."),
    "INDUSTRIAL": ("Industrial", "A hub of manufacturing."),
}
# Goods the simulator starves at start, so that plans must fabricate them: a depth-2
# chain (CLOTHING <- FABRICS <- FERTILIZERS) and a depth-3 one (ADVANCED_CIRCUITRY <-
# ELECTRONICS, MICROPROCESSORS <- COPPER <- COPPER_ORE).
STARVED = ("CLOTHING", "FABRICS", "ADVANCED_CIRCUITRY", "ELECTRONICS", "MICROPROCESSORS",
           "COPPER")
LOW_VOLUME = {"SHIP_PARTS", "SHIP_PLATING", "EXOTIC_MATTER", "BOTANICAL_SPECIMENS"}
BASIC = {"IRON", "COPPER", "ALUMINUM", "SILVER", "GOLD", "PLATINUM", "URANITE", "MERITIUM",
         "FOOD", "FABRICS", "PLASTICS", "FERTILIZERS", "FUEL", "POLYNUCLEOTIDES"}
RAW_INPUTS = {"EXPLOSIVES", "MACHINERY"}  # what extraction "imports" in the real map
VALUE_OVERRIDES = {"FUEL": 55.0}  # FUEL trades near 72/68 in real starter systems


@dataclass
class Shipyard:
    waypoint: str
    prices: dict[str, int]
    types: dict[str, ShipType]
    modifications_fee: int = 100
    transactions: list[dict] = field(default_factory=list)


@dataclass
class Universe:
    system: dict  # a `System` payload
    waypoints: dict[str, dict]  # symbol -> `Waypoint` payload
    markets: dict[str, MarketState]
    shipyards: dict[str, Shipyard]
    headquarters: str
    faction: str
    start_probe_at: str
    # What the generator made: one good to buy, one to make at depth 2 and one at depth 3.
    showcase: dict[str, str] = field(default_factory=dict)
    constructions: dict[str, ConstructionSite] = field(default_factory=dict)

    @property
    def symbol(self) -> str:
        return self.system["symbol"]


def drop_nulls(value):
    """The real server omits optional fields that bot captures store as null."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def ship_type_from_listing(listing: dict) -> ShipType:
    """A ship type from a captured `ShipyardShip`, adding the `quality` v2.3 requires."""
    parts = {k: {"quality": 4, **drop_nulls(listing[k])} for k in ("frame", "reactor", "engine")}
    return ShipType(
        listing["type"], listing["name"], listing["description"],
        ROLES.get(listing["type"], "TRANSPORT"), int(listing["purchasePrice"]),
        parts["frame"], parts["reactor"], parts["engine"],
        tuple(drop_nulls(listing["modules"])), tuple(drop_nulls(listing["mounts"])),
        listing["crew"]["required"], listing["crew"]["capacity"],
    )


def load_universe(directory: str | Path, chain: SupplyChain,
                  economy: Economy = DEFAULT_ECONOMY) -> Universe:
    """Load a captured system in the `spacetraders-data/X1-AD75/` layout."""
    root = Path(directory)

    def read(name):
        return drop_nulls(json.loads((root / name).read_text("utf-8")))

    system = read("system.json")
    waypoints = {w["symbol"]: w for w in read("waypoints.json")}
    markets = {}
    for m in read("markets.json"):
        goods = {q["symbol"]: Stock.from_quote(q) for q in m.get("tradeGoods") or []}
        for kind, type_ in (("exports", TradeType.EXPORT), ("imports", TradeType.IMPORT),
                            ("exchange", TradeType.EXCHANGE)):
            for g in m[kind]:  # a listed good without a captured quote gets a middling one
                goods.setdefault(g["symbol"], Stock.at_level(g["symbol"], type_, 20, 100,
                                                             SupplyLevel.MODERATE))
        markets[m["symbol"]] = _market(m["symbol"], goods, chain, economy)
    shipyards = {}
    for y in read("shipyards.json"):
        types = {s["type"]: ship_type_from_listing(s) for s in y.get("ships", [])}
        shipyards[y["symbol"]] = Shipyard(y["symbol"], {t: s.price for t, s in types.items()},
                                          types, y.get("modificationsFee", 100))
    agent = read("my-agent.json")
    probe_at = next((s["nav"]["waypointSymbol"] for s in read("my-ships.json")
                     if s["registration"]["role"] == "SATELLITE"), next(iter(shipyards)))
    sites = read("construction.json") if (root / "construction.json").exists() else []
    constructions = {c["symbol"]: ConstructionSite.from_api(c) for c in sites
                     if waypoints.get(c["symbol"], {}).get("isUnderConstruction")}
    return Universe(system, waypoints, markets, shipyards, agent["headquarters"],
                    agent["startingFaction"], probe_at, constructions=constructions)


def _market(waypoint: str, goods: dict[str, Stock], chain: SupplyChain,
            economy: Economy) -> MarketState:
    imports = {s for s, g in goods.items() if g.type is TradeType.IMPORT}
    recipes = {s: tuple(i for i in chain.inputs(s) if i in imports)
               for s, g in goods.items() if g.type is TradeType.EXPORT}
    return MarketState(waypoint, goods, recipes, economy)


# --- generation --------------------------------------------------------------------------


def good_value(chain: SupplyChain) -> dict[str, float]:
    """A plausible base sell price per good: raw goods are cheap, each step adds value."""
    values: dict[str, float] = {}

    def value(good: str, path: frozenset) -> float:
        if good in values:
            return values[good]
        inputs = chain.inputs(good)
        if not inputs or set(inputs) <= RAW_INPUTS or good in path:
            v = 15.0 + zlib.crc32(good.encode()) % 30
        else:
            v = min(40_000.0, 2.2 * sum(value(i, path | {good}) for i in inputs) + 50)
        values.setdefault(good, v)
        return values[good]

    for good in sorted(chain.goods):
        value(good, frozenset())
    return {**values, **VALUE_OVERRIDES}


def trade_volume(good: str, type_: TradeType, chain: SupplyChain) -> int:
    """Initial volumes by class, as observed at a reset (MECHANICS.md §5)."""
    raw = not chain.inputs(good) or set(chain.inputs(good)) <= RAW_INPUTS
    if type_ is TradeType.EXCHANGE:
        return 18 if good == "ANTIMATTER" else 180 if raw or good == "FUEL" else 60
    if good in LOW_VOLUME or good.startswith(("SHIP_", "MODULE_", "MOUNT_", "ENGINE_",
                                              "REACTOR_")):
        return 6
    return 60 if raw or good in BASIC else 20


def generate_universe(seed: int, chain: SupplyChain, starved: tuple[str, ...] = STARVED,
                      economy: Economy = DEFAULT_ECONOMY) -> Universe:
    """A starter-like system where every export of `chain` has an exporter.

    The `starved` goods each get one exporter whose imports nobody supplies, so their
    supply starts SCARCE and only rises once an agent delivers the inputs; every other
    good is on sale at HIGH or ABUNDANT supply somewhere.
    """
    return _Generator(seed, chain, starved, economy).build()


class _Generator:
    def __init__(self, seed: int, chain: SupplyChain, starved: tuple[str, ...],
                 economy: Economy):
        self.economy = economy
        self.rng = random.Random(seed)
        self.chain = chain
        self.starved = set(starved)
        self.values = good_value(chain)
        letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
        self.system = f"X1-{self.rng.choice(letters)}{self.rng.choice(letters)}" \
                      f"{self.rng.randint(10, 99)}"
        self.counter = 0
        self.waypoints: dict[str, dict] = {}
        self.markets: dict[str, MarketState] = {}

    def build(self) -> Universe:
        hq = self._waypoint("PLANET", ["SCATTERED_SETTLEMENTS"], at=(self._coords(60)))
        yard = self._waypoint("MOON", [], orbits=hq)
        self._market(hq, imports=["FOOD", "MEDICINE", "CLOTHING", "EQUIPMENT", "JEWELRY"],
                     exchange=["FUEL"])
        self._market(yard, exchange=["FUEL"])
        self._add_trait(yard, "SHIPYARD")
        for good in sorted(self.starved):  # one dedicated, unfed exporter each
            self._market(self._waypoint("ORBITAL_STATION", ["INDUSTRIAL"]), exports=[good],
                         imports=list(self.chain.inputs(good)), exchange=["FUEL"],
                         starved=True)
        for group in self._export_groups():
            imports = sorted({i for g in group for i in self.chain.inputs(g)} - set(group))
            kind = "ASTEROID" if all(set(self.chain.inputs(g)) <= RAW_INPUTS for g in group) \
                else self.rng.choice(["PLANET", "MOON", "ORBITAL_STATION"])
            self._market(self._waypoint(kind, ["INDUSTRIAL"]), exports=group, imports=imports,
                         exchange=["FUEL"])  # every captured market trades FUEL
        raw = sorted(g for g in self.chain.goods if set(self.chain.inputs(g)) <= RAW_INPUTS
                     and g not in self.starved)
        for _ in range(2):  # exchanges for raw goods, like the real asteroid bases
            self._market(self._waypoint("ASTEROID_BASE", ["MINERAL_DEPOSITS"]),
                         exchange=[*self.rng.sample(raw, 5), "FUEL"])
        for _ in range(3):
            self._market(self._waypoint("FUEL_STATION", []), exchange=["FUEL"])
        for _ in range(12):  # bare asteroids, as real systems have many
            self._waypoint("ASTEROID", ["COMMON_METAL_DEPOSITS"])
        gate = self._waypoint("JUMP_GATE", [])  # under construction, like real starter gates
        self.waypoints[gate]["isUnderConstruction"] = True
        constructions = {gate: ConstructionSite(gate, {g: Material(g, n, f) for g, n, f in (
            ("FAB_MATS", 1600, 0), ("ADVANCED_CIRCUITRY", 400, 0),
            ("QUANTUM_STABILIZERS", 1, 1))})}
        system = {"symbol": self.system, "sectorSymbol": "X1", "type": "ORANGE_STAR",
                  "x": self.rng.randint(-5000, 5000), "y": self.rng.randint(-5000, 5000),
                  "factions": [], "waypoints": [
                      {k: w[k] for k in ("symbol", "type", "x", "y", "orbitals", "orbits")
                       if k in w} for w in self.waypoints.values()]}
        yard_types = {t: SHIP_TYPES[t] for t in ("SHIP_PROBE", "SHIP_LIGHT_SHUTTLE",
                                                 "SHIP_LIGHT_HAULER")}
        shipyards = {yard: Shipyard(yard, {t: s.price for t, s in yard_types.items()},
                                    yard_types)}
        return Universe(system, self.waypoints, self.markets, shipyards, hq, "COSMIC", yard,
                        showcase=self._showcase(), constructions=constructions)

    def _showcase(self) -> dict[str, str]:
        show = {}
        if {"CLOTHING", "FABRICS"} <= self.starved:
            show["depth2"] = "CLOTHING"
        if {"ADVANCED_CIRCUITRY", "ELECTRONICS", "MICROPROCESSORS", "COPPER"} <= self.starved:
            show["depth3"] = "ADVANCED_CIRCUITRY"
        show["buy"] = "IRON_ORE" if "IRON_ORE" not in self.starved else sorted(
            set(self.chain.as_dict()) - self.starved)[0]
        return show

    def _export_groups(self) -> list[list[str]]:
        """The unstarved exports, 2 to 5 per market, never a good beside its own input."""
        todo = sorted(set(self.chain.as_dict()) - self.starved)
        self.rng.shuffle(todo)
        groups: list[list[str]] = []
        while todo:
            size = self.rng.randint(2, 5)
            group = [todo.pop()]
            for g in list(todo):
                if len(group) >= size:
                    break
                clash = any(g in self.chain.inputs(h) or h in self.chain.inputs(g)
                            for h in group)
                if not clash:
                    group.append(g)
                    todo.remove(g)
            groups.append(group)
        return groups

    def _coords(self, radius: int) -> tuple[int, int]:
        while True:
            x, y = self.rng.randint(-radius, radius), self.rng.randint(-radius, radius)
            if x * x + y * y <= radius * radius:
                return x, y

    def _waypoint(self, type_: str, traits: list[str], orbits: str | None = None,
                  at: tuple[int, int] | None = None) -> str:
        self.counter += 1
        letter = "ABCDEFGHIJK"[min(10, self.counter // 5)]
        symbol = f"{self.system}-{letter}{self.counter}"
        if orbits:
            parent = self.waypoints[orbits]
            x, y = parent["x"], parent["y"]
            parent["orbitals"].append({"symbol": symbol})
        else:
            x, y = at or self._coords(450)
        wp = {"symbol": symbol, "type": type_, "systemSymbol": self.system, "x": x, "y": y,
              "orbitals": [], "traits": [], "modifiers": [], "isUnderConstruction": False,
              "faction": {"symbol": "COSMIC"},
              "chart": {"submittedBy": "COSMIC", "submittedOn": "2026-01-01T00:00:00.000Z"}}
        if orbits:
            wp["orbits"] = orbits
        self.waypoints[symbol] = wp
        for t in traits:
            self._add_trait(symbol, t)
        return symbol

    def _add_trait(self, symbol: str, trait: str) -> None:
        name, description = TRAITS[trait]
        self.waypoints[symbol]["traits"].append(
            {"symbol": trait, "name": name, "description": description})

    def _market(self, waypoint: str, exports=(), imports=(), exchange=(),
                starved: bool = False) -> None:
        self._add_trait(waypoint, "MARKETPLACE")
        rng, goods = self.rng, {}
        for g in exports:
            supply = SupplyLevel.SCARCE if starved else rng.choice(
                [SupplyLevel.HIGH, SupplyLevel.ABUNDANT])
            goods[g] = Stock.at_level(g, TradeType.EXPORT, trade_volume(g, TradeType.EXPORT,
                                      self.chain), self.values[g], supply, self._activity())
        for g in imports:
            level = SupplyLevel.SCARCE if starved else rng.choice(
                [SupplyLevel.LIMITED, SupplyLevel.MODERATE])
            stock = Stock.at_level(g, TradeType.IMPORT, trade_volume(g, TradeType.IMPORT,
                                   self.chain), self.values[g], level, self._activity())
            if starved:  # nobody but the agent brings these
                stock.stock = stock.target = 0.0
            goods[g] = stock
        for g in (g for g in exchange if g not in goods):
            goods[g] = Stock.at_level(g, TradeType.EXCHANGE, trade_volume(
                g, TradeType.EXCHANGE, self.chain), self.values.get(g, 40.0),
                rng.choice([SupplyLevel.MODERATE, SupplyLevel.HIGH]))
        self.markets[waypoint] = _market(waypoint, goods, self.chain, self.economy)

    def _activity(self) -> ActivityLevel:
        return self.rng.choice([ActivityLevel.WEAK, ActivityLevel.GROWING,
                                ActivityLevel.GROWING, ActivityLevel.STRONG])
