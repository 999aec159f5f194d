"""Small constructors for domain objects, so tests read like the situation they set up."""

from __future__ import annotations

from domain.enums import ActivityLevel, SupplyLevel, TradeType
from domain.markets import MarketSnapshot, Quote


def quote(symbol, type_=TradeType.EXPORT, supply="MODERATE", activity="WEAK", price=100, tv=20):
    return Quote(
        symbol=symbol,
        type=type_,
        supply=SupplyLevel.parse(supply),
        activity=ActivityLevel.parse_optional(activity),
        trade_volume=tv,
        purchase_price=price,
        sell_price=max(1, price // 2),
    )


def market(waypoint, exports=(), imports=(), exchange=(), supply=None, quotes=True, **levels):
    """A market whose goods all get quotes; `levels` maps GOOD=(supply, activity[, price])."""
    found = {}
    if quotes:
        for good, kind in [*((g, TradeType.EXPORT) for g in exports),
                           *((g, TradeType.IMPORT) for g in imports),
                           *((g, TradeType.EXCHANGE) for g in exchange)]:
            s, a, p = (*levels.get(good, (supply or "MODERATE", "WEAK")), 100)[:3]
            found[good] = quote(good, kind, s, None if kind is TradeType.EXCHANGE else a, p)
    return MarketSnapshot(
        waypoint=waypoint,
        exports=frozenset(exports),
        imports=frozenset(imports),
        exchange=frozenset(exchange),
        quotes=found,
    )
