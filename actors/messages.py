"""Messages between actors. Commands go down (coordinator -> ship), events go up (tell)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from domain.enums import SupplyLevel


class JobKind(StrEnum):
    TRADE = "TRADE"  # buy at `source`, deliver to `destination` (or keep)
    VISIT = "VISIT"  # fly to `source` and read its market (surveys, parking probes)


@dataclass(frozen=True)
class Job:
    kind: JobKind
    source: str
    factory: str | None = None
    task: str | None = None
    good: str | None = None
    destination: str | None = None
    units: int = 0
    held: int = 0  # units already bought for this task and still in the hold
    delivered: int = 0  # units already delivered for this task
    collect: bool = False  # buy only if supply >= min_supply (a made good)
    min_supply: SupplyLevel = SupplyLevel.MODERATE
    ceiling: int | None = None  # highest purchase price per unit
    reserve: int = 0  # credits never to go below


@dataclass(frozen=True)
class RunJob:
    """Coordinator -> ship: do this; report progress and the result through `reply`."""

    job: Job
    reply: Callable[[object], None]  # the coordinator's ActorRef.tell


@dataclass(frozen=True)
class JobDone:
    ship: str
    job: Job


@dataclass(frozen=True)
class JobNotReady:
    ship: str
    job: Job
    reason: str


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
class Traded:
    """A confirmed purchase or sale for a task, as it happens."""

    ship: str
    task: str
    kind: str  # PURCHASE or SELL
    units: int
    total: int


@dataclass(frozen=True)
class Refuelled:
    ship: str
    factory: str | None
    total: int


@dataclass(frozen=True)
class SupplySeen:
    """Watcher -> subscriber: the good's supply at the market reached the level asked."""

    key: str
    waypoint: str
    good: str
    supply: SupplyLevel
    observed_at: datetime


@dataclass(frozen=True)
class Tick:
    """Scheduler -> actor: time to look around."""


JobResult = JobDone | JobNotReady | JobFailed | ShipLost | JobInterrupted
