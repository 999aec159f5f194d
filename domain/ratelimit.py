"""The documented rate-limit pools, shared by the client (to pace itself) and the
simulator (to enforce them): a pool of points that refills `window` seconds after its
first use. Pure: the caller passes the time."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Pool:
    size: int
    window: float
    points: int = 0
    resets_at: float | None = None

    def __post_init__(self):
        self.points = self.size

    def refresh(self, now: float) -> None:
        if self.resets_at is not None and now >= self.resets_at:
            self.points, self.resets_at = self.size, None

    def take(self, now: float) -> None:
        if self.resets_at is None:
            self.resets_at = now + self.window
        self.points -= 1
