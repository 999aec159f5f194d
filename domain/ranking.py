"""Choosing where to buy and how much to pay (DESIGN.md §3, market choice)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping

from domain.enums import ActivityLevel
from domain.markets import MarketSnapshot, Quote
from domain.navigation import Place, distance

DEFAULT_CEILING_FACTOR = 1.5


def seller_key(
    quote: Quote, waypoint: str, origin: Place | None, places: Mapping[str, Place] | None
) -> tuple:
    """Sort key: most supply, then strongest activity, then cheapest, then nearest."""
    activity = quote.activity or ActivityLevel.WEAK
    far = 0.0
    if origin is not None and places and waypoint in places:
        far = distance(origin, places[waypoint])
    return (-quote.supply, -activity, quote.purchase_price, far, waypoint)


def rank_sellers(
    good: str,
    markets: Iterable[MarketSnapshot],
    origin: Place | None = None,
    places: Mapping[str, Place] | None = None,
) -> list[tuple[MarketSnapshot, Quote]]:
    """Markets that sell `good` and have quotes for it, best first."""
    found = [
        (market, quote)
        for market in markets
        if market.sells(good) and (quote := market.quote(good)) is not None
    ]
    return sorted(found, key=lambda mq: seller_key(mq[1], mq[0].waypoint, origin, places))


def price_ceiling(
    good: str, markets: Iterable[MarketSnapshot], factor: float | None = DEFAULT_CEILING_FACTOR
) -> int | None:
    """`factor` × the median purchase price of `good` over the sellers seen; None means no cap.

    Only sellers count: an import's purchase price is what the market would charge to
    sell back a good it consumes, several times the exporter's price, and would lift
    the median far above anything a careful buyer pays.
    """
    if factor is None:
        return None
    prices = [
        q.purchase_price
        for m in markets
        if m.sells(good) and (q := m.quote(good)) is not None
    ]
    if not prices:
        return None
    return int(statistics.median(prices) * factor)
