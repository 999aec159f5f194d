"""Choosing where to buy and how much to pay (DESIGN.md §3, market choice)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping

from domain.enums import ActivityLevel, SupplyLevel
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


def reference_price(good: str, markets: Iterable[MarketSnapshot]) -> int | None:
    """The median purchase price of `good` over the sellers with quotes (the lone seller's
    price if there is one); None if nobody quotes it.

    Only sellers count: an import's purchase price is what the market would charge to
    sell back a good it consumes, several times the exporter's price, and would lift
    the median far above anything a careful buyer pays. A factory fixes this once, when
    it first needs the good, so that its own buying cannot raise the ceiling.
    """
    prices = [q.purchase_price for m in markets if m.sells(good) and (q := m.quote(good))]
    return int(statistics.median(prices)) if prices else None


def ceiling(reference: int | None, factor: float | None = DEFAULT_CEILING_FACTOR) -> int | None:
    """The highest price per unit to pay: `factor` × the reference; None means no cap."""
    if factor is None or reference is None:
        return None
    return int(reference * factor)


def buyable(quote: Quote | None, level: SupplyLevel, cap: int | None) -> bool:
    """Does an export's quote show a lot ready to collect: supply at `level` and a price a
    ship will pay (at most `cap`)? At the threshold but above the ceiling, nothing can be
    bought yet: the price falls as more is made, so the export has not answered."""
    return quote is not None and quote.supply >= level and (
        cap is None or quote.purchase_price <= cap)


def price_ceiling(good: str, markets: Iterable[MarketSnapshot],
                  factor: float | None = DEFAULT_CEILING_FACTOR) -> int | None:
    """`factor` × the median purchase price of `good` over the sellers seen."""
    return ceiling(reference_price(good, markets), factor)
