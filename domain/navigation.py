"""Distances, flight times, fuel costs and routes with refuel stops (MECHANICS.md §1-3)."""

from __future__ import annotations

import heapq
import math
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from domain.enums import FlightMode
from domain.errors import NoRouteError

MULTIPLIER = {
    FlightMode.CRUISE: 25.0,
    FlightMode.BURN: 12.5,
    FlightMode.DRIFT: 250.0,
    FlightMode.STEALTH: 30.0,
}
FUEL_PER_MARKET_UNIT = 100
# A direct leg flown in the asked mode is as fast as any route through a stop when one
# unit of distance takes no more than this many seconds: a stop adds a leg's 15 s, and
# rounding the legs' distances and seconds saves at most one unit and a second and a half.
DIRECT_IS_FASTEST = 13.5


def round_half_up(value: float) -> int:
    """The server rounds like JavaScript's Math.round, not like Python's banker's round."""
    return math.floor(value + 0.5)


@dataclass(frozen=True)
class Place:
    """A waypoint as the route planner sees it."""

    symbol: str
    x: int
    y: int
    sells_fuel: bool = False


def distance(a: Place, b: Place) -> float:
    return math.hypot(b.x - a.x, b.y - a.y)


class Pace:
    """How long flights really take, as a multiple of the formula's seconds.

    The formula is the game's, but the clock it runs on is not ours to assume (a server
    may run faster than real time, or round differently): the scheduler weighs flight
    times against the wall clock (ships landing, polls, waits), so it learns the ratio
    from the flights it sees, the median of the last `window`, 1 until the first."""

    def __init__(self, window: int = 16):
        self._ratios: deque[float] = deque(maxlen=window)
        self.factor = 1.0

    def observe(self, predicted: float, observed: float) -> None:
        if predicted > 0 and observed > 0:
            self._ratios.append(observed / predicted)
            self.factor = statistics.median(self._ratios)


def travel_seconds(dist: float, speed: int, mode: FlightMode = FlightMode.CRUISE) -> int:
    """`round(round(max(1, d)) * multiplier / speed + 15)`; orbitals at d=0 count as 1."""
    if speed <= 0:
        raise ValueError("engine speed must be positive")
    return round_half_up(round_half_up(max(1.0, dist)) * MULTIPLIER[mode] / speed + 15)


def least_seconds(dist: float, speed: int, mode: FlightMode = FlightMode.CRUISE) -> float:
    """What no route over a straight line of `dist` beats, flown in `mode` or drifting:
    each leg takes at least its distance at the mode's pace, since its 15 s more than
    make up for rounding its distance, for a pace up to 29 s a unit (beyond, at least 29)."""
    return dist * min(MULTIPLIER[mode] / max(1, speed), 29.0)


def fuel_cost(dist: float, mode: FlightMode = FlightMode.CRUISE, fuel_capacity: int = 1) -> int:
    """Fuel a leg burns; ships without a tank (probes) fly for free."""
    if fuel_capacity == 0:
        return 0
    d = round_half_up(dist)
    if mode is FlightMode.DRIFT:
        return 1
    if mode is FlightMode.BURN:
        return max(2, 2 * d)
    return max(1, d)


def refuel_market_units(fuel_added: int) -> int:
    """Market FUEL units billed for adding `fuel_added` to the tank."""
    return math.ceil(fuel_added / FUEL_PER_MARKET_UNIT)


@dataclass(frozen=True)
class Leg:
    origin: str
    destination: str
    mode: FlightMode
    distance: float
    fuel: int
    seconds: int
    refuel_before: bool = False


@dataclass(frozen=True)
class Route:
    legs: tuple[Leg, ...]

    @property
    def seconds(self) -> int:
        return sum(leg.seconds for leg in self.legs)

    @property
    def fuel(self) -> int:
        return sum(leg.fuel for leg in self.legs)

    @property
    def refuel_stops(self) -> list[str]:
        return [leg.origin for leg in self.legs if leg.refuel_before]


def plan_route(
    places: Mapping[str, Place],
    origin: str,
    destination: str,
    *,
    fuel: int,
    fuel_capacity: int,
    speed: int,
    mode: FlightMode = FlightMode.CRUISE,
) -> Route:
    """The fastest route, refuelling to full at FUEL markets when a leg exceeds the tank.

    Legs fly in `mode` where the fuel allows and fall back to DRIFT (1 fuel) only where
    nothing else reaches, so a stranded ship still gets home. Raises NoRouteError.
    For many searches on one map, keep a `RouteMap`.
    """
    return RouteMap(places).route(origin, destination, fuel=fuel, fuel_capacity=fuel_capacity,
                                  speed=speed, mode=mode)


class RouteMap:
    """A system's waypoints for route searches, each FUEL market's distances to the other
    FUEL markets worked out on its first use and kept: every pass of every factory asks
    for routes on the same map, and a search then mostly adds up numbers."""

    def __init__(self, places: Mapping[str, Place]):
        self.places = places
        self._stops = [p for p in places.values() if p.sells_fuel]
        self._rows: dict[str, list[tuple[Place, int]]] = {}
        self._edges: dict[tuple, list[tuple[Place, tuple[int, int], tuple[int, int]]]] = {}

    def _row(self, a: Place) -> list[tuple[Place, int]]:
        """(stop, rounded distance) from `a` to every other FUEL market: the fuel and time
        of a leg depend on the distance rounded."""
        row = self._rows.get(a.symbol)
        if row is None:
            row = [(b, round_half_up(distance(a, b))) for b in self._stops if b is not a]
            if a.sells_fuel:  # other origins are asked about once or twice
                self._rows[a.symbol] = row
        return row

    def _edges_from(self, a: Place, mode: FlightMode, speed: int, capacity: int
                    ) -> list[tuple[Place, tuple[int, int], tuple[int, int]]]:
        """(stop, fuel in `mode` and drifting, seconds in `mode` and drifting) from `a` to
        every other FUEL market, for one kind of ship: what a search adds up, worked out
        once."""
        key = (a.symbol, mode, speed, capacity)
        edges = self._edges.get(key)
        if edges is None:
            edges = [_edge(b, rounded, mode, speed, capacity) for b, rounded in self._row(a)]
            if a.sells_fuel:
                self._edges[key] = edges
        return edges

    def route(self, origin: str, destination: str, *, fuel: int, fuel_capacity: int,
              speed: int, mode: FlightMode = FlightMode.CRUISE) -> Route:
        """See `plan_route`."""
        places = self.places
        if origin == destination:
            return Route(())
        for symbol in (origin, destination):
            if symbol not in places:
                raise NoRouteError(f"unknown waypoint {symbol}")
        if fuel_capacity == 0:
            return Route((_leg(places[origin], places[destination], mode, 0, speed),))

        start, goal = places[origin], places[destination]
        if MULTIPLIER[mode] / speed <= DIRECT_IS_FASTEST:
            direct = _cheapest_leg(start, goal, mode, fuel_capacity, speed, fuel,
                                   start.sells_fuel)
            if direct is not None and direct[0].mode is mode:  # no stop makes up its 15 s
                return Route((direct[0],))
        # an estimate that never overshoots, so A* stays exact
        estimate = {p.symbol: least_seconds(distance(p, goal), speed, mode)
                    for p in (*self._stops, places[origin], goal)}

        # A* on time; a label is (estimate, tie-break, seconds, place, fuel left, trail),
        # the trail a chain (previous trail, leg) so that legs are built only for the route
        # found. The goal is a stop of every search. A place is expanded again only with a
        # label no earlier expansion there beats on both time and fuel.
        modes = (mode, FlightMode.DRIFT)  # what `_burn` chooses between
        frontier: list[tuple] = [(estimate[origin], 0, 0, origin, fuel, None)]
        expanded: dict[str, list[tuple[int, int]]] = {}
        counter = 0
        while frontier:
            _, _, seconds, here, left, trail = heapq.heappop(frontier)
            if here == destination:
                return Route(_legs(trail, speed))
            labels = expanded.setdefault(here, [])
            if any(t <= seconds and f >= left for t, f in labels):
                continue
            labels.append((seconds, left))
            a = places[here]
            edges = self._edges_from(a, mode, speed, fuel_capacity)
            if not goal.sells_fuel:
                edges = [*edges, _edge(goal, round_half_up(distance(a, goal)), mode, speed,
                                       fuel_capacity)]
            for b, costs, times in edges:
                burnt = _burn(costs, left, fuel_capacity, a.sells_fuel)
                if burnt is None:
                    continue
                i, refuel, remaining = burnt
                flown, cost, arrive = modes[i], costs[i], seconds + times[i]
                there = expanded.get(b.symbol)
                if there and any(t <= arrive and f >= remaining for t, f in there):
                    continue  # no better than a label already expanded there
                counter += 1
                heapq.heappush(frontier, (arrive + estimate[b.symbol], counter, arrive,
                                          b.symbol, remaining,
                                          (trail, a, b, flown, cost, refuel)))
        raise NoRouteError(f"no route from {origin} to {destination} with a {fuel_capacity} "
                           "fuel tank")


def _edge(b: Place, rounded: int, mode: FlightMode, speed: int, capacity: int
          ) -> tuple[Place, tuple[int, int], tuple[int, int]]:
    modes = (mode, FlightMode.DRIFT)
    return (b, tuple(fuel_cost(rounded, m, capacity) for m in modes),
            tuple(travel_seconds(rounded, speed, m) for m in modes))


def _legs(trail: tuple | None, speed: int) -> tuple[Leg, ...]:
    """The legs of a label's trail, first to last."""
    legs: list[Leg] = []
    while trail is not None:
        trail, a, b, mode, cost, refuel = trail
        legs.append(_leg(a, b, mode, cost, speed, refuel))
    return tuple(reversed(legs))


def _step(d: float, mode: FlightMode, capacity: int, left: int, can_refuel: bool
          ) -> tuple[FlightMode, int, bool, int] | None:
    """How a leg of `d` (the distance, or the distance rounded: the fuel is the same) is
    flown with `left` fuel: (mode, fuel, refuel first, fuel left), in `mode` if the tank
    (filled first where fuel is sold) allows, else drifting."""
    modes = (mode, FlightMode.DRIFT)
    costs = (fuel_cost(d, mode, capacity), fuel_cost(d, FlightMode.DRIFT, capacity))
    burnt = _burn(costs, left, capacity, can_refuel)
    if burnt is None:
        return None
    i, refuel, remaining = burnt
    return modes[i], costs[i], refuel, remaining


def _burn(costs: tuple[int, int], left: int, capacity: int, can_refuel: bool
          ) -> tuple[int, bool, int] | None:
    """Which of a leg's `costs` (in the asked mode, then drifting) it is flown on with
    `left` fuel: (0 or 1, refuel first, fuel left), the first the tank (filled first where
    fuel is sold) allows."""
    for i, cost in enumerate(costs):
        if cost <= left:
            return i, False, left - cost
        if can_refuel and cost <= capacity:
            return i, True, capacity - cost
    return None


def _cheapest_leg(
    a: Place, b: Place, mode: FlightMode, capacity: int, speed: int, left: int, can_refuel: bool
) -> tuple[Leg, int] | None:
    step = _step(distance(a, b), mode, capacity, left, can_refuel)
    if step is None:
        return None
    flown, cost, refuel, remaining = step
    return _leg(a, b, flown, cost, speed, refuel), remaining


def _leg(a: Place, b: Place, mode: FlightMode, cost: int, speed: int, refuel: bool = False) -> Leg:
    d = distance(a, b)
    return Leg(a.symbol, b.symbol, mode, d, cost, travel_seconds(d, speed, mode), refuel)
