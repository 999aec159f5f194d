"""Where goods go besides markets: construction sites and procurement contracts.

Both take goods out of a ship's hold at a waypoint and count them against what is
required; contracts also pay credits when accepted and when fulfilled. Payloads and
error codes follow the official spec and the docs' error list (4500-4511, 4800-4802).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field


@dataclass
class Material:
    good: str
    required: int
    fulfilled: int = 0

    def payload(self) -> dict:
        return {"tradeSymbol": self.good, "required": self.required,
                "fulfilled": self.fulfilled}


@dataclass
class ConstructionSite:
    waypoint: str
    materials: dict[str, Material]

    @property
    def complete(self) -> bool:
        return all(m.fulfilled >= m.required for m in self.materials.values())

    def payload(self) -> dict:
        return {"symbol": self.waypoint,
                "materials": [m.payload() for m in self.materials.values()],
                "isComplete": self.complete}

    @classmethod
    def from_api(cls, data: dict) -> ConstructionSite:
        return cls(data["symbol"], {m["tradeSymbol"]: Material(
            m["tradeSymbol"], int(m["required"]), int(m["fulfilled"]))
            for m in data["materials"]})


@dataclass
class Term:
    good: str
    destination: str
    required: int
    fulfilled: int = 0

    def payload(self) -> dict:
        return {"tradeSymbol": self.good, "destinationSymbol": self.destination,
                "unitsRequired": self.required, "unitsFulfilled": self.fulfilled}


@dataclass
class Contract:
    id: str
    agent: str
    faction: str
    terms: list[Term]
    on_accepted: int
    on_fulfilled: int
    deadline: str
    expiration: str
    accepted: bool = False
    fulfilled: bool = False
    type: str = "PROCUREMENT"
    delivered: list[dict] = field(default_factory=list)

    @property
    def delivered_all(self) -> bool:
        return all(t.fulfilled >= t.required for t in self.terms)

    def payload(self) -> dict:
        return {"id": self.id, "factionSymbol": self.faction, "type": self.type,
                "terms": {"deadline": self.deadline,
                          "payment": {"onAccepted": self.on_accepted,
                                      "onFulfilled": self.on_fulfilled},
                          "deliver": [t.payload() for t in self.terms]},
                "accepted": self.accepted, "fulfilled": self.fulfilled,
                "expiration": self.expiration, "deadlineToAccept": self.expiration}


def new_contract_id() -> str:
    return "c" + secrets.token_hex(12)
