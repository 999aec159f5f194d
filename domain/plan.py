"""The production plan: a tree saying, for each good, whether to buy it or have it made.

`resolve` implements DESIGN.md §3: buy where a seller holds at least `min_supply`,
otherwise fabricate at a market that exports the good, feeding it the imports that the
market itself lists for it, recursively down to goods that can be bought.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
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


@dataclass
class PlanNode:
    """One good in the tree. `path` ("0", "0.1", …) identifies the node; goods repeat."""

    good: str
    method: Acquisition
    waypoint: str | None = None
    activity: ActivityLevel | None = None
    supply: SupplyLevel | None = None
    children: list[PlanNode] = field(default_factory=list)
    path: str = "0"

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
        return sorted({n.good for n in self.flatten() if n.is_leaf})

    def to_dict(self) -> dict:
        """The seed plan's JSON schema, plus the chosen waypoint."""
        return {
            "good": self.good,
            "acquisition_method": self.method.value,
            "waypoint": self.waypoint,
            "market_activity": self.activity.name if self.activity else "",
            "supply_level": self.supply.name if self.supply else "",
            "children": [c.to_dict() for c in self.children],
        }

    @classmethod
    def from_dict(cls, data: Mapping, path: str = "0") -> PlanNode:
        node = cls(
            good=data["good"],
            method=Acquisition(data["acquisition_method"]),
            waypoint=data.get("waypoint"),
            activity=ActivityLevel.parse_optional(data.get("market_activity")),
            supply=SupplyLevel.parse_optional(data.get("supply_level")),
            path=path,
        )
        node.children = [
            cls.from_dict(c, f"{path}.{i}") for i, c in enumerate(data.get("children", []))
        ]
        return node


def resolve(
    target: str,
    chain: SupplyChain,
    markets: Iterable[MarketSnapshot],
    *,
    min_supply: SupplyLevel = SupplyLevel.MODERATE,
    origin: Place | None = None,
    places: Mapping[str, Place] | None = None,
) -> PlanNode:
    """Build the plan for `target` from what is known of the system's markets.

    Raises UnknownGoodError (no market lists a good), UnsourceableError (listed but
    neither sold nor made), CycleError (making it needs itself and nobody sells it) and
    NeedsMarketData (a decision needs quotes nobody has read yet). A good is never bought
    below `min_supply`: that is the player's rule, and the errors say which good needs it.
    """
    resolver = _Resolver(chain, list(markets), min_supply, origin, places)
    return resolver.build(target, [], "0")


class _Resolver:
    def __init__(self, chain, markets, min_supply, origin, places):
        self.chain: SupplyChain = chain
        self.markets: list[MarketSnapshot] = markets
        self.min_supply: SupplyLevel = min_supply
        self.origin: Place | None = origin
        self.places: Mapping[str, Place] | None = places
        self.system = markets[0].system if markets else "the system"

    def build(self, good: str, path: list[str], node_path: str) -> PlanNode:
        if good in path:
            raise CycleError([*path[path.index(good) :], good])
        if not any(m.lists(good) for m in self.markets):
            raise UnknownGoodError(f"no market in {self.system} lists {good}")
        ranked = rank_sellers(good, self.markets, self.origin, self.places)
        if ranked and ranked[0][1].supply >= self.min_supply:
            return self._buy(good, ranked[0], node_path)
        unread = {m.waypoint for m in self.markets if m.sells(good) and m.quote(good) is None}
        if unread:
            raise NeedsMarketData(unread, good)
        return self._fabricate(good, path, node_path, ranked)

    def _buy(self, good, market_quote, node_path) -> PlanNode:
        market, quote = market_quote
        return PlanNode(good, Acquisition.BUY, market.waypoint, quote.activity, quote.supply,
                        path=node_path)

    def _fabricate(self, good: str, path: list[str], node_path: str, ranked) -> PlanNode:
        """Make `good` at its best exporter. Buying below the threshold is never a silent
        fallback: the threshold is the player's rule, so they are told to lower it."""
        recipe = self.chain.inputs(good)
        exporters = [m for m in self.markets if good in m.exports and set(recipe) & m.imports]
        if not exporters:
            if ranked:
                market, quote = ranked[0]
                why = (f"no exporter of {good} in {self.system} imports its inputs"
                       if recipe and any(good in m.exports for m in self.markets)
                       else f"{good} is not made in {self.system}")
                raise UnsourceableError(
                    f"{why}, and no seller has {self.min_supply.name} supply (best: "
                    f"{quote.supply.name} at {market.waypoint}); lower the supply threshold "
                    "to buy it")
            raise UnsourceableError(f"{good} is neither sold nor made in {self.system}")
        market = min(exporters, key=lambda m: self._exporter_key(m, good, recipe))
        quote = market.quote(good)
        node = PlanNode(good, Acquisition.FABRICATE, market.waypoint,
                        quote.activity if quote else None, quote.supply if quote else None,
                        path=node_path)
        missing: set[str] = set()
        missing_good = good
        for i, child in enumerate(g for g in recipe if g in market.imports):
            try:
                node.children.append(self.build(child, [*path, good], f"{node_path}.{i}"))
            except NeedsMarketData as need:  # gather a whole level's needs in one survey
                missing |= need.waypoints
                missing_good = need.good
        if missing:
            raise NeedsMarketData(missing, missing_good)
        return node

    def _exporter_key(self, market: MarketSnapshot, good: str, recipe: tuple[str, ...]) -> tuple:
        quote = market.quote(good)
        activity = (quote.activity or ActivityLevel.WEAK) if quote else ActivityLevel.RESTRICTED
        far = 0.0
        if self.origin is not None and self.places and market.waypoint in self.places:
            far = distance(self.origin, self.places[market.waypoint])
        uncovered = len(set(recipe) - market.imports)
        return (uncovered, -activity, far, market.waypoint)


def render_tree(node: PlanNode, note: Callable[[PlanNode], str] | None = None) -> str:
    """The tree as box-drawing text, each line `GOOD [METHOD at WAYPOINT, …] note`."""
    lines: list[str] = []

    def label(n: PlanNode) -> str:
        parts = [f"{n.method.value} at {n.waypoint}" if n.waypoint else n.method.value]
        if n.activity:
            parts.append(f"{n.activity.name} activity")
        if n.supply:
            parts.append(f"{n.supply.name} supply")
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
