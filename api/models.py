"""Small typed views of API payloads: only the fields the bot reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from domain.markets import MarketSnapshot


def parse_time(raw: str | None) -> datetime | None:
    return datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None


def text(d: Mapping, key: str) -> str:
    """A field that must be a non-empty string; anything else is a malformed body."""
    value = d[key]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{key} must be a non-empty string, not {value!r}")
    return value


def number(d: Mapping, key: str) -> int:
    """A field that must be an integer (JSON numbers only: "12" is not a number)."""
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise TypeError(f"{key} must be an integer, not {value!r}")
    return int(value)


def items(d: Mapping, key: str) -> list:
    value = d.get(key) or []
    if not isinstance(value, list):
        raise TypeError(f"{key} must be a list, not {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Agent:
    symbol: str
    headquarters: str
    credits: int
    ship_count: int

    @classmethod
    def from_api(cls, d: dict) -> Agent:
        return cls(text(d, "symbol"), text(d, "headquarters"), number(d, "credits"),
                   number(d, "shipCount"))


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
        status = text(d, "status")
        if status not in ("IN_TRANSIT", "IN_ORBIT", "DOCKED"):
            raise ValueError(f"unknown nav status {status!r}")
        return cls(text(d, "systemSymbol"), text(d, "waypointSymbol"), status,
                   text(d, "flightMode"),
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
        return cls(number(d, "current"), number(d, "capacity"))


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
        return cls(number(d, "capacity"), number(d, "units"),
                   {text(i, "symbol"): number(i, "units") for i in items(d, "inventory")})


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
        return cls(text(d, "symbol"), text(d["registration"], "role"), Nav.from_api(d["nav"]),
                   Fuel.from_api(d["fuel"]), Cargo.from_api(d["cargo"]),
                   number(d["engine"], "speed"), text(d["frame"], "symbol"))


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
        return cls(text(d, "waypointSymbol"), text(d, "shipSymbol"), text(d, "tradeSymbol"),
                   text(d, "type"), number(d, "units"), number(d, "pricePerUnit"),
                   number(d, "totalPrice"), parse_time(d.get("timestamp")))


@dataclass(frozen=True)
class TradeResult:
    """What purchase, sell and refuel answer: the agent after, the hold after, the bill."""

    credits: int
    transaction: Transaction
    cargo: Cargo | None = None
    fuel: Fuel | None = None

    @classmethod
    def from_api(cls, d: dict) -> TradeResult:
        return cls(number(d["agent"], "credits"), Transaction.from_api(d["transaction"]),
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
    under_construction: bool = False

    @classmethod
    def from_api(cls, d: dict) -> Waypoint:
        return cls(text(d, "symbol"), text(d, "type"), number(d, "x"), number(d, "y"),
                   frozenset(text(t, "symbol") for t in items(d, "traits")),
                   bool(d.get("isUnderConstruction")))


@dataclass(frozen=True)
class ShipyardOffer:
    type: str
    price: int | None


@dataclass(frozen=True)
class Registration:
    token: str
    agent: Agent
    ships: tuple[Ship, ...]

    @classmethod
    def from_api(cls, d: dict) -> Registration:
        return cls(text(d, "token"), Agent.from_api(d["agent"]),
                   tuple(Ship.from_api(s) for s in items(d, "ships")))


@dataclass(frozen=True)
class Construction:
    """A waypoint under construction: units required and fulfilled per material."""

    waypoint: str
    materials: dict[str, tuple[int, int]]  # good -> (required, fulfilled)
    complete: bool

    def remaining(self, good: str) -> int:
        required, fulfilled = self.materials.get(good, (0, 0))
        return max(0, required - fulfilled)

    @classmethod
    def from_api(cls, d: dict) -> Construction:
        materials = {text(m, "tradeSymbol"): (number(m, "required"), number(m, "fulfilled"))
                     for m in items(d, "materials")}
        complete = d["isComplete"]
        if not isinstance(complete, bool):
            raise TypeError("isComplete must be a boolean")
        return cls(text(d, "symbol"), materials, complete)


@dataclass(frozen=True)
class ContractTerm:
    good: str
    destination: str
    required: int
    fulfilled: int

    @property
    def remaining(self) -> int:
        return max(0, self.required - self.fulfilled)


@dataclass(frozen=True)
class Contract:
    id: str
    type: str
    accepted: bool
    fulfilled: bool
    terms: tuple[ContractTerm, ...]
    on_accepted: int
    on_fulfilled: int

    def term(self, good: str) -> ContractTerm | None:
        return next((t for t in self.terms if t.good == good), None)

    @classmethod
    def from_api(cls, d: dict) -> Contract:
        terms = d["terms"]
        payment = terms["payment"]
        return cls(text(d, "id"), text(d, "type"), bool(d["accepted"]), bool(d["fulfilled"]),
                   tuple(ContractTerm(text(t, "tradeSymbol"), text(t, "destinationSymbol"),
                                      number(t, "unitsRequired"), number(t, "unitsFulfilled"))
                         for t in items(terms, "deliver")),
                   number(payment, "onAccepted"), number(payment, "onFulfilled"))
