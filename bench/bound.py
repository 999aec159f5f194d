"""The honest lower bound on one load's makespan, and the requests it cannot do without.

Computed from the simulator's universe as it stands at the start (every market's stock,
every waypoint) and from the fleet (each ship's position, speed, tank and hold). What it
assumes, so that no bot can beat it:

- **the best plan**: every seller that holds the threshold (BUY), every exporter that
  imports the good's inputs (FABRICATE), chosen independently for each subtree, and the
  cheapest in time wins;
- **the fleet**: a lot is carried by one ship (as the bot does), and each delivery is
  made by one kind of hauler (ships alike in position, speed, tank and hold form a kind),
  the best choice of kind for every delivery winning. A delivery is timed as if its ship
  flew to it from where it starts, at its own speed, in CRUISE, with the refuel stops its
  tank needs, and carried the lot in as many trips as its hold needs; docking, trading
  and requests take no time. The ships of a kind share its deliveries: they carry no
  more lots at once than their holds take, and a ship whose hold takes one lot flies
  empty between them (`_busy_until`). When the choices are too many to try, every
  delivery gets the fastest ship, as if each had a ship of its own;
- **production**: an exporter makes the good from the first tick after its inputs land,
  at its activity's rate, never short of input; the collecting ship is there when the
  supply reaches the threshold;
- **the survey** (when counted): a good is bought at a seller holding the threshold as
  soon as it is known to be needed (the buying ship reads the quote on arrival, and may
  have flown there beforehand); it is known to be made only once every seller's quote has
  been read; a good's inputs are needed only once it is known to be made. Each of those
  reads is made either by the buying ship itself, on its way to the seller (in the best
  order), or by one of the other ships (probes included), which share them in the best
  way, each reading its share one market after another, in its best order, from where
  it starts. Each delivery is timed so on its own: a ship that reads for one may also
  read for another, and one that carries a lot may also read.
- **the fleet's size**: the bound is also never less than the loaded flights of the plan
  shared evenly among the haulers (each at its fastest), so one hauler is not credited
  with eight haulers' work.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from itertools import combinations, product

from domain.enums import SupplyLevel, TradeType
from domain.errors import NoRouteError
from domain.navigation import Place, plan_route
from domain.scheduling import UNREACHABLE, ShipView, TravelTimes
from domain.supply_chain import SupplyChain
from sim.economy import BANDS

LOWER = {level: upper for level, upper in BANDS}  # a level's upper bound, × scale
CHOICES = 100_000  # plans × kinds of hauler per delivery tried before giving up on kinds


@dataclass
class Step:
    """One delivery of the best plan: a good carried from where it is bought to where it
    is needed (None: kept), by the ship that does it fastest."""

    good: str
    source: str
    destination: str | None
    made: bool
    ship: str
    children: list[Step] = field(default_factory=list)
    reads: frozenset[str] = frozenset()  # markets read before it may be bought

    def flatten(self) -> list[Step]:
        return [self, *(s for c in self.children for s in c.flatten())]


@dataclass(frozen=True)
class Job:
    """A delivery as one kind of hauler makes it: the soonest it may begin (the ship at
    the source, the lot ready), seconds flown with the lot, the least time from its landing
    until the target is in the hold, and where it goes."""

    head: float
    body: float
    tail: float
    source: str
    destination: str | None


@dataclass(frozen=True)
class Bound:
    seconds: float
    plan: Step | None


class Bounds:
    def __init__(self, game, chain: SupplyChain, fleet: list[ShipView], lot: int,
                 min_supply: SupplyLevel = SupplyLevel.MODERATE):
        self.game = game
        self.chain = chain
        self.fleet = fleet
        self.haulers = [s for s in fleet if s.cargo_capacity > 0]
        self.lot = lot
        self.min_supply = min_supply
        fuel = {w for w, m in game.universe.markets.items()
                if "FUEL" in m.goods and m.goods["FUEL"].type is not TradeType.IMPORT}
        self.places = {w: Place(w, p.x, p.y, w in fuel) for w, p in game.places.items()}
        self.times = TravelTimes(self.places)
        self.markets = game.universe.markets
        self._ready: dict[tuple, float] = {}
        self._covered: dict[tuple, dict[frozenset[str], float]] = {}

    # --- time ----------------------------------------------------------------------------

    def fly(self, ship: ShipView, a: str, b: str) -> float:
        return self.times.seconds(a, b, ship.speed, ship.fuel_capacity, ship.fuel_capacity)

    def first_fly(self, ship: ShipView, a: str, b: str) -> float:
        """A flight from where the ship starts, with the fuel it starts with."""
        return self.times.seconds(a, b, ship.speed, ship.fuel, ship.fuel_capacity)

    def ready_to_buy(self, ship: ShipView, source: str, reads: frozenset[str]) -> float:
        """The soonest `ship` can buy at `source` once every market in `reads` was read:
        it reads some of them itself on the way, in the best order (held-karp over the
        subsets), the rest of the fleet shares the others (`covered`)."""
        reads = frozenset(w for w in reads if w not in (source, ship.waypoint))
        key = (ship.symbol, source, reads)
        if key not in self._ready:
            self._ready[key] = self._ready_to_buy(ship, source, reads)
        return self._ready[key]

    def _ready_to_buy(self, ship: ShipView, source: str, reads: frozenset[str]) -> float:
        others = self.covered(reads, but=ship.symbol)
        path = self._paths(ship, reads, self.fly)
        best = max(self.fly(ship, ship.waypoint, source), others[reads])
        for (done, last), t in path.items():
            best = min(best, max(t + self.fly(ship, last, source), others[reads - done]))
        return best

    def _paths(self, ship: ShipView, reads: frozenset[str],
               first: Callable[[ShipView, str, str], float]
               ) -> dict[tuple[frozenset[str], str], float]:
        """Held-karp from where the ship starts (`first`: how its first flight is timed):
        (subset read, last market) -> the soonest it has read them all, ending there."""
        order = sorted(reads)
        path = {(frozenset([w]), w): first(ship, ship.waypoint, w) for w in order}
        for size in range(2, len(order) + 1):
            for (done, last), t in [kv for kv in path.items() if len(kv[0][0]) == size - 1]:
                for w in order:
                    if w not in done:
                        key = (done | {w}, w)
                        path[key] = min(path.get(key, float(UNREACHABLE)),
                                        t + self.fly(ship, last, w))
        return path

    def covered(self, reads: frozenset[str], but: str) -> dict[frozenset[str], float]:
        """For every subset of `reads`, the soonest the fleet but `but` has read it all:
        each ship reads its share in its best order from where it starts (a ship cannot
        be at two markets at once), the shares split in the best way."""
        key = (but, reads)
        if key in self._covered:
            return self._covered[key]
        subsets = [frozenset(c) for k in range(len(reads) + 1)
                   for c in combinations(sorted(reads), k)]
        best = {t: (0.0 if not t else float(UNREACHABLE)) for t in subsets}
        alike: dict[tuple, dict[frozenset[str], float]] = {}
        for ship in self.fleet:
            if ship.symbol == but:
                continue
            kind = (ship.waypoint, ship.speed, ship.fuel, ship.fuel_capacity)
            if kind not in alike:
                own = {frozenset(): 0.0}
                for (done, _last), t in self._paths(ship, reads, self.first_fly).items():
                    own[done] = min(own.get(done, float(UNREACHABLE)), t)
                alike[kind] = own
            own = alike[kind]
            best = {t: min(max(best[t - u], own[u]) for u in subsets if u <= t)
                    for t in subsets}
        self._covered[key] = best
        return best

    def sellers(self, good: str) -> list[str]:
        return [w for w, m in self.markets.items() if good in m.goods
                and m.goods[good].type is not TradeType.IMPORT]

    def decided(self, good: str, survey: bool) -> frozenset[str]:
        """The markets read before `good` is known to be made (or bought anywhere)."""
        return frozenset(self.sellers(good)) if survey else frozenset()

    def at_threshold(self, good: str) -> list[str]:
        """The sellers holding the threshold: where `good` is bought."""
        return [w for w in self.sellers(good)
                if self.markets[w].goods[good].supply >= self.min_supply]

    def exporters(self, good: str) -> list[tuple[str, list[str]]]:
        """Where `good` can be made: (exporter, the good's inputs it imports)."""
        recipe = self.chain.inputs(good)
        out = []
        for waypoint, market in self.markets.items():
            stock = market.goods.get(good)
            inputs = [g for g in recipe if g in market.goods
                      and market.goods[g].type is TradeType.IMPORT]
            if stock is not None and stock.type is TradeType.EXPORT and inputs:
                out.append((waypoint, inputs))
        return out

    def production(self, waypoint: str, good: str) -> float:
        """Ticks from the first one after the inputs land until the export holds the
        threshold, at the exporter's rate, never short of input."""
        market = self.markets[waypoint]
        stock = market.goods[good]
        below = SupplyLevel(self.min_supply - 1)
        needed = max(0.0, LOWER[below] * stock.scale - stock.stock)
        rate = market.economy.production_rate(stock.activity) * stock.scale
        return max(0, math.ceil(needed / rate) - 1) * market.economy.tick_seconds

    def carry(self, source: str, destination: str | None, not_before: float = 0.0,
              reads: frozenset[str] = frozenset()) -> tuple[float, str]:
        """The earliest any hauler can have a lot from `source` at `destination`, buying no
        sooner than `not_before` nor before the markets in `reads` were read (it may fly
        there earlier and wait)."""
        best = (float(UNREACHABLE), "")
        for ship in self.haulers:
            there = max(self.ready_to_buy(ship, source, reads), not_before)
            trips = math.ceil(self.lot / ship.cargo_capacity)
            loaded = self.fly(ship, source, destination) if destination else 0.0
            back = self.fly(ship, destination, source) if destination else 0.0
            done = there + loaded + (trips - 1) * (back + loaded)
            best = min(best, (done, ship.symbol))
        return best

    # --- the best plan ---------------------------------------------------------------------

    def best(self, target: str, survey: bool) -> Bound:
        seconds, step = self._arrive(target, None, frozenset(), frozenset(), survey)
        assigned = self._assigned(target, survey)
        if assigned is not None and assigned[0] > seconds:
            seconds, step = assigned
        lots = sum(max(1, s.cargo_capacity // self.lot) for s in self.haulers)
        shared = self._work(target, None, frozenset()) / max(1, lots)
        return Bound(max(seconds, shared), step)

    def kinds(self) -> list[tuple[ShipView, int]]:
        """The haulers grouped by what makes them differ (where they start, speed, tank,
        hold): (one of them, how many)."""
        groups: dict[tuple, list[ShipView]] = {}
        for s in self.haulers:
            groups.setdefault((s.waypoint, s.speed, s.fuel, s.fuel_capacity,
                               s.cargo_capacity), []).append(s)
        return [(ships[0], len(ships)) for ships in groups.values()]

    def _assigned(self, target: str, survey: bool) -> tuple[float, Step] | None:
        """The best plan and choice of kind of hauler for each of its deliveries, each
        choice held to two bounds: the tree's timing with each delivery made by its kind
        (as in `_arrive`), and each kind's share of the deliveries (`_busy_until`). None
        when there are too many choices to try."""
        kinds = self.kinds()
        plans = list(self._plans(target, None, frozenset(), frozenset(), survey))
        if not kinds or not plans or sum(len(kinds) ** len(p.flatten())
                                         for p in plans) > CHOICES:
            return None
        best: tuple[float, Step] | None = None
        for plan in plans:
            steps = plan.flatten()
            for choice in product(range(len(kinds)), repeat=len(steps)):
                kind_of = {id(s): k for s, k in zip(steps, choice, strict=True)}
                jobs: list[list[Job]] = [[] for _ in kinds]
                seconds = self._timed(plan, 0.0, kinds, kind_of, jobs)
                for k, (ship, count) in enumerate(kinds):
                    seconds = max(seconds, self._busy_until(ship, count, jobs[k]))
                if best is None or seconds < best[0]:
                    best = (seconds, _with_ships(plan, steps, choice, kinds))
        return best

    def _timed(self, step: Step, tail: float, kinds: list[tuple[ShipView, int]],
               kind_of: dict[int, int], jobs: list[list[Job]]) -> float:
        """When `step`'s lot lands, made by the kind `kind_of` names, each delivery of its
        subtree added to its kind's `jobs`; `tail`: the least time from that landing until
        the target is in the hold."""
        k = kind_of[id(step)]
        ship = kinds[k][0]
        busy = self._occupied(ship, step.source, step.destination)
        if step.made:
            made = self.production(step.source, step.good)
            landed = max(self._timed(c, made + busy + tail, kinds, kind_of, jobs)
                         for c in step.children)
            there = max(self.ready_to_buy(ship, step.source, frozenset()), landed + made)
        else:
            there = self.ready_to_buy(ship, step.source, step.reads)
        jobs[k].append(Job(there, busy, tail, step.source, step.destination))
        return there + busy

    def _occupied(self, ship: ShipView, source: str, destination: str | None) -> float:
        """Seconds the ship flies with the lot aboard, or back for more of it."""
        if destination is None:
            return 0.0
        trips = math.ceil(self.lot / ship.cargo_capacity)
        loaded = self.fly(ship, source, destination)
        back = self.fly(ship, destination, source) if trips > 1 else 0.0
        return trips * loaded + (trips - 1) * back

    def _busy_until(self, ship: ShipView, count: int, jobs: list[Job]) -> float:
        """The soonest `count` ships like `ship` can have the target in the hold after
        making these deliveries (one lot is carried by one ship).

        For any set of them, the work begins no sooner than the set's earliest start, and
        the target is in the hold no sooner than the set's shortest tail after the work
        ends; the work is each lot's loaded flying (a hold of `m` lots carries at most `m`
        at once, and a lot is aboard at least its direct flight), over the ships. A ship
        whose hold takes one lot also flies to each source from where it was (the nearest
        other delivery's end, or where it starts), save to the first of the set; ships
        holding more may fetch several lots in one flight, so theirs are not counted.
        The sets tried are those of the deliveries beginning no sooner than some start
        and with no shorter tail than some tail (the one-machine bound of heads, bodies
        and tails, on `count` machines)."""
        held = max(1, ship.cargo_capacity // self.lot)
        setups = []
        for i, job in enumerate(jobs):
            setup = 0.0
            if held == 1:
                setup = min([self.times.seconds(ship.waypoint, job.source, ship.speed,
                                                ship.fuel, ship.fuel_capacity),
                             *(self.fly(ship, other.destination, job.source)
                               for j, other in enumerate(jobs)
                               if j != i and other.destination is not None)])
            setups.append(setup)
        out = 0.0
        for head in {job.head for job in jobs}:
            for tail in {job.tail for job in jobs}:
                chosen = [i for i, job in enumerate(jobs) if job.head >= head and job.tail >= tail]
                if not chosen:
                    continue
                spent = sorted((setups[i] for i in chosen), reverse=True)
                work = sum(jobs[i].body for i in chosen) / held + sum(spent[count:])
                out = max(out, head + work / count + tail)
        return out

    def _plans(self, good: str, destination: str | None, above: frozenset[str],
               needed: frozenset[str], survey: bool) -> Iterator[Step]:
        """Every plan `_arrive` chooses among (ships not yet chosen), each step with the
        markets read before it may be bought."""
        found = False
        at_threshold = self.at_threshold(good)
        for seller in at_threshold:
            found = True
            yield Step(good, seller, destination, False, "", reads=needed)
        if not at_threshold and good not in above:
            decided = needed | self.decided(good, survey)
            for waypoint, inputs in self.exporters(good):
                for children in product(*(list(self._plans(
                        g, waypoint, above | {good}, decided, survey)) for g in inputs)):
                    found = True
                    yield Step(good, waypoint, destination, True, "", list(children))
        if not found:  # a raw material: any seller, whatever the supply
            decided = needed | self.decided(good, survey)
            for seller in self.sellers(good):
                yield Step(good, seller, destination, False, "", reads=decided)

    def _work(self, good: str, destination: str | None, above: frozenset[str]) -> float:
        """The least loaded flying any plan needs to bring `good` to `destination`: every
        delivery's loaded legs, at the fastest hauler's pace."""
        def legs(source: str) -> float:
            if destination is None:
                return 0.0
            return min(self.fly(s, source, destination) * math.ceil(self.lot / s.cargo_capacity)
                       for s in self.haulers)

        options = [legs(w) for w in self.at_threshold(good)]
        if not options and good not in above:
            options = [legs(waypoint) + sum(self._work(g, waypoint, above | {good})
                                            for g in inputs)
                       for waypoint, inputs in self.exporters(good)]
        if not options:
            options = [legs(w) for w in self.sellers(good)]
        return min(options, default=0.0)

    def _arrive(self, good: str, destination: str | None, above: frozenset[str],
                needed: frozenset[str], survey: bool) -> tuple[float, Step | None]:
        """The earliest `good` can be at `destination` (None: in a hold), if it is known to
        be needed there once the markets in `needed` were read."""
        options: list[tuple[float, Step | None]] = []
        at_threshold = self.at_threshold(good)
        for seller in at_threshold:  # bought where it is, as soon as it is needed
            done, ship = self.carry(seller, destination, reads=needed)
            options.append((done, Step(good, seller, destination, False, ship)))
        if not at_threshold and good not in above:
            # making it is decided once every seller has been read, none at the threshold
            decided = needed | self.decided(good, survey)
            for waypoint, inputs in self.exporters(good):
                landed, children = 0.0, []
                for item in inputs:
                    at, child = self._arrive(item, waypoint, above | {good}, decided, survey)
                    landed = max(landed, at)
                    children.append(child)
                if landed >= UNREACHABLE:
                    continue
                ready = landed + self.production(waypoint, good)
                done, ship = self.carry(waypoint, destination, ready)
                options.append((done, Step(good, waypoint, destination, True, ship,
                                           children)))
        if not options:  # a raw material: its best seller, whatever the supply
            decided = needed | self.decided(good, survey)
            for seller in self.sellers(good):
                done, ship = self.carry(seller, destination, reads=decided)
                options.append((done, Step(good, seller, destination, False, ship)))
        return min(options, key=lambda o: o[0], default=(float(UNREACHABLE), None))

    # --- requests ---------------------------------------------------------------------------

    def minimum_requests(self, plan: Step, ships_pages: int, waypoint_pages: int) -> dict:
        """The requests the game really needs for this plan: the agent, the fleet, the
        system's waypoints and every market's lists (the first run in a system), one
        read of each seller of every good decided, and per delivery the orbits, legs,
        refuel stops (dock, refuel, orbit), docks, trades split by trade volume, and the
        market read before buying."""
        counts = {"startup": 1 + ships_pages + waypoint_pages + len(self.markets)}
        present = {s.waypoint for s in self.fleet}
        decided = set()
        trips = 0

        def walk(step: Step) -> None:
            nonlocal trips
            decided.update(w for w in self.sellers(step.good) if w not in present)
            ship = next(s for s in self.haulers if s.symbol == step.ship)
            legs = self._legs(ship, ship.waypoint, step.source)
            n = legs[0] + 3 * legs[1] + 1 + 1 + 1  # orbit, legs, refuels, dock, read
            n += math.ceil(self.lot / self.markets[step.source].goods[step.good].trade_volume)
            if step.destination:
                out = self._legs(ship, step.source, step.destination)
                volume = self.markets[step.destination].goods[step.good].trade_volume
                n += 1 + out[0] + 3 * out[1] + 1 + math.ceil(self.lot / volume)
            trips += n
            for child in step.children:
                walk(child)

        walk(plan)
        counts["survey"] = len(decided)
        counts["ship actions"] = trips
        counts["total"] = sum(counts.values())
        return counts

    def _legs(self, ship: ShipView, a: str, b: str) -> tuple[int, int]:
        """(legs, refuel stops) of the ship's route from a full tank."""
        if a == b:
            return 0, 0
        try:
            route = plan_route(self.places, a, b, fuel=ship.fuel_capacity,
                               fuel_capacity=ship.fuel_capacity, speed=ship.speed)
        except NoRouteError:
            return 1, 0
        return len(route.legs), len(route.refuel_stops)


def _with_ships(plan: Step, steps: list[Step], choice: tuple[int, ...],
                kinds: list[tuple[ShipView, int]]) -> Step:
    """A copy of the plan with each step's ship named (one of its kind)."""
    ships = {id(s): kinds[k][0].symbol for s, k in zip(steps, choice, strict=True)}

    def copy(step: Step) -> Step:
        return replace(step, ship=ships[id(step)], children=[copy(c) for c in step.children])

    return copy(plan)
