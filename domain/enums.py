"""The game's ordered levels and the symbols the planner works with."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class _ParsableLevel(IntEnum):
    """An ordered level that parses from the API's upper-case names."""

    @classmethod
    def parse(cls, value: str | _ParsableLevel) -> _ParsableLevel:
        if isinstance(value, cls):
            return value
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            names = ", ".join(m.name for m in cls)
            raise ValueError(
                f"unknown {cls.__name__} {value!r} (expected one of {names})"
            ) from None

    @classmethod
    def parse_optional(cls, value: str | None) -> _ParsableLevel | None:
        return None if value in (None, "") else cls.parse(value)


class SupplyLevel(_ParsableLevel):
    """How much of a good a market holds: SCARCE < LIMITED < MODERATE < HIGH < ABUNDANT."""

    SCARCE = 1
    LIMITED = 2
    MODERATE = 3
    HIGH = 4
    ABUNDANT = 5


class ActivityLevel(_ParsableLevel):
    """How strongly a market produces or consumes: RESTRICTED < WEAK < GROWING < STRONG."""

    RESTRICTED = 1
    WEAK = 2
    GROWING = 3
    STRONG = 4


class TradeType(StrEnum):
    EXPORT = "EXPORT"
    IMPORT = "IMPORT"
    EXCHANGE = "EXCHANGE"


class FlightMode(StrEnum):
    CRUISE = "CRUISE"
    BURN = "BURN"
    DRIFT = "DRIFT"
    STEALTH = "STEALTH"


class Acquisition(StrEnum):
    """How the planner gets a good: buy it where it is sold, or have its exporter make it
    (PENDING while the markets that decide it have not been read)."""

    BUY = "BUY"
    FABRICATE = "FABRICATE"
    PENDING = "PENDING"
