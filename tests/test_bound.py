"""The benchmark's lower bound: the ship that buys cannot also read far markets for free.

The ratios in bench/RESULTS.md are only as honest as this bound; these checks hold it to
being a lower bound that still counts what one ship can do."""

from itertools import permutations, product

import pytest

from bench.bound import Bounds
from domain.scheduling import ShipView
from sim.server import build_game
from storage.files import default_supply_chain


@pytest.fixture(scope="module")
def game():
    return build_game(seed=1)


def fleet(game, haulers: int = 0) -> list[ShipView]:
    u = game.universe
    ships = [ShipView("F-1", u.headquarters, 36, 400, 400, 40, 40),
             ShipView("F-2", u.start_probe_at, 9, 0, 0, 0, 0)]
    ships += [ShipView(f"F-{n + 3}", u.start_probe_at, 15, 600, 600, 80, 80)
              for n in range(haulers)]
    return ships


@pytest.mark.parametrize("haulers", [0, 1])
def test_the_buyer_reads_on_its_way_or_waits_for_the_others(game, haulers):
    """The frigate buys the deepest input of CLOTHING once both markets above it were
    read: by itself on its way, or by the other ships, each of which reads its share one
    market after another (not two at once, which the bound once allowed)."""
    bounds = Bounds(game, default_supply_chain(), fleet(game, haulers), 40)
    frigate, *others = bounds.fleet
    plan = bounds.best("CLOTHING", survey=False).plan
    leaf = plan.children[0].children[0].source  # where the deepest input is bought
    reads = bounds.decided("CLOTHING", True) | bounds.decided(plan.children[0].good, True)
    assert len(reads) == 2 and leaf not in reads

    # the oracle: every order of every subset the frigate reads itself, every split of the
    # rest among the others, each reading its share in every order
    def path(ship, order: tuple[str, ...], t: float = 0.0) -> float:
        here = ship.waypoint
        for w in order:
            t += (bounds.times.seconds(here, w, ship.speed, ship.fuel, ship.fuel_capacity)
                  if here == ship.waypoint and ship is not frigate else bounds.fly(ship, here, w))
            here = w
        return t

    def rest(markets: set[str]) -> float:
        best = float("inf")
        for owners in product(others, repeat=len(markets)):
            share = {s.symbol: [w for w, o in zip(sorted(markets), owners, strict=True)
                                if o is s]
                     for s in others}
            best = min(best, max([0.0, *(min(path(s, order) for order in permutations(
                share[s.symbol])) for s in others)]))
        return best

    expected = min(max(path(frigate, (*order, leaf)), rest(reads - set(order)))
                   for k in range(len(reads) + 1) for order in permutations(sorted(reads), k))
    assert bounds.ready_to_buy(frigate, leaf, reads) == pytest.approx(expected)
    # more than flying straight there, which the bound allowed when any ship's read counted
    assert expected > bounds.fly(frigate, frigate.waypoint, leaf)
    # the bound once let each other ship read every market at once: with a hauler
    # beside the probe that was less than what the fleet can really do
    at_once = min(max([path(frigate, (*order, leaf)), *(min(path(s, (w,)) for s in others)
                                                        for w in reads - set(order))])
                  for k in range(len(reads) + 1) for order in permutations(sorted(reads), k))
    assert expected > at_once if haulers else expected >= at_once


def test_the_survey_bound_is_a_bound_that_more_ships_only_lower(game):
    chain = default_supply_chain()
    alone = Bounds(game, chain, fleet(game), 40)
    helped = Bounds(game, chain, fleet(game, haulers=3), 40)
    for target in ("IRON_ORE", "CLOTHING", "ADVANCED_CIRCUITRY"):
        surveyed = alone.best(target, survey=True).seconds
        assert surveyed >= alone.best(target, survey=False).seconds
        assert helped.best(target, survey=True).seconds <= surveyed
    # the frigate alone must read CLOTHING's exporter and FABRICS' before buying FERTILIZERS
    assert alone.best("CLOTHING", survey=True).seconds > alone.best(
        "CLOTHING", survey=False).seconds


def test_one_hauler_is_held_to_its_empty_legs_and_stays_a_bound(game):
    """The frigate alone cannot carry two branches at once: its bound counts every lot
    it carries and its flights between them, and is still no more than the best order
    it could really fly them in (tried here exhaustively, quotes known up front)."""
    chain = default_supply_chain()
    bounds = Bounds(game, chain, fleet(game), 40)
    [frigate] = bounds.haulers
    bound = bounds.best("ADVANCED_CIRCUITRY", survey=False)
    steps = bound.plan.flatten()
    assert len(steps) == 9 and {s.ship for s in steps} == {frigate.symbol}

    def makespan(order: list) -> float:
        t, here, landed = 0.0, frigate.waypoint, {}
        for step in order:
            t += bounds.times.seconds(here, step.source, frigate.speed, frigate.fuel,
                                      frigate.fuel_capacity) if here == frigate.waypoint \
                else bounds.fly(frigate, here, step.source)
            if step.made:
                t = max(t, max(landed[id(c)] for c in step.children)
                        + bounds.production(step.source, step.good))
            if step.destination is None:
                return t
            t += bounds.fly(frigate, step.source, step.destination)
            here, landed[id(step)] = step.destination, t
        raise AssertionError("the collect comes last")

    def orders(done: list, left: list):
        if not left:
            yield done
        for s in left:  # a step may go once every lot it is made of has landed
            if all(any(c is d for d in done) for c in s.children):
                yield from orders([*done, s], [x for x in left if x is not s])

    assert bound.seconds <= min(makespan(o) for o in orders([], steps))
    # more than its loaded flights alone (the bound's floor before it counted the legs
    # between them), and far more than each delivery flown by a frigate of its own
    loaded = sum(bounds.fly(frigate, s.source, s.destination) for s in steps if s.destination)
    alone = bounds._arrive("ADVANCED_CIRCUITRY", None, frozenset(), frozenset(), False)[0]
    assert bound.seconds > loaded > alone
