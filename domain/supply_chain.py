"""The game's recipe book: which imports feed each export (`exportToImportMap`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from domain.errors import SupplyChainError

_SYMBOL = re.compile(r"^[A-Z][A-Z0-9_]*$")


class SupplyChain:
    """An immutable export -> imports map with the checks the planner relies on.

    Input lists are de-duplicated in order: the real map lists MERITIUM twice for
    MODULE_WARP_DRIVE_III, and a repeated input means nothing more to a market.
    """

    def __init__(self, recipes: Mapping[str, Sequence[str]]):
        self._recipes: dict[str, tuple[str, ...]] = {
            good: tuple(dict.fromkeys(inputs)) for good, inputs in recipes.items()
        }

    def __len__(self) -> int:
        return len(self._recipes)

    def __contains__(self, good: object) -> bool:
        return good in self._recipes

    def inputs(self, good: str) -> tuple[str, ...]:
        """The imports an exporter of `good` consumes to make it (empty if unknown)."""
        return self._recipes.get(good, ())

    @property
    def goods(self) -> frozenset[str]:
        """Every symbol named anywhere in the map."""
        named = set(self._recipes)
        for inputs in self._recipes.values():
            named.update(inputs)
        return frozenset(named)

    def as_dict(self) -> dict[str, list[str]]:
        return {good: list(inputs) for good, inputs in self._recipes.items()}

    def find_cycle(self, start: str) -> list[str] | None:
        """A loop reachable from `start`, as a path whose first good is repeated last."""
        on_path: list[str] = []
        index: dict[str, int] = {}
        done: set[str] = set()

        def visit(good: str) -> list[str] | None:
            if good in index:
                return [*on_path[index[good] :], good]
            if good in done:
                return None
            index[good] = len(on_path)
            on_path.append(good)
            for child in self.inputs(good):
                found = visit(child)
                if found:
                    return found
            on_path.pop()
            del index[good]
            done.add(good)
            return None

        return visit(start)

    def cycles(self) -> list[list[str]]:
        """One representative loop per strongly connected part of the map, for reports."""
        seen: set[frozenset[str]] = set()
        loops = []
        for good in sorted(self._recipes):
            loop = self.find_cycle(good)
            if loop and frozenset(loop) not in seen:
                seen.add(frozenset(loop))
                loops.append(loop)
        return loops

    @classmethod
    def from_json(cls, data: object, known: Iterable[str] | None = None) -> SupplyChain:
        """Build from a `GET /market/supply-chain` body, its `data`, or a bare map.

        Malformed entries and symbols outside `known` (when given) raise
        SupplyChainError with every problem in one line. Loops are legal in the real
        map (ores need EXPLOSIVES, which need MACHINERY, which needs IRON…); the
        planner reports one only when it would have to go round it.
        """
        if isinstance(data, Mapping) and "data" in data:
            data = data["data"]
        if isinstance(data, Mapping) and "exportToImportMap" in data:
            data = data["exportToImportMap"]
        if not isinstance(data, Mapping) or not data:
            raise SupplyChainError("supply chain must be a non-empty object of good -> [inputs]")
        problems: list[str] = []
        for good, inputs in data.items():
            if not isinstance(good, str) or not _SYMBOL.match(good):
                problems.append(f"bad symbol {good!r}")
            if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
                problems.append(f"{good}: inputs must be a list of symbols")
                continue
            problems.extend(f"{good}: bad symbol {i!r}" for i in inputs if not _SYMBOL.match(i))
        if problems:
            raise SupplyChainError("invalid supply chain: " + "; ".join(problems))
        chain = cls(data)
        if known is not None:
            unknown = sorted(chain.goods - set(known))
            if unknown:
                raise SupplyChainError("unknown goods in supply chain: " + ", ".join(unknown))
        return chain
