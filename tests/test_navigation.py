import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.enums import FlightMode
from domain.errors import NoRouteError
from domain.navigation import (
    Pace,
    Place,
    _cheapest_leg,
    distance,
    fuel_cost,
    plan_route,
    refuel_market_units,
    round_half_up,
    travel_seconds,
)
from tests.conftest import DATA


@pytest.mark.reference
def test_recorded_burn_route_matches_the_formulas():
    ships = json.loads((DATA / "X1-AD75" / "my-ships.json").read_text())
    frigate = next(s for s in ships if s["registration"]["role"] == "COMMAND")
    route = frigate["nav"]["route"]
    a = Place("A", route["origin"]["x"], route["origin"]["y"])
    b = Place("B", route["destination"]["x"], route["destination"]["y"])
    d = distance(a, b)
    assert round(d) == 117
    assert frigate["nav"]["flightMode"] == "BURN"
    assert travel_seconds(d, frigate["engine"]["speed"], FlightMode.BURN) == 56
    assert fuel_cost(d, FlightMode.BURN, frigate["fuel"]["capacity"]) == 234
    assert fuel_cost(d, FlightMode.BURN) == frigate["fuel"]["consumed"]["amount"]


@pytest.mark.parametrize("mode, d, speed, seconds, fuel", [
    (FlightMode.CRUISE, 100, 15, 182, 100),
    (FlightMode.CRUISE, 100, 36, 84, 100),
    (FlightMode.DRIFT, 100, 15, 1682, 1),
    (FlightMode.STEALTH, 100, 15, 215, 100),
    (FlightMode.BURN, 0, 36, 15, 2),
    (FlightMode.CRUISE, 0, 9, 18, 1),
])
def test_travel_and_fuel_table(mode, d, speed, seconds, fuel):
    assert travel_seconds(d, speed, mode) == seconds
    assert fuel_cost(d, mode) == fuel


def test_probes_fly_free_and_speed_must_be_positive():
    assert fuel_cost(500, FlightMode.CRUISE, fuel_capacity=0) == 0
    with pytest.raises(ValueError):
        travel_seconds(10, 0)


def test_rounding_is_half_up_like_the_server():
    assert round_half_up(2.5) == 3 and round_half_up(0.5) == 1 and round_half_up(-0.5) == 0
    assert refuel_market_units(234) == 3 and refuel_market_units(100) == 1
    assert refuel_market_units(0) == 0


def _line(*xs, fuel_at=()):
    return {f"W{x}": Place(f"W{x}", x, 0, f"W{x}" in fuel_at) for x in xs}


def test_direct_route_when_tank_suffices():
    places = _line(0, 300)
    route = plan_route(places, "W0", "W300", fuel=400, fuel_capacity=400, speed=15)
    assert [(leg.origin, leg.destination, leg.fuel) for leg in route.legs] == [("W0", "W300",
                                                                                300)]
    assert route.refuel_stops == []
    assert plan_route(places, "W0", "W0", fuel=0, fuel_capacity=400, speed=15).legs == ()


def test_refuel_stop_inserted_when_leg_exceeds_tank():
    places = _line(0, 250, 500, fuel_at=("W250",))
    route = plan_route(places, "W0", "W500", fuel=300, fuel_capacity=300, speed=15)
    assert [leg.destination for leg in route.legs] == ["W250", "W500"]
    assert route.refuel_stops == ["W250"]
    assert route.fuel == 500
    assert route.seconds == sum(travel_seconds(250, 15) for _ in range(2))


def test_refuels_at_origin_when_low_and_origin_sells_fuel():
    places = _line(0, 200, fuel_at=("W0",))
    route = plan_route(places, "W0", "W200", fuel=10, fuel_capacity=300, speed=15)
    assert route.legs[0].refuel_before and route.legs[0].mode is FlightMode.CRUISE


def test_drifts_only_when_nothing_else_reaches():
    places = _line(0, 200)
    route = plan_route(places, "W0", "W200", fuel=10, fuel_capacity=300, speed=15)
    assert [leg.mode for leg in route.legs] == [FlightMode.DRIFT]
    with pytest.raises(NoRouteError):
        plan_route(places, "W0", "W200", fuel=0, fuel_capacity=300, speed=15)
    with pytest.raises(NoRouteError, match="unknown waypoint"):
        plan_route(places, "W0", "NOWHERE", fuel=10, fuel_capacity=300, speed=15)


def test_probe_goes_straight():
    places = _line(0, 5000)
    route = plan_route(places, "W0", "W5000", fuel=0, fuel_capacity=0, speed=9)
    assert len(route.legs) == 1 and route.fuel == 0


@given(st.lists(st.integers(-800, 800), min_size=2, max_size=8, unique=True),
       st.integers(50, 400), st.data())
def test_routes_never_exceed_the_tank(xs, capacity, data):
    fuel_at = set(data.draw(st.lists(st.sampled_from([f"W{x}" for x in xs]))))
    places = _line(*xs, fuel_at=fuel_at)
    start, goal = f"W{xs[0]}", f"W{xs[-1]}"
    fuel = data.draw(st.integers(0, capacity))
    try:
        route = plan_route(places, start, goal, fuel=fuel, fuel_capacity=capacity, speed=15)
    except NoRouteError:
        return
    tank = fuel
    for leg in route.legs:
        if leg.refuel_before:
            assert places[leg.origin].sells_fuel
            tank = capacity
        assert leg.fuel <= tank
        tank -= leg.fuel
    assert route.legs[-1].destination == goal


def test_the_pace_is_the_median_of_recent_flights_and_one_until_the_first():
    pace = Pace(window=3)
    assert pace.factor == 1.0
    pace.observe(100, 1)
    assert pace.factor == 0.01
    pace.observe(100, 0)  # nonsense (an instant arrival) is not learnt
    pace.observe(0, 5)
    assert pace.factor == 0.01
    pace.observe(100, 50)  # one odd flight does not swing the median
    pace.observe(100, 2)
    assert pace.factor == 0.02
    pace.observe(100, 3)
    pace.observe(100, 3)  # the window forgets the oldest
    assert pace.factor == 0.03


def _fastest_by_brute_force(places, start, goal, fuel, capacity, speed):
    """Every sequence of distinct stops, tried: the oracle for the A* search."""
    stops = [s for s, p in places.items() if p.sells_fuel and s not in (start, goal)]
    best = None

    def walk(here, left, seconds, seen):
        nonlocal best
        for there in [goal, *(s for s in stops if s not in seen)]:
            leg = _cheapest_leg(places[here], places[there], FlightMode.CRUISE, capacity,
                                speed, left, places[here].sells_fuel)
            if leg is None:
                continue
            total = seconds + leg[0].seconds
            if there == goal:
                best = total if best is None else min(best, total)
            else:
                walk(there, leg[1], total, seen | {there})

    walk(start, fuel, 0, {start})
    return best


@given(st.lists(st.tuples(st.integers(-600, 600), st.integers(-600, 600)), min_size=2,
                max_size=6, unique=True), st.integers(40, 400), st.data())
def test_the_route_search_finds_the_fastest_route(points, capacity, data):
    places = {f"W{i}": Place(f"W{i}", x, y, data.draw(st.booleans()))
              for i, (x, y) in enumerate(points)}
    start, goal = "W0", f"W{len(points) - 1}"
    fuel = data.draw(st.integers(0, capacity))
    speed = data.draw(st.sampled_from([1, 3, 10, 30]))
    fastest = _fastest_by_brute_force(places, start, goal, fuel, capacity, speed)
    if fastest is None:
        with pytest.raises(NoRouteError):
            plan_route(places, start, goal, fuel=fuel, fuel_capacity=capacity, speed=speed)
        return
    route = plan_route(places, start, goal, fuel=fuel, fuel_capacity=capacity, speed=speed)
    assert route.seconds == fastest
