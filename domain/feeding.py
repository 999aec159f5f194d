"""Feeding an exporter until it answers.

Nobody outside the game knows how many units of input lift an export's supply by a
level, or how fast what is made drains away, so the factory does not guess. While a
station's export is below the threshold and a lot waits for it, it keeps the exporter's
imports stocked in balance (no input more than one lot ahead of another), skipping an
input whose own supply at the exporter is already saturated. It starts with one lot of
each input on the way; every round that landed long enough ago without the export
answering puts one more on the way, up to what the fleet can carry, and an answer brings
it back to one. It
stops when the export reaches the threshold. Each lot's outcome (the supply seen after
it) is logged by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from domain.enums import SupplyLevel
from domain.factory import Factory, Station
from domain.markets import MarketSnapshot

SATURATED = SupplyLevel.HIGH  # an import this well stocked gains nothing from more


@dataclass(frozen=True)
class FeedOrder:
    """Deliver one more lot of `good` to the station's exporter."""

    station: Station
    good: str


@dataclass(frozen=True)
class StationView:
    """What feeding decided about a station, for logs and status."""

    station: Station
    export: SupplyLevel | None  # the export's supply last seen
    saturated: tuple[str, ...]  # inputs not fed because the exporter is full of them
    answered: bool  # the export is at the threshold: no feeding
    unanswered: int = 0  # rounds of feeds landed since the export last answered
    in_flight: int = 1  # lots of each input allowed on the way now


def unanswered_rounds(station: Station, landed_by: datetime | None = None) -> int:
    """Rounds of feeds (a lot of every input) delivered since a collect there last
    bought something, counting only those landed by `landed_by` (the exporter has had
    time to answer them): how long the exporter has not answered."""
    answered = max((t.finished_at for t in station.collects if t.finished_at
                    and t.units_bought), default=None)
    landed = [t for t in station.feeds if t.units_delivered and t.finished_at
              and (answered is None or t.finished_at > answered)
              and (landed_by is None or t.finished_at <= landed_by)]
    inputs = max(1, len(station.inputs))
    return len(landed) // inputs


def plan_feeds(factory: Factory, latest: Callable[[str], MarketSnapshot | None],
               per_input: int = 1, most: int = 1, landed_by: datetime | None = None
               ) -> tuple[list[FeedOrder], list[StationView]]:
    """The feeds to start now, and how each station with waiting lots stands. `most`
    caps the lots of one input on the way (the haulers there are to carry them); a round
    counts as unanswered once it landed by `landed_by`."""
    orders: list[FeedOrder] = []
    views: list[StationView] = []
    for station in factory.stations().values():
        if not station.waiting:
            continue
        snapshot = latest(station.waypoint)
        export = snapshot.quote(station.good) if snapshot else None
        level = export.supply if export else None
        if level is not None and level >= factory.min_supply:
            views.append(StationView(station, level, (), True))
            continue
        saturated = tuple(g for g in station.inputs if snapshot and (q := snapshot.quote(g))
                          and q.supply >= SATURATED)
        hungry = [g for g in station.inputs if g not in saturated]
        started = {g: len(station.feeds_of(g)) for g in hungry}
        rounds = unanswered_rounds(station, landed_by)
        allowed = max(per_input, min(most, per_input + rounds))
        for good in hungry:
            in_flight = sum(1 for t in station.feeds_of(good) if not t.finished)
            if in_flight >= allowed:
                continue
            if started[good] > min(started.values()) + allowed - 1:
                continue  # balance: let the other inputs catch up first
            orders.append(FeedOrder(station, good))
        views.append(StationView(station, level, saturated, False, rounds, allowed))
    return orders, views
