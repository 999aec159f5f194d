"""What the bot knows about a market: its fixed lists and, when a ship was there, its quotes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from domain.enums import ActivityLevel, SupplyLevel, TradeType


@dataclass(frozen=True)
class Quote:
    """One `MarketTradeGood`: prices and levels of a good as seen at one moment."""

    symbol: str
    type: TradeType
    supply: SupplyLevel
    activity: ActivityLevel | None
    trade_volume: int
    purchase_price: int
    sell_price: int

    @classmethod
    def from_api(cls, data: Mapping) -> Quote:
        return cls(
            symbol=data["symbol"],
            type=TradeType(data["type"]),
            supply=SupplyLevel.parse(data["supply"]),
            activity=ActivityLevel.parse_optional(data.get("activity")),
            trade_volume=int(data["tradeVolume"]),
            purchase_price=int(data["purchasePrice"]),
            sell_price=int(data["sellPrice"]),
        )


@dataclass(frozen=True)
class MarketSnapshot:
    """A market's exports, imports and exchange goods, plus quotes if a ship was present.

    `observed_at` is when the quotes were read; it is None when only the lists are known
    (the API hides `tradeGoods` unless one of your ships is at the waypoint).
    """

    waypoint: str
    exports: frozenset[str] = frozenset()
    imports: frozenset[str] = frozenset()
    exchange: frozenset[str] = frozenset()
    quotes: Mapping[str, Quote] = field(default_factory=dict)
    observed_at: datetime | None = None

    @property
    def system(self) -> str:
        return system_of(self.waypoint)

    @property
    def has_quotes(self) -> bool:
        return bool(self.quotes)

    def lists(self, good: str) -> bool:
        return good in self.exports or good in self.imports or good in self.exchange

    def sells(self, good: str) -> bool:
        """Whether agents can buy `good` here (exports and exchange goods)."""
        return good in self.exports or good in self.exchange

    def quote(self, good: str) -> Quote | None:
        return self.quotes.get(good)

    @classmethod
    def from_api(cls, data: Mapping, observed_at: datetime | None = None) -> MarketSnapshot:
        """Parse a `Market` payload; quotes are kept only if the payload carries them."""
        trade_goods = data.get("tradeGoods") or []
        quotes = {q.symbol: q for q in map(Quote.from_api, trade_goods)}
        return cls(
            waypoint=data["symbol"],
            exports=_symbols(data.get("exports")),
            imports=_symbols(data.get("imports")),
            exchange=_symbols(data.get("exchange")),
            quotes=quotes,
            observed_at=observed_at if quotes else None,
        )


def _symbols(items: Iterable[Mapping] | None) -> frozenset[str]:
    return frozenset(item["symbol"] for item in items or ())


def system_of(waypoint: str) -> str:
    """`X1-AD75-A1` -> `X1-AD75`: the system is the first two dash-separated parts."""
    return "-".join(waypoint.split("-")[:2])
