"""Who does what next: tasks to ships, markets to read, and where idle ships wait.

Tasks go out oldest lot first and, within a lot, longest remaining path first, each to
the ship that would finish it earliest from where it is, at its own speed, with the
fuel stops its route needs, and the trips its hold needs. Goods already in a hold stay
with that ship's task. Markets to read go to whichever ship (probes included) reaches
them first. Everything here is pure: callers pass the ships, the places and `now`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from domain.errors import NoRouteError
from domain.factory import Factory, Task, TaskKind
from domain.navigation import (
    Place,
    RouteMap,
    distance,
    fuel_cost,
    least_seconds,
    travel_seconds,
)

UNREACHABLE = 10**9  # seconds: a ship that cannot get there
WAIT_GAIN = 0.8  # a task waits for a busy ship only if it would finish this much sooner
FUEL_STEPS = 10  # a route's starting fuel is remembered in tenths of the tank


@dataclass(frozen=True)
class ShipView:
    """A ship as the scheduler sees it: where it is (or lands), when it is free, and how
    fast, how far and how much it carries."""

    symbol: str
    waypoint: str
    speed: int
    fuel: int
    fuel_capacity: int
    cargo_capacity: int
    cargo_free: int
    free_in: float = 0.0  # seconds until it lands at `waypoint`
    carrying: Mapping[str, int] = field(default_factory=dict)  # task id -> units held

    @property
    def is_hauler(self) -> bool:
        return self.cargo_capacity > 0


class TravelTimes:
    """Flight times with refuel stops, memoised (positions and fuel markets never move;
    the starting fuel in tenths of the tank), in the formula's seconds times `pace` (the
    observed ratio to the wall clock, see `navigation.Pace`), so that they add up with
    ships' landing times and waits."""

    def __init__(self, places: Mapping[str, Place], pace: float = 1.0):
        self.places = places
        self.pace = pace
        self.map = RouteMap(places)  # shared with the ships' own route searches
        self._memo: dict[tuple, float] = {}

    def seconds(self, origin: str, destination: str, speed: int, fuel: int,
                capacity: int) -> float:
        if origin == destination:
            return 0.0
        a, b = self.places.get(origin), self.places.get(destination)
        if a is None or b is None:
            return UNREACHABLE
        d = distance(a, b)
        if capacity == 0 or fuel_cost(d, fuel_capacity=capacity) <= fuel:
            return travel_seconds(d, max(1, speed)) * self.pace
        # fuel in tenths of the tank, rounded down: a route found with less fuel flies
        # with more, and ships' many fuel levels share a few routes; exact if that fails
        found = self._route(origin, destination, speed, fuel - fuel % max(
            1, capacity // FUEL_STEPS), capacity)
        if found >= UNREACHABLE:
            found = self._route(origin, destination, speed, fuel, capacity)
        return found if found >= UNREACHABLE else found * self.pace

    def at_least(self, origin: str, destination: str, speed: int) -> float:
        """What no route between the two beats, without a search (`least_seconds`); 0 for
        an unknown place."""
        a, b = self.places.get(origin), self.places.get(destination)
        if a is None or b is None:
            return 0.0
        return least_seconds(distance(a, b), speed) * self.pace

    def _route(self, origin: str, destination: str, speed: int, fuel: int,
               capacity: int) -> float:
        key = (origin, destination, speed, capacity, fuel)
        if key not in self._memo:
            try:
                self._memo[key] = float(self.map.route(origin, destination, fuel=fuel,
                                                        fuel_capacity=capacity,
                                                        speed=max(1, speed)).seconds)
            except NoRouteError:
                self._memo[key] = UNREACHABLE
        return self._memo[key]


@dataclass(frozen=True)
class Assignment:
    task: Task
    ship: str
    finish_in: float  # estimated seconds until the task's goods are delivered


def priority(task: Task, path: float = 0.0, lot: int | None = None) -> tuple:
    """Older lots first, and within a lot the longest remaining `path` first (see
    `remaining_paths`), then the deeper, then creation. `lot`: the lot of the target the
    task works towards (`serving_lots`; its own number by default). A station's lots
    that waiting lots need are what its progress waits for; further lots are fed on
    speculation (the export has not answered yet) and must not take the ship a collect
    on the critical path needs."""
    return (task.lot if lot is None else lot, -path, -task.depth,
            task.created_at.timestamp() if task.created_at else 0.0, task.id)


def serving_lots(factory: Factory) -> dict[str, int]:
    """The lot of the target each task works towards. An output is its own lot; the
    k-th lot of an input fed to a station goes into the k-th lot made there, so it
    serves what that lot serves, and one beyond the lots waiting there is fed on
    speculation, after them. (A station's own lot numbers count its feeds of one good:
    COPPER made at one exporter for ELECTRONICS and for MICROPROCESSORS needs two lots
    of COPPER_ORE, and the second is as urgent as the first.) Finished tasks count too,
    so that the k-th lot is counted from the start."""
    stations = factory.stations()
    made: dict[str, list[Task]] = {}  # each station's lots, in the order they were opened
    slot: dict[str, int] = {}  # each feed's first lot among its good's lots there
    for key, st in stations.items():
        made[key] = sorted(st.collects, key=lambda t: (
            t.created_at.timestamp() if t.created_at else 0.0, t.lot, t.id))
        for good in {t.good for t in st.feeds}:
            count = 0
            for t in sorted(st.feeds_of(good), key=lambda t: t.lot):
                slot[t.id] = count
                count += st.lots(t)
    memo: dict[str, int] = {}

    def lot_of(t: Task) -> int:
        if t.id not in memo:
            lots = made.get(t.station, []) if t.station is not None else []
            k = slot.get(t.id, 0)
            if not lots:
                memo[t.id] = t.lot
            elif k < len(lots):
                memo[t.id] = lot_of(lots[k])
            else:
                memo[t.id] = lot_of(lots[-1]) + k - len(lots) + 1
        return memo[t.id]

    return {t.id: lot_of(t) for t in factory.tasks.values()}


def remaining_paths(tasks: Iterable[Task], places: Mapping[str, Place],
                    destination_of: Callable[[Task], str | None]) -> dict[str, float]:
    """Each task's remaining path, in distance flown: from where it buys to where its
    goods go, then on with what they are made into (the longest way, where a station's
    output goes to several consumers) up to where the target goes. Two lots of one good
    at one exporter (COPPER for ELECTRONICS and for MICROPROCESSORS) are equally deep;
    the one whose product still has further to go is on the critical path."""
    tasks = list(tasks)
    collects: dict[str, list[Task]] = {}
    for t in tasks:
        if t.kind is TaskKind.COLLECT:
            collects.setdefault(t.station_here, []).append(t)
    memo: dict[str, float] = {}

    def flown(a: str, b: str | None) -> float:
        return distance(places[a], places[b]) if b and a in places and b in places else 0.0

    def path(t: Task, seen: frozenset[str]) -> float:
        if t.id not in memo:
            onward = 0.0
            if t.station and t.station not in seen:
                onward = max((path(c, seen | {t.station}) for c in collects.get(t.station, ())),
                             default=0.0)
            memo[t.id] = flown(t.source, destination_of(t)) + onward
        return memo[t.id]

    return {t.id: path(t, frozenset()) for t in tasks}


def assign(tasks: Iterable[Task], ships: Iterable[ShipView], times: TravelTimes,
           destination_of: Mapping[str, str | None], *,
           busy_sources: Mapping[tuple[str, str], list[float | None]] | None = None,
           per_source_cap: int | None = None, at_once: float = math.inf,
           standing_by: Mapping[str, StandBy] | None = None,
           speculative: Iterable[str] = (), arriving: Iterable[ShipView] = (),
           ranks: Mapping[str, tuple] | None = None) -> list[Assignment]:
    """Give each ready task (by priority) the idle ship that finishes it first.

    `destination_of[task.id]` is where its goods go (None: they stay in the hold);
    `busy_sources` holds, for each good at each market, when each ship already on its
    way to buy it there gets there (seconds from now; None: not known). No more than
    `per_source_cap` ships buy one good at one market at once — within `at_once`
    seconds of each other: each purchase raises that good's price there (not the
    others'), until the market has had time to move on its own.
    Ships `standing_by` at an exporter about to have output are not given `speculative`
    tasks (more lots for that exporter, which may not be needed, and what comes after
    the lot due there: the caller says which), but such a task waits for one of them as
    for a busy ship, free once its lot is delivered, unless it goes to an exporter a ship
    stands by at (more lots there are dropped if it answers: seen in a hungry economy, a
    light hauler's lot of FERTILIZERS held back for the frigate, then dropped, and the
    exporter short of it for the next round). A task that one of the
    busy ships `arriving` (flying to look or to stand by, or on another trip: each free
    at its `waypoint` in `free_in`) would finish in `WAIT_GAIN` of any idle ship's time
    (or sooner at all, if it has landed there) waits for it, and that ship is kept for
    it (not for less: when it lands it may be wanted elsewhere, and the idle ship would
    have been wasted meanwhile). `ranks`: each task's `priority`, if not by its own lot
    with no path.
    """
    standing_by, speculative = dict(standing_by or {}), set(speculative)
    coming = {s.symbol: s for s in arriving if s.is_hauler}
    free = {s.symbol: s for s in ships if s.is_hauler}
    # seen: a light hauler given a 1,900-s trip for an input the frigate, standing by for
    # a lot due 60 s later, would have delivered 540 s sooner after it
    later = {s.symbol: ShipView(s.symbol, sb.end, s.speed, s.fuel_capacity, s.fuel_capacity,
                                s.cargo_capacity, s.cargo_capacity, sb.done)
             for s in free.values() if (sb := standing_by.get(s.symbol)) is not None}
    awaited = {sb.waypoint for sb in standing_by.values()}  # more lots there may be dropped
    busy = {key: list(etas) for key, etas in (busy_sources or {}).items()}

    def capped(task: Task, ship: ShipView) -> bool:
        """Whether `ship` would buy `task`'s good at once with `per_source_cap` others."""
        buyers = busy.get((task.source, task.good), ())
        if per_source_cap is None or not task.to_buy or len(buyers) < per_source_cap:
            return False  # no flight time to work out
        there = _at_source(task, ship, times)
        return sum(1 for eta in buyers
                   if eta is None or abs(eta - there) < at_once) >= per_source_cap

    out: list[Assignment] = []
    ranks = ranks or {}
    ordered = sorted(tasks, key=lambda t: (not _held_by(t, free),
                                           ranks.get(t.id) or priority(t)))
    for task in ordered:
        holders = [s for s in free.values() if s.carrying.get(task.id)]
        if task.carriers and not holders:
            continue  # its goods are on a ship that is busy elsewhere: wait for it
        candidates = holders or [s for s in free.values() if _room_for(s, task) and not (
            task.id in speculative and s.symbol in standing_by) and not capped(task, s)]
        if task.attempts and not holders:  # it failed there: another ship, if any
            candidates = [s for s in candidates if s.symbol != task.last_ship] or candidates
        best = None
        for ship in candidates:
            finish = finish_in(task, ship, times, destination_of.get(task.id))
            if finish >= UNREACHABLE:
                continue
            if best is None or (finish, ship.symbol) < (best[0], best[1].symbol):
                best = (finish, ship)
        if not holders:
            spec = task.id in speculative
            waited = [s for s in coming.values() if not (spec and s.symbol in standing_by)]
            if spec and destination_of.get(task.id) not in awaited:
                waited += [later[s] for s in later if s in free]
            sooner = min(((finish_in(task, s, times, destination_of.get(task.id)), s.symbol, s)
                          for s in waited if _room_for(s, task) and not capped(task, s)),
                         key=lambda c: c[:2], default=None)
            if sooner is not None and sooner[0] < UNREACHABLE:
                # a ship already where it will be free (its last trade under way) is
                # waited for like an idle one: no landing to be late (seen: a light hauler
                # took the trip the frigate would have made 150 s sooner, the frigate
                # selling there)
                gain = 1.0 if sooner[2].free_in <= 0 else WAIT_GAIN
                if best is None or sooner[0] < best[0] * gain:
                    coming.pop(sooner[1], None)  # wait for it to land
                    later.pop(sooner[1], None)
                    continue
        if best is None:
            continue
        out.append(Assignment(task, best[1].symbol, best[0]))
        del free[best[1].symbol]
        later.pop(best[1].symbol, None)
        if task.to_buy:
            busy.setdefault((task.source, task.good), []).append(
                _at_source(task, best[1], times))
    return out


def _at_source(task: Task, ship: ShipView, times: TravelTimes) -> float:
    """Seconds until `ship`, once free, lands where `task` buys."""
    return ship.free_in + times.seconds(ship.waypoint, task.source, ship.speed, ship.fuel,
                                        ship.fuel_capacity)


def finish_in(task: Task, ship: ShipView, times: TravelTimes, destination: str | None
              ) -> float:
    """Seconds until `ship` would have delivered all of `task` from where it is now."""
    held = ship.carrying.get(task.id, 0)
    room = ship.cargo_free + held
    trips = max(1, math.ceil(task.to_buy / room)) if task.to_buy and room > 0 else 1
    if task.to_buy:
        there, here = _at_source(task, ship, times), task.source
    else:  # only delivering what it holds
        there, here = ship.free_in, ship.waypoint
    loaded = 0.0
    if destination is not None:
        loaded = times.seconds(here, destination, ship.speed, ship.fuel_capacity,
                               ship.fuel_capacity)
    back = 0.0
    if trips > 1 and destination is not None:
        back = times.seconds(destination, task.source, ship.speed, ship.fuel_capacity,
                             ship.fuel_capacity)
    return there + loaded + (trips - 1) * (back + loaded)


DUPLICATE_GAIN = 0.5  # a market already being read gets a second ship that halves the wait
ON_THE_WAY = 0.05  # a market read on the way may make the ship's own read this much later


def visits(waypoints: Iterable[str], idle: Iterable[ShipView], times: TravelTimes, *,
           flying: Iterable[ShipView] = (), en_route: Mapping[str, float] | None = None,
           carried_from: Mapping[str, int] | None = None, before: Collection[str] = (),
           carried_before: Collection[str] = ()) -> list[tuple[str, str, float]]:
    """The survey pass: (ship, waypoint, seconds) for the idle ships to go now.

    The pass ends when its last market is read, so that is what it shortens: the market
    the fleet can read only latest is given first to the ship that reads it soonest, then
    the next, each ship going on from its last market (so a fast ship takes the far
    markets and slow ones the near), and starting with the nearest of its share. `flying`
    ships (landing at their `waypoint` in `free_in`) take part but are not sent. A market
    in `en_route` (its expected reading, in seconds) gets an idle ship with nothing else
    to read only if that halves the wait, or, if it is in `carried_from` (a good needed
    whatever the reading says comes from there; the value: the least speed of a ship sent
    to carry it), if the idle ship is a hauler that fast: it will be there to carry,
    rather than the slow reader or a ship flying from afar once the reading is in.

    The markets in `before` (read for goods needed for sure, while the `waypoints` are
    speculative) are seen to before the `waypoints`, and so are the carriers of those in
    `carried_before` (their reader a probe, so a hauler must go whatever it reads): a
    speculative read would take the ship far away (seen: the frigate reading speculative
    markets while a probe flew to COPPER_ORE's one seller, and a light hauler carried the
    ore 800 s later; or while a light hauler took 900 s to reach COPPER's exporter).
    """
    idle = list(idle)
    ships = {s.symbol: s for s in [*flying, *idle]}
    at = {s.symbol: (s.free_in, s.waypoint) for s in ships.values()}
    todo = set(waypoints)
    routes: dict[str, list[str]] = {}
    en_route = en_route or {}
    carried_from = {w: v for w, v in (carried_from or {}).items() if w in en_route}
    first: dict[str, tuple[str, float]] = {}

    def reach(symbol: str, w: str, start: tuple[float, str] | None = None) -> float:
        free_in, here = start or at[symbol]
        ship = ships[symbol]
        fuel = ship.fuel if here == ship.waypoint else ship.fuel_capacity
        return free_in + times.seconds(here, w, ship.speed, fuel, ship.fuel_capacity)

    def extra(markets: Iterable[str], carried: Collection[str]) -> list[tuple[str, str, float]]:
        """An idle ship for each of the `markets` being read, the `carried` ones first
        (the soonest hauler fast enough to carry), then the longest wait (any ship that
        halves it)."""
        sent = []
        for w in sorted(markets, key=lambda m: (m not in carried, -en_route[m], m)):
            spare = [s for s in idle if s.symbol not in first]
            carriers = [(reach(s.symbol, w), s.symbol) for s in spare if w in carried
                        and s.is_hauler and s.speed >= carried_from[w]]
            best = min(carriers, default=None) or min(
                ((reach(s.symbol, w), s.symbol) for s in spare), default=None)
            if best is not None and best[0] < UNREACHABLE and (
                    carriers or best[0] <= en_route[w] * DUPLICATE_GAIN):
                first[best[1]] = (w, best[0])
                sent.append((best[1], w, best[0]))
        return sent

    out = extra(set(before) & set(en_route), set(carried_before) & set(carried_from))
    for symbol in first:
        del at[symbol]
    # each ship's reach of each market left, worked out again only for the ship that moved
    reaches = {sym: {w: reach(sym, w) for w in todo} for sym in at}
    while todo:
        soonest = {w: min((reaches[sym][w], sym) for sym in at) for w in todo} if at else {}
        reachable = {w: ts for w, ts in soonest.items() if ts[0] < UNREACHABLE}
        if not reachable:
            break
        w = max(reachable, key=lambda m: (reachable[m][0], m))
        t, symbol = reachable[w]
        routes.setdefault(symbol, []).append(w)
        at[symbol] = (t, w)
        todo.discard(w)
        reaches[symbol] = {m: reach(symbol, m) for m in todo}
    for symbol, route in routes.items():  # each ship starts with the nearest of its markets
        start = (ships[symbol].free_in, ships[symbol].waypoint)
        first[symbol] = min(((w, reach(symbol, w, start)) for w in route),
                            key=lambda p: (p[1], p[0]))
    out += [(s.symbol, *first[s.symbol]) for s in idle if s.symbol in routes]
    return out + extra(set(en_route) - {w for _s, w, _t in out}, set(carried_from))


def on_the_way(sent: list[tuple[str, str, float]], spare: Iterable[str],
               idle: Iterable[ShipView], times: TravelTimes,
               slack: float = ON_THE_WAY) -> list[tuple[str, str, float]]:
    """The survey pass's `sent` with each ship first reading, of the `spare` markets
    (those nobody was sent to), the one it reaches soonest that lies on its way: going
    there first makes its own market's reading at most `slack` later. Nobody's reading is
    delayed for it, and the next pass sends the ship on, so a market a ship flies past
    is read on the way instead of by another ship's flight later."""
    ships = {s.symbol: s for s in idle}
    spare = set(spare)
    out = []
    for symbol, waypoint, seconds in sent:
        ship = ships[symbol]
        ways = []
        for m in spare:
            if (times.at_least(ship.waypoint, m, ship.speed)
                    + times.at_least(m, waypoint, ship.speed) > seconds * (1 + slack)):
                continue  # off the way, whatever the route
            there = times.seconds(ship.waypoint, m, ship.speed, ship.fuel, ship.fuel_capacity)
            then = there + times.seconds(m, waypoint, ship.speed, ship.fuel_capacity,
                                         ship.fuel_capacity)
            if then <= seconds * (1 + slack):
                ways.append((there, m))
        if ways:
            there, m = min(ways)
            spare.discard(m)
            waypoint, seconds = m, there
        out.append((symbol, waypoint, seconds))
    return out


class StandBy(NamedTuple):
    """A ship sent to stand by: where, how soon it is there, and once the lot it waits
    for is out and delivered, how soon and where it is free again."""

    waypoint: str
    seconds: float
    done: float
    end: str


def stand_by(due: Iterable[tuple[str, str | None]], ships: Iterable[ShipView],
             times: TravelTimes, within: float | None = None) -> dict[str, StandBy]:
    """For each lot about to be output (the exporter's waypoint, where the lot goes, None:
    kept; most urgent first; an exporter with two lots due is named twice), the idle
    hauler that would have it there soonest, however far it is (idle, it has nothing
    better to do) or, given `within`, only if it gets there within that many seconds.
    One ship flies to an exporter to stand by; for its next lots, only ships already
    there stay."""
    free = [s for s in ships if s.is_hauler]
    out: dict[str, StandBy] = {}
    flying: set[str] = set()
    for waypoint, destination in due:
        best = None
        for s in free:
            if s.symbol in out or (waypoint in flying and (
                    s.waypoint != waypoint or s.free_in)):
                continue
            there = s.free_in + times.seconds(s.waypoint, waypoint, s.speed, s.fuel,
                                              s.fuel_capacity)
            done = there + (times.seconds(waypoint, destination, s.speed, s.fuel_capacity,
                                          s.fuel_capacity) if destination else 0.0)
            if done < UNREACHABLE and (within is None or there <= within) and (
                    best is None or (done, s.symbol) < best[:2]):
                best = (done, s.symbol, there)
        if best is not None:
            out[best[1]] = StandBy(waypoint, best[2], best[0], destination or waypoint)
            if best[2]:
                flying.add(waypoint)
    return out


def _held_by(task: Task, free: Mapping[str, ShipView]) -> bool:
    return any(s.carrying.get(task.id) for s in free.values())


def _room_for(ship: ShipView, task: Task) -> bool:
    """A ship can take a task if it has room to buy for it (or nothing is left to buy)."""
    return ship.cargo_free > 0 or not task.to_buy


