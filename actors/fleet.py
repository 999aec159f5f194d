"""What the process knows of its ships and its credits, shared by every actor.

The server is the truth: these are caches refreshed from every answer the ships get,
guarded by a lock because every actor thread reads them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime

from api.models import Cargo, Nav, Ship
from domain.navigation import Pace


@dataclass(frozen=True)
class ShipInfo:
    symbol: str
    role: str
    cargo_capacity: int
    speed: int
    fuel_capacity: int
    waypoint: str
    status: str
    arrival: datetime | None
    cargo_free: int = 0
    fuel: int = 0
    busy: bool = False  # running a job in this process
    lost: bool = False

    @property
    def is_hauler(self) -> bool:
        return self.cargo_capacity > 0

    def lands_in(self, now: datetime) -> float:
        """Seconds until it lands at `waypoint` (0 if it is not flying)."""
        if self.status != "IN_TRANSIT" or self.arrival is None:
            return 0.0
        return max(0.0, (self.arrival - now).total_seconds())

    def present_at(self, waypoint: str, now: datetime) -> bool:
        """At the waypoint and not flying: its market shows prices."""
        arrived = self.status != "IN_TRANSIT" or (self.arrival is not None and now >= self.arrival)
        return not self.lost and self.waypoint == waypoint and arrived


class Fleet:
    def __init__(self, on_move: Callable[[str, Nav, str | None], None] | None = None):
        """`on_move(symbol, nav, role)` hears of every position (the runtime records them
        for dashboards); it must not raise."""
        self._lock = threading.Lock()
        self._ships: dict[str, ShipInfo] = {}
        self._on_move = on_move
        self._pace = Pace()
        self.version = 0  # counts changes: a coordinator that saw this one has nothing new

    def _moved(self, symbol: str, nav: Nav, role: str | None) -> None:
        if self._on_move is not None:
            self._on_move(symbol, nav, role)

    def _put(self, info: ShipInfo) -> None:
        """Store a ship's new state (the lock held); a change that can alter what a
        coordinator decides counts in `version` (see `_matters`)."""
        old = self._ships.get(info.symbol)
        if old != info:
            self._ships[info.symbol] = info
            if old is None or _matters(old, info):
                self.version += 1

    def update(self, ship: Ship) -> ShipInfo:
        info = ShipInfo(ship.symbol, ship.role, ship.cargo.capacity, ship.speed,
                        ship.fuel.capacity, ship.nav.waypoint, ship.nav.status, ship.nav.arrival,
                        ship.cargo.free, ship.fuel.current)
        with self._lock:
            old = self._ships.get(ship.symbol)
            if old is not None:
                info = replace(info, busy=old.busy)
            self._put(info)
        if old is None or (old.waypoint, old.status, old.arrival) != (
                info.waypoint, info.status, info.arrival):  # fleet reads repeat: write moves
            self._moved(ship.symbol, ship.nav, ship.role)
        return info

    def moved(self, symbol: str, nav: Nav) -> None:
        with self._lock:
            info = self._ships.get(symbol)
            if info is not None:
                self._put(replace(info, waypoint=nav.waypoint, status=nav.status,
                                  arrival=nav.arrival))
        self._moved(symbol, nav, info.role if info else None)

    def flew(self, predicted: float, observed: float) -> None:
        """A flight the formula put at `predicted` seconds took `observed` by the server's
        departure and arrival times."""
        with self._lock:
            self._pace.observe(predicted, observed)

    @property
    def pace(self) -> float:
        with self._lock:
            return self._pace.factor

    def fuelled(self, symbol: str, fuel: int) -> None:
        with self._lock:
            if symbol in self._ships:
                self._put(replace(self._ships[symbol], fuel=fuel))

    def loaded(self, symbol: str, cargo: Cargo) -> None:
        with self._lock:
            if symbol in self._ships:
                self._put(replace(self._ships[symbol], cargo_free=cargo.free))

    def get(self, symbol: str) -> ShipInfo | None:
        with self._lock:
            return self._ships.get(symbol)

    def all(self) -> list[ShipInfo]:
        with self._lock:
            return list(self._ships.values())

    def take(self, symbol: str) -> bool:
        """Mark a ship busy in this process; False if it already is, or is gone."""
        with self._lock:
            info = self._ships.get(symbol)
            if info is None or info.busy or info.lost:
                return False
            self._put(replace(info, busy=True))
            return True

    def free(self, symbol: str) -> None:
        with self._lock:
            if symbol in self._ships:
                self._put(replace(self._ships[symbol], busy=False))

    def mark_lost(self, symbol: str) -> None:
        with self._lock:
            if symbol in self._ships:
                self._put(replace(self._ships[symbol], lost=True, busy=False))

    def present_at(self, waypoint: str, now: datetime) -> bool:
        with self._lock:
            return any(s.present_at(waypoint, now) for s in self._ships.values())


def _matters(old: ShipInfo, new: ShipInfo) -> bool:
    """Whether a change can alter another coordinator's choices. Every coordinator makes a
    pass on each change, so a busy ship docking, orbiting, refuelling or trading (four
    or five changes a trip) would cost every factory a pass for nothing: while it is busy
    only where and when it lands counts (ships finishing sooner are waited for), and the
    rest is seen when it is freed, which counts."""
    if not (old.busy and new.busy):
        return True
    return (old.waypoint, old.arrival, old.lost) != (new.waypoint, new.arrival, new.lost)


class Wallet:
    """The agent's credits, with holds so two ships cannot both spend the same reserve."""

    def __init__(self, credits: int | None = None):
        self._lock = threading.Lock()
        self._credits = credits
        self._held = 0
        self._at: datetime | None = None  # server time of the balance believed

    @property
    def credits(self) -> int | None:
        with self._lock:
            return self._credits

    def affordable(self, price: int, reserve: int) -> int:
        """Units at `price` that can be bought without dipping below `reserve`."""
        with self._lock:
            if self._credits is None or price <= 0:
                return 0
            return max(0, (self._credits - self._held - reserve) // price)

    @contextmanager
    def hold(self, amount: int):
        """Set `amount` aside while a purchase is in flight; the caller settles the
        answer inside the block, so no other ship sees the credits between the hold's
        release and the new balance."""
        with self._lock:
            self._held += amount
        held = _Held(self, amount)
        try:
            yield held
        finally:
            with self._lock:
                if not held.released:
                    self._held -= amount

    def apply(self, credits_after: int, at: datetime | None = None) -> None:
        """Believe the server's balance, unless a newer one is already in: two ships'
        answers can arrive out of order, and an older balance must not undo a newer one
        (same instant: the lower wins)."""
        with self._lock:
            self._apply(credits_after, at)

    def _apply(self, credits_after: int, at: datetime | None) -> None:
        if at is None or self._at is None or at > self._at:
            self._credits, self._at = credits_after, at or self._at
        elif at == self._at and self._credits is not None:
            self._credits = min(self._credits, credits_after)


class _Held:
    """A hold in flight; `settle` books the server's answer and releases it at once."""

    def __init__(self, wallet: Wallet, amount: int):
        self.wallet, self.amount, self.released = wallet, amount, False

    def settle(self, credits_after: int, at: datetime | None) -> None:
        with self.wallet._lock:
            if not self.released:
                self.wallet._held -= self.amount
                self.released = True
            self.wallet._apply(credits_after, at)
