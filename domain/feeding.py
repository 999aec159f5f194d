"""Feeding an exporter until it answers.

Nobody outside the game knows how many units of input lift an export's supply by a
level, or how fast what is made drains away, so the factory does not guess. While a
station's export is below the threshold and a lot waits for it, it keeps the exporter's
imports stocked in balance (no input sent more lots ahead of what the others delivered
than are allowed on the way: the exporter may need them all), skipping an
input whose own supply at the exporter is already saturated. It starts with one lot of
each input on the way for each lot waiting there (a good two branches of the tree make
at the same exporter is fed for both at once, not one production round after the
other). Once a round for each waiting lot has landed, the last one is given time to be
answered (`landed_by`) before more go: it may be all the exporter needed, and the ships
are better kept for the collect; each round that landed that long ago without the
export answering puts one more lot on the way, up to what the fleet can carry, and an
answer brings it back. It stops when the export reaches the threshold. Each lot's
outcome (the supply seen after it) is logged by the caller.

How many rounds an exporter needs is not published either, so each answer to our rounds
is read for it (`answer_rounds`) and kept; a station whose exporter was seen to need
several starts with that many on the way (`rounds_needed`) rather than ramping from one
again, round trip after round trip.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.enums import SupplyLevel
from domain.factory import Factory, Station
from domain.markets import MarketSnapshot
from domain.ranking import buyable

SATURATED = SupplyLevel.HIGH  # an import this well stocked gains nothing from more


@dataclass(frozen=True)
class FeedOrder:
    """Deliver `lots` more lots of `good` to the station's exporter, in one go (a hold
    that takes them all carries them in one trip)."""

    station: Station
    good: str
    lots: int = 1


@dataclass(frozen=True)
class StationView:
    """What feeding decided about a station, for logs and status."""

    station: Station
    export: SupplyLevel | None  # the export's supply last seen
    saturated: tuple[str, ...]  # inputs not fed because the exporter is full of them
    answered: bool  # the export is at the threshold: no feeding
    unanswered: int = 0  # rounds of feeds landed since the export last answered
    in_flight: int = 1  # lots of each input allowed on the way now


def unanswered_rounds(station: Station, landed_by: datetime | None = None,
                      awaited: Iterable[str] | None = None) -> int:
    """Whole rounds of feeds (a lot of each `awaited` input, by default all of them)
    delivered since a collect there last bought something, counting only those landed by
    `landed_by` (the exporter has had time to answer them): how long the exporter has
    not answered. Two lots of one input and none of the other is no round: the exporter
    may be waiting for the other. A feed that carried several lots at once and landed
    before some answers still counts the lots those answers did not use up: one answer
    is one lot's worth."""
    # a collect that bought was answered when it set off (its ship may still be flying)
    answers = [when for t in station.collects
               if t.units_bought and (when := t.started_at or t.finished_at)]
    # a feed that delivered is landed, its trip's end just being reported if unfinished
    landed: Counter[str] = Counter()
    for t in station.feeds:
        landed_at = t.landed
        if t.units_delivered and (landed_by is None
                                  or (landed_at and landed_at <= landed_by)):
            since = 0 if landed_at is None else sum(1 for a in answers if a >= landed_at)
            landed[t.good] += max(0, station.lots_landed(t) - since)
    return min((landed[g] for g in (station.inputs if awaited is None else awaited)),
               default=0)


def answer_rounds(station: Station, answered_at: datetime, wait: float
                  ) -> tuple[int, int] | None:
    """What an answer at `answered_at` says of the rounds the exporter needs, as (at
    least, at most): more than those landed `wait` before it (they had their time and
    were not answered), no more than all those landed by then. None: no whole round of
    ours landed (the exporter recovered on its own, or had what we never fed it)."""
    fed = [g for g in station.inputs if any(t.units_delivered for t in station.feeds_of(g))]
    most = unanswered_rounds(station, answered_at, fed)
    if most < 1:
        return None
    had_time = unanswered_rounds(station, answered_at - timedelta(seconds=wait), fed)
    return min(most, had_time + 1), most


def rounds_needed(seen: Iterable[tuple[int, int]]) -> int:
    """The rounds an exporter needs to answer once, from what its answers said (oldest
    first): each narrows the guess to its bounds, starting from one. Lots sent together
    all land before the answer, so an answer to them cannot raise the guess past what
    was sent (no ratchet); one that comes before all the lots sent landed lowers it."""
    need = 1
    for least, most in seen:
        need = min(max(need, least), most)
    return need


def saturated_inputs(station: Station, snapshot: MarketSnapshot | None) -> tuple[str, ...]:
    """The station's inputs the exporter is full of, as last seen: more gains nothing,
    and no round waits for them."""
    return tuple(g for g in station.inputs if snapshot and (q := snapshot.quote(g))
                 and q.supply >= SATURATED)


def lacking(station: Station, snapshot: MarketSnapshot | None) -> list[str]:
    """The inputs the exporter lacks, as last seen (all but those it is full of): lacking
    none, it needs no feed and its export may rise any time."""
    return _hungry(station, saturated_inputs(station, snapshot))


def rounds_landed(station: Station, snapshot: MarketSnapshot | None) -> int:
    """Whole rounds of what the exporter lacks landed since it last answered (each may
    make a lot); lacking nothing, one: it may rise any time."""
    hungry = lacking(station, snapshot)
    return unanswered_rounds(station, awaited=hungry) if hungry else 1


def round_landed(station: Station, snapshot: MarketSnapshot | None) -> bool:
    """Whether a whole round of what the exporter lacks has landed since it last
    answered: until then its export is not about to rise, and the ships are needed to
    bring the rest. Lacking nothing, it may rise any time."""
    return rounds_landed(station, snapshot) >= 1


def _hungry(station: Station, saturated: tuple[str, ...]) -> list[str]:
    return [g for g in station.inputs if g not in saturated]


def plan_feeds(factory: Factory, latest: Callable[[str], MarketSnapshot | None],
               per_input: int = 1, most: int = 1, landed_by: datetime | None = None,
               hold: int = 1, ceiling: Callable[[str], int | None] = lambda good: None,
               needs: Callable[[Station], int] = lambda station: 1
               ) -> tuple[list[FeedOrder], list[StationView]]:
    """The feeds to start now, and how each station with waiting lots stands. `most`
    caps the lots of one input on the way (the haulers there are to carry them); a round
    counts as unanswered once it landed by `landed_by`. The lots of one input that the
    lots waiting there need are ordered together, up to `hold` (the lots the largest hold
    takes): the same good from the same seller to the same exporter is one trip, not one
    per lot (COPPER made at one exporter for two consumers needs two lots of COPPER_ORE).
    Lots sent on speculation (the export has not answered) go one by one, so that the
    fleet can carry them side by side. An export at the threshold but dearer than the
    good's `ceiling` has not answered: more made is what brings its price down. A
    station `needs` the rounds its exporter was seen to need for each answer: that many
    go for each lot waiting there from the start, as far as the fleet carries them."""
    orders: list[FeedOrder] = []
    views: list[StationView] = []
    for station in factory.stations().values():
        if not station.waiting:
            continue
        snapshot = latest(station.waypoint)
        export = snapshot.quote(station.good) if snapshot else None
        level = export.supply if export else None
        if buyable(export, factory.min_supply, ceiling(station.good)):
            views.append(StationView(station, level, (), True))
            continue
        saturated = saturated_inputs(station, snapshot)
        hungry = _hungry(station, saturated)
        landed = {g: sum(station.lots_landed(t) for t in station.feeds_of(g)) for g in hungry}
        rounds = unanswered_rounds(station, landed_by, hungry)  # saturated: not awaited
        landed_rounds = unanswered_rounds(station, None, hungry)
        need = min(most, needs(station) * len(station.waiting))
        if landed_rounds > rounds and landed_rounds >= max(need, len(station.waiting)):
            # a round just landed and all each lot waiting needs were sent: give the
            # exporter its time to answer before sending more on speculation
            views.append(StationView(station, level, saturated, False, rounds, 0))
            continue
        base = max(need, per_input * len(station.waiting))  # each lot waiting is fed for
        allowed = max(base, min(most, base + rounds))
        for good in hungry:
            in_flight = sum(station.lots(t) for t in station.feeds_of(good) if not t.finished)
            room = allowed - in_flight
            others = [landed[g] for g in hungry if g != good]
            if others:  # balance: no input more lots ahead than allowed of what landed
                room = min(room, min(others) + allowed - landed[good] - in_flight)
            if room >= 1:  # what each waiting lot needs in one hold; more lot by lot
                together = min(room, max(1, hold), max(1, base - in_flight))
                orders.append(FeedOrder(station, good, together))
        views.append(StationView(station, level, saturated, False, rounds, allowed))
    return orders, views


ANSWER_MARGIN = 1.5  # an exporter is given this times the longest answer seen so far
ANSWER_CAP = 4.0  # but never more than this times the setting: a later answer is no
# answer to our round (the exporter recovered on its own)


def answer_wait(setting: float, seen: Iterable[float]) -> float:
    """Seconds an exporter is given to answer a round of feeds that landed, before the
    round counts as unanswered (more lots go, a ship standing by leaves): the setting, or
    longer where answers were seen to take longer. The game does not publish how long
    production takes; in a slow economy answers came 180-310 s after a landing, against
    a setting of 180, and a ship standing by for the output left for another lot just
    before the answer (seen: 400 s lost). Never shorter than the setting: an answer seen
    quickly says nothing of a round that has not answered yet."""
    cap = ANSWER_CAP * setting
    longest = max((s for s in seen if 0 < s <= cap), default=0.0)
    return max(setting, min(ANSWER_MARGIN * longest, cap))
