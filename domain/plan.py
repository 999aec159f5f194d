"""The production plan: for each good, buy it or have its exporter make it.

`decide` answers the question for one good from what is known of the system's markets
(DESIGN.md §3): buy where a seller holds at least `min_supply`; otherwise make it at a
market that exports it, feeding the imports that market lists for it; and a good that
no market can be made to produce (a raw material) is bought from its best seller
whatever its supply, marked `below_threshold`. `resolve` applies it down the tree.
Factories call `decide` again for every lot, so the tree follows the markets.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from domain.enums import Acquisition, ActivityLevel, SupplyLevel
from domain.errors import (
    CycleError,
    NeedsMarketData,
    UnknownGoodError,
    UnsourceableError,
)
from domain.markets import MarketSnapshot
from domain.navigation import Place, distance
from domain.ranking import rank_sellers
from domain.supply_chain import SupplyChain


@dataclass(frozen=True)
class Decision:
    """How to get one good now: buy it at `waypoint`, or feed `inputs` to the exporter at
    `waypoint` and buy what it makes."""

    good: str
    method: Acquisition
    waypoint: str
    supply: SupplyLevel | None = None
    activity: ActivityLevel | None = None
    inputs: tuple[str, ...] = ()
    below_threshold: bool = False  # a raw material bought whatever its supply

    @property
    def made(self) -> bool:
        return self.method is Acquisition.FABRICATE


@dataclass
class PlanNode:
    """One good in the tree. `path` ("0", "0.1", …) identifies the node; goods repeat.
    A PENDING node waits for quotes of markets nobody has read yet."""

    good: str
    method: Acquisition
    waypoint: str | None = None
    activity: ActivityLevel | None = None
    supply: SupplyLevel | None = None
    children: list[PlanNode] = field(default_factory=list)
    path: str = "0"
    below_threshold: bool = False

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def depth(self) -> int:
        """Edges on the longest way down: a BUY leaf is 0, A <- B <- C is 2."""
        return 1 + max(c.depth() for c in self.children) if self.children else 0

    def flatten(self) -> list[PlanNode]:
        """Breadth-first: the root, then its children, then theirs."""
        out, queue = [], deque([self])
        while queue:
            node = queue.popleft()
            out.append(node)
            queue.extend(node.children)
        return out

    def walk(self) -> Iterator[tuple[PlanNode, PlanNode | None]]:
        """Depth-first (node, parent) pairs."""
        stack: list[tuple[PlanNode, PlanNode | None]] = [(self, None)]
        while stack:
            node, parent = stack.pop()
            yield node, parent
            stack.extend((c, node) for c in reversed(node.children))

    def find(self, path: str) -> PlanNode:
        for node, _ in self.walk():
            if node.path == path:
                return node
        raise KeyError(path)

    def raw_materials(self) -> list[str]:
        """The goods bought at the leaves, each once."""
        return sorted({n.good for n in self.flatten()
                       if n.is_leaf and n.method is Acquisition.BUY})

    @property
    def pending(self) -> bool:
        """Whether some decision in the tree still waits for market quotes."""
        return any(n.method is Acquisition.PENDING for n in self.flatten())

    def to_dict(self) -> dict:
        """The seed plan's JSON schema, plus the chosen waypoint (and `below_threshold`
        on a raw material bought under the supply threshold)."""
        out = {
            "good": self.good,
            "acquisition_method": self.method.value,
            "waypoint": self.waypoint,
            "market_activity": self.activity.name if self.activity else "",
            "supply_level": self.supply.name if self.supply else "",
            "children": [c.to_dict() for c in self.children],
        }
        if self.below_threshold:
            out["below_threshold"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping, path: str = "0") -> PlanNode:
        node = cls(
            good=data["good"],
            method=Acquisition(data["acquisition_method"]),
            waypoint=data.get("waypoint"),
            activity=ActivityLevel.parse_optional(data.get("market_activity")),
            supply=SupplyLevel.parse_optional(data.get("supply_level")),
            path=path,
            below_threshold=bool(data.get("below_threshold")),
        )
        node.children = [
            cls.from_dict(c, f"{path}.{i}") for i, c in enumerate(data.get("children", []))
        ]
        return node


class Planner:
    """Decisions over one view of the system's markets."""

    def __init__(self, chain: SupplyChain, markets: Iterable[MarketSnapshot], *,
                 min_supply: SupplyLevel = SupplyLevel.MODERATE, strict_supply: bool = False,
                 origin: Place | None = None, places: Mapping[str, Place] | None = None):
        self.chain = chain
        self.markets = list(markets)
        self.min_supply = min_supply
        self.strict_supply = strict_supply
        self.origin = origin
        self.places = places
        self.system = self.markets[0].system if self.markets else "the system"

    def decide(self, good: str, above: Iterable[str] = ()) -> Decision:
        """Buy or make `good`, given the goods being made `above` it in the tree.

        Raises UnknownGoodError (no market lists it), UnsourceableError (listed but
        neither sold nor made, or a raw material under the threshold with
        `strict_supply`), CycleError (making it needs a good already being made above)
        and NeedsMarketData (the decision needs quotes nobody has read yet).
        """
        above = list(above)
        if not any(m.lists(good) for m in self.markets):
            raise UnknownGoodError(f"no market in {self.system} lists {good}")
        ranked = rank_sellers(good, self.markets, self.origin, self.places)
        if ranked and ranked[0][1].supply >= self.min_supply:
            market, quote = ranked[0]
            return Decision(good, Acquisition.BUY, market.waypoint, quote.supply,
                            quote.activity)
        unread = {m.waypoint for m in self.markets if m.sells(good) and m.quote(good) is None}
        if unread:
            raise NeedsMarketData(unread, good)
        if good in above:
            raise CycleError([*above[above.index(good):], good])
        recipe = self.chain.inputs(good)
        exporters = [m for m in self.markets if good in m.exports and set(recipe) & m.imports]
        if exporters:
            market = min(exporters, key=lambda m: self._exporter_key(m, good, recipe))
            quote = market.quote(good)
            return Decision(good, Acquisition.FABRICATE, market.waypoint,
                            quote.supply if quote else None, quote.activity if quote else None,
                            tuple(g for g in recipe if g in market.imports))
        if not ranked:
            raise UnsourceableError(f"{good} is neither sold nor made in {self.system}")
        market, quote = ranked[0]
        why = (f"no exporter of {good} in {self.system} imports its inputs"
               if recipe and any(good in m.exports for m in self.markets)
               else f"{good} is not made in {self.system}")
        if self.strict_supply:
            raise UnsourceableError(
                f"{why}, and no seller has {self.min_supply.name} supply (best: "
                f"{quote.supply.name} at {market.waypoint}); lower the supply threshold, or "
                "drop --strict-supply to buy it anyway")
        return Decision(good, Acquisition.BUY, market.waypoint, quote.supply, quote.activity,
                        below_threshold=True)

    def resolve(self, target: str, partial: bool = False) -> PlanNode:
        """The whole tree for `target`. With `partial`, a decision that needs unread
        quotes becomes a PENDING node instead of raising NeedsMarketData."""
        missing: dict[str, set[str]] = {}
        tree = self._build(target, [], "0", missing, partial)
        if missing and not partial:
            waypoints = set().union(*missing.values())
            raise NeedsMarketData(waypoints, next(iter(missing)))
        return tree

    def _build(self, good: str, above: list[str], path: str, missing: dict[str, set[str]],
               partial: bool) -> PlanNode:
        try:
            d = self.decide(good, above)
        except NeedsMarketData as need:
            missing.setdefault(need.good, set()).update(need.waypoints)
            return PlanNode(good, Acquisition.PENDING, path=path)
        node = PlanNode(good, d.method, d.waypoint, d.activity, d.supply, path=path,
                        below_threshold=d.below_threshold)
        for i, child in enumerate(d.inputs):  # a whole level's needs gather in one survey
            node.children.append(self._build(child, [*above, good], f"{path}.{i}", missing,
                                             partial))
        return node

    def survey(self, target: str, reading: Collection[str] = ()
               ) -> tuple[dict[str, int], set[str]]:
        """Every market whose quotes a plan for `target` may need and nobody has read,
        each with how speculative its reading is, and of those the sole sources.

        How speculative: the number of goods above it on its path that are still
        undecided (a seller of theirs unread). A market at 0 is needed whatever the other
        readings say (the target's sellers, or those of an input of a good known to be
        made); one at 1 is needed unless an unread seller of the good above it turns out
        to hold it at the threshold; and so on. The other sellers of a good already for
        sale count one more (their quotes may find a better seller, but decide nothing);
        its inputs are left out, and so do the other unread sellers of a good one of whose
        sellers a ship is on its way to read (`reading`): they are needed only if that
        reading fails (seen: the frigate sent to a second seller of a raw good whose first
        was being read, while the exporter of a made input waited 600 s for a hauler the
        first seller then gave a trip). The sole sources are the unread ones at 0 that are the
        only place a needed good can come from (its one seller, so its one exporter if
        any): whatever their reading says, a hauler will carry from there."""
        needed: dict[str, int] = {}
        sole: set[str] = set()
        seen: set[str] = set()
        queue = deque([(target, 0)])
        while queue:  # 0-1 breadth-first: each good is reached first at its least depth
            good, depth = queue.popleft()
            if good in seen:
                continue
            seen.add(good)
            sellers = [m for m in self.markets if m.sells(good)]
            unread = [m for m in sellers if m.quote(good) is None]
            buyable = any(q.supply >= self.min_supply for m in sellers if (q := m.quote(good)))
            being_read = any(m.waypoint in reading for m in unread)
            for m in unread:  # of a good already for sale, a reading may only find better
                here = depth + 1 if buyable or (
                    being_read and m.waypoint not in reading) else depth
                needed[m.waypoint] = min(needed.get(m.waypoint, here), here)
            if depth == 0 and len(unread) == len(sellers) == 1:  # exporters sell too
                sole.add(sellers[0].waypoint)
            if buyable:
                continue  # its inputs will not be needed
            below = depth + 1 if unread else depth
            recipe = self.chain.inputs(good)
            for m in self.markets:
                if good in m.exports:
                    for g in recipe:
                        if g in m.imports:
                            (queue.append if unread else queue.appendleft)((g, below))
        return needed, sole

    def _exporter_key(self, market: MarketSnapshot, good: str, recipe: tuple[str, ...]) -> tuple:
        quote = market.quote(good)
        activity = (quote.activity or ActivityLevel.WEAK) if quote else ActivityLevel.RESTRICTED
        far = 0.0
        if self.origin is not None and self.places and market.waypoint in self.places:
            far = distance(self.origin, self.places[market.waypoint])
        uncovered = len(set(recipe) - market.imports)
        return (uncovered, -activity, far, market.waypoint)


def resolve(
    target: str,
    chain: SupplyChain,
    markets: Iterable[MarketSnapshot],
    *,
    min_supply: SupplyLevel = SupplyLevel.MODERATE,
    strict_supply: bool = False,
    origin: Place | None = None,
    places: Mapping[str, Place] | None = None,
) -> PlanNode:
    """Build the plan for `target` from what is known of the system's markets (see
    `Planner.decide` for the rules and the errors)."""
    return Planner(chain, markets, min_supply=min_supply, strict_supply=strict_supply,
                   origin=origin, places=places).resolve(target)


def render_tree(node: PlanNode, note: Callable[[PlanNode], str] | None = None) -> str:
    """The tree as box-drawing text, each line `GOOD [METHOD at WAYPOINT, …] note`."""
    lines: list[str] = []

    def label(n: PlanNode) -> str:
        if n.method is Acquisition.PENDING:
            parts = ["reading its markets"]
        else:
            parts = [f"{n.method.value} at {n.waypoint}" if n.waypoint else n.method.value]
        if n.activity:
            parts.append(f"{n.activity.name} activity")
        if n.supply:
            parts.append(f"{n.supply.name} supply")
        if n.below_threshold:
            parts.append("below threshold")
        extra = note(n) if note else ""
        return f"{n.good} [{', '.join(parts)}]" + (f" {extra}" if extra else "")

    def draw(n: PlanNode, prefix: str, last: bool, root: bool) -> None:
        if root:
            lines.append(label(n))
            child_prefix = ""
        else:
            lines.append(prefix + ("└── " if last else "├── ") + label(n))
            child_prefix = prefix + ("    " if last else "│   ")
        for i, c in enumerate(n.children):
            draw(c, child_prefix, i == len(n.children) - 1, False)

    draw(node, "", True, True)
    return "\n".join(lines)
