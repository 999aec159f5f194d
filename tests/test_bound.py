"""The benchmark's lower bound: the ship that buys cannot also read far markets for free.

The ratios in bench/RESULTS.md are only as honest as this bound; these checks hold it to
being a lower bound that still counts what one ship can do."""

from itertools import permutations

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


def test_the_buyer_reads_on_its_way_or_waits_for_the_others(game):
    bounds = Bounds(game, default_supply_chain(), fleet(game), 40)
    frigate, probe = bounds.fleet
    plan = bounds.best("CLOTHING", survey=False).plan
    leaf = plan.children[0].children[0].source  # where the deepest input is bought
    reads = bounds.decided("CLOTHING", True) | bounds.decided(plan.children[0].good, True)
    assert len(reads) == 2 and leaf not in reads

    # the oracle: every order of every subset the frigate reads itself, the probe the rest
    def own(order: tuple[str, ...]) -> float:
        t, here = 0.0, frigate.waypoint
        for w in (*order, leaf):
            t, here = t + bounds.fly(frigate, here, w), w
        return t

    def probe_reads(w: str) -> float:
        return bounds.times.seconds(probe.waypoint, w, probe.speed, probe.fuel,
                                    probe.fuel_capacity)

    expected = min(max([own(order), *(probe_reads(w) for w in reads - set(order))])
                   for k in range(len(reads) + 1) for order in permutations(sorted(reads), k))
    assert bounds.ready_to_buy(frigate, leaf, reads) == pytest.approx(expected)
    # more than flying straight there, which the bound allowed when any ship's read counted
    assert expected > bounds.fly(frigate, frigate.waypoint, leaf)


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
