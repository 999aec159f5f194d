"""Messages between actors. Commands go down (coordinator -> ship, coordinator -> watcher);
events go up (ship -> coordinator, watcher -> coordinator), by `tell` only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from domain.enums import SupplyLevel
from domain.factory import DeliverKind
from domain.markets import MarketSnapshot
from domain.ranking import buyable

# --- commands ----------------------------------------------------------------------------


class JobKind(StrEnum):
    TRADE = "TRADE"  # one trip of a task: buy at `source`, deliver to `destination` (or keep)
    VISIT = "VISIT"  # fly to `source` and read its market (surveys, parked probes)
    UNLOAD = "UNLOAD"  # sell all of `good` the hold carries at `destination`


@dataclass(frozen=True)
class Job:
    kind: JobKind
    source: str
    factory: str
    task: str | None = None
    good: str | None = None
    destination: str | None = None  # None: keep the goods in the hold
    deliver: DeliverKind = DeliverKind.SELL
    contract: str | None = None
    units: int = 0  # the task's whole lot
    lost: int = 0  # units of the task written off (all ships)
    written_off: int = 0  # …of which this ship's
    below_threshold: bool = False  # buy whatever the supply (a raw material)
    # made at the source: its next lot is signalled by a reading taken after it waits,
    # so what our buying left there needs no reading of its own
    collect: bool = False
    min_supply: SupplyLevel = SupplyLevel.MODERATE
    ceiling: int | None = None  # highest purchase price per unit
    reserve: int = 0  # credits never to go below


@dataclass(frozen=True)
class RunJob:
    """Coordinator -> ship: do this, then report to the job's factory."""

    job: Job


@dataclass(frozen=True)
class Watch:
    """Coordinator -> watcher: tell `factory` once `good` at `waypoint` shows `level`
    in a reading taken after `since`. A watch with the same key is replaced; it is sent
    again when a whole round of inputs has landed there (`landed`): until then (one being
    decided or on its way), the export is not expected to answer, and is polled ever less
    often."""

    key: str
    factory: str
    waypoint: str
    good: str
    level: SupplyLevel
    since: datetime
    landed: datetime | None = None  # when a round's last feed landed; None: awaited
    ceiling: int | None = None  # the most a ship pays a unit: a dearer lot is not ready

    def answered_by(self, snapshot: MarketSnapshot | None) -> bool:
        """Does this reading show what the watch waits for?"""
        if snapshot is None or snapshot.observed_at is None or snapshot.observed_at <= self.since:
            return False
        return buyable(snapshot.quote(self.good), self.level, self.ceiling)


@dataclass(frozen=True)
class Unwatch:
    key: str


@dataclass(frozen=True)
class Follow:
    """Coordinator -> watcher: tell `factory` whenever one of these markets is read."""

    factory: str
    waypoints: frozenset[str]


@dataclass(frozen=True)
class Observed:
    """Market book -> watcher: a market was read."""

    snapshot: MarketSnapshot


@dataclass(frozen=True)
class Tick:
    """Scheduler -> actor: time to look around."""


# --- events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobDone:
    ship: str
    job: Job
    bought: int = 0
    delivered: int = 0
    supply_fell: bool = False  # it stopped buying because the market fell below the threshold
    missing: int = 0  # units the ledger says it held that were not in its hold
    need: int | None = None  # units the destination still requires (site or contract)


@dataclass(frozen=True)
class JobNotReady:
    ship: str
    job: Job
    reason: str
    supply_fell: bool = False


@dataclass(frozen=True)
class JobFailed:
    ship: str
    job: Job
    error: str
    fatal: bool = False  # the factory cannot go on (e.g. out of credits)


@dataclass(frozen=True)
class ShipLost:
    ship: str
    job: Job


@dataclass(frozen=True)
class JobInterrupted:
    ship: str
    job: Job


@dataclass(frozen=True)
class ShipCrashed:
    """Pool -> coordinator: the ship's actor died on a bug while running `job`; it is
    started afresh for its next job unless it crashed too often (`benched`)."""

    ship: str
    job: Job
    error: str
    benched: bool


@dataclass(frozen=True)
class Traded:
    """A confirmed purchase or delivery for a task, as it happens."""

    ship: str
    factory: str
    task: str
    kind: str  # PURCHASE, SELL, SUPPLY or DELIVER
    units: int
    total: int


@dataclass(frozen=True)
class Refuelled:
    ship: str
    factory: str
    total: int


@dataclass(frozen=True)
class SupplySeen:
    """Watcher -> coordinator: the good's supply at the market reached the level asked."""

    key: str
    waypoint: str
    good: str
    supply: SupplyLevel
    observed_at: datetime


@dataclass(frozen=True)
class MarketSeen:
    """Watcher -> coordinator: a followed market has new quotes."""

    waypoint: str
    observed_at: datetime


@dataclass(frozen=True)
class MarketBlind:
    """Watcher -> coordinator: a followed market was read without quotes: none of our
    ships is there, whatever this process believed."""

    waypoint: str


JobResult = JobDone | JobNotReady | JobFailed | ShipLost | JobInterrupted | ShipCrashed
