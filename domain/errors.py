"""Errors the domain raises; each message is one line a player can act on."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every planning and rule error."""


class SupplyChainError(DomainError):
    """The supply-chain map is malformed or names goods the game does not know."""


class UnknownGoodError(DomainError):
    """No market in the system lists the good, and it cannot be made there."""


class CycleError(DomainError):
    """Making a good would need the good itself; `path` is the loop, first good repeated last."""

    def __init__(self, path: list[str]):
        self.path = list(path)
        super().__init__("cycle in the supply chain: " + " -> ".join(self.path))


class UnsourceableError(DomainError):
    """A good is listed in the system but nobody sells or makes it there."""


class NeedsMarketData(DomainError):
    """The planner cannot decide without fresh quotes from these markets."""

    def __init__(self, waypoints: set[str], good: str):
        self.waypoints = frozenset(waypoints)
        self.good = good
        listed = ", ".join(sorted(self.waypoints))
        super().__init__(f"need live market data for {good} at {listed}")


class NoRouteError(DomainError):
    """No sequence of legs and refuel stops reaches the destination."""


class InvalidTransition(DomainError):
    """A state change that the factory's rules forbid."""
