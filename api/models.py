"""Small typed views of API payloads: only the fields the bot reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from domain.markets import MarketSnapshot


def parse_time(raw: str | None) -> datetime | None:
    return datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None


@dataclass(frozen=True)
class Agent:
    symbol: str
    headquarters: str
    credits: int
    ship_count: int

    @classmethod
    def from_api(cls, d: dict) -> Agent:
        return cls(d["symbol"], d["headquarters"], int(d["credits"]), int(d["shipCount"]))


@dataclass(frozen=True)
class Nav:
    system: str
    waypoint: str  # the destination while in transit
    status: str  # IN_TRANSIT, IN_ORBIT or DOCKED
    flight_mode: str
    origin: str
    departure: datetime | None
    arrival: datetime | None

    @classmethod
    def from_api(cls, d: dict) -> Nav:
        route = d.get("route") or {}
        return cls(d["systemSymbol"], d["waypointSymbol"], d["status"], d["flightMode"],
                   (route.get("origin") or {}).get("symbol", d["waypointSymbol"]),
                   parse_time(route.get("departureTime")), parse_time(route.get("arrival")))

    def in_transit(self, now: datetime) -> bool:
        """The server flips status lazily: a ship past its arrival time is in orbit."""
        return self.status == "IN_TRANSIT" and self.arrival is not None and now < self.arrival

    def settled(self, now: datetime) -> Nav:
        if self.status == "IN_TRANSIT" and not self.in_transit(now):
            return Nav(self.system, self.waypoint, "IN_ORBIT", self.flight_mode, self.origin,
                       self.departure, self.arrival)
        return self


@dataclass(frozen=True)
class Fuel:
    current: int
    capacity: int

    @classmethod
    def from_api(cls, d: dict) -> Fuel:
        return cls(int(d["current"]), int(d["capacity"]))


@dataclass(frozen=True)
class Cargo:
    capacity: int
    units: int
    inventory: dict[str, int] = field(default_factory=dict)

    @property
    def free(self) -> int:
        return self.capacity - self.units

    def held(self, good: str) -> int:
        return self.inventory.get(good, 0)

    @classmethod
    def from_api(cls, d: dict) -> Cargo:
        return cls(int(d["capacity"]), int(d["units"]),
                   {i["symbol"]: int(i["units"]) for i in d.get("inventory", [])})


@dataclass(frozen=True)
class Ship:
    symbol: str
    role: str
    nav: Nav
    fuel: Fuel
    cargo: Cargo
    speed: int
    frame: str

    @classmethod
    def from_api(cls, d: dict) -> Ship:
        return cls(d["symbol"], d["registration"]["role"], Nav.from_api(d["nav"]),
                   Fuel.from_api(d["fuel"]), Cargo.from_api(d["cargo"]),
                   int(d["engine"]["speed"]), d["frame"]["symbol"])


@dataclass(frozen=True)
class Transaction:
    waypoint: str
    ship: str
    good: str
    type: str  # PURCHASE or SELL
    units: int
    price_per_unit: int
    total: int
    timestamp: datetime | None

    @classmethod
    def from_api(cls, d: dict) -> Transaction:
        return cls(d["waypointSymbol"], d["shipSymbol"], d["tradeSymbol"], d["type"],
                   int(d["units"]), int(d["pricePerUnit"]), int(d["totalPrice"]),
                   parse_time(d.get("timestamp")))


@dataclass(frozen=True)
class TradeResult:
    """What purchase, sell and refuel answer: the agent after, the hold after, the bill."""

    credits: int
    transaction: Transaction
    cargo: Cargo | None = None
    fuel: Fuel | None = None

    @classmethod
    def from_api(cls, d: dict) -> TradeResult:
        return cls(int(d["agent"]["credits"]), Transaction.from_api(d["transaction"]),
                   Cargo.from_api(d["cargo"]) if d.get("cargo") else None,
                   Fuel.from_api(d["fuel"]) if d.get("fuel") else None)


@dataclass(frozen=True)
class MarketReading:
    """A market read at `observed_at`; transactions only come with a ship present."""

    snapshot: MarketSnapshot
    transactions: tuple[Transaction, ...] = ()


@dataclass(frozen=True)
class Waypoint:
    symbol: str
    type: str
    x: int
    y: int
    traits: frozenset[str]

    @classmethod
    def from_api(cls, d: dict) -> Waypoint:
        return cls(d["symbol"], d["type"], int(d["x"]), int(d["y"]),
                   frozenset(t["symbol"] for t in d.get("traits", [])))


@dataclass(frozen=True)
class ShipyardOffer:
    type: str
    price: int | None


@dataclass(frozen=True)
class Registration:
    token: str
    agent: Agent
    ships: tuple[Ship, ...]
