"""Keeping market data fresh, and telling subscribers when a supply level is reached.

Quotes are only visible with a ship present, so the watcher polls a watched market
only while one of our ships (a parked probe, or an idle hauler) is there. It polls a
new watch soon (`initial` seconds) and then settles (`settled` seconds), and every
reading a ship makes on its own is fed in too (`observed`), so no request is wasted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pykka
import structlog

from actors.fleet import Fleet
from actors.messages import SupplySeen, Tick
from api.client import Client
from api.errors import ApiError, Cancelled
from api.ratelimit import Priority
from domain.enums import SupplyLevel
from domain.markets import MarketSnapshot
from storage.repositories import Storage

log = structlog.get_logger("watcher")


@dataclass
class _Watch:
    key: str
    waypoint: str
    good: str
    min_supply: SupplyLevel
    since: datetime
    notify: Callable[[SupplySeen], None]
    polls: int = 0
    last_poll: datetime | None = None


@dataclass(frozen=True)
class Observed:
    """A ship read a market: let the watcher look at it."""

    snapshot: MarketSnapshot


class MarketWatcher:
    def __init__(self, client: Client, storage: Storage, fleet: Fleet,
                 clock: Callable[[], datetime], initial: float = 30.0, settled: float = 60.0):
        self.client = client
        self.storage = storage
        self.fleet = fleet
        self.clock = clock
        self.initial = timedelta(seconds=initial)
        self.settled = timedelta(seconds=settled)
        self.watches: dict[str, _Watch] = {}
        self.polls = 0

    def watch(self, key: str, waypoint: str, good: str, min_supply: SupplyLevel,
              since: datetime, notify: Callable[[SupplySeen], None]) -> None:
        """Tell `notify` once `good` at `waypoint` shows `min_supply` in a reading taken
        after `since`. A watch with the same key is replaced."""
        self.watches[key] = _Watch(key, waypoint, good, min_supply, since, notify)
        latest = self.storage.markets.snapshot(waypoint)
        if latest is not None:
            self.observed(latest)

    def unwatch(self, key: str) -> None:
        self.watches.pop(key, None)

    def watched_waypoints(self) -> set[str]:
        return {w.waypoint for w in self.watches.values()}

    def observed(self, snapshot: MarketSnapshot) -> None:
        if snapshot.observed_at is None:
            return
        for w in [w for w in self.watches.values() if w.waypoint == snapshot.waypoint]:
            quote = snapshot.quote(w.good)
            if quote and quote.supply >= w.min_supply and snapshot.observed_at > w.since:
                del self.watches[w.key]
                log.info("supply.reached", waypoint=w.waypoint, good=w.good,
                         supply=quote.supply.name, key=w.key)
                w.notify(SupplySeen(w.key, w.waypoint, w.good, quote.supply,
                                    snapshot.observed_at))

    def poll(self) -> int:
        """Read the watched markets that are due and have a ship present; returns reads."""
        now = self.clock()
        reads = 0
        for waypoint in sorted(self.watched_waypoints()):
            watches = [w for w in self.watches.values() if w.waypoint == waypoint]
            due = any(self._due(w, now) for w in watches)
            if not due or not self.fleet.present_at(waypoint, now):
                continue
            try:
                reading = self.client.market(waypoint, priority=Priority.REFRESH)
            except Cancelled:
                raise
            except ApiError as exc:
                log.warning("watcher.read_failed", waypoint=waypoint, error=str(exc))
                continue
            reads += 1
            self.polls += 1
            for w in watches:
                w.polls += 1
                w.last_poll = now
            self.storage.markets.record(reading.snapshot)
            self.observed(reading.snapshot)
        return reads

    def _due(self, w: _Watch, now: datetime) -> bool:
        last = w.last_poll or w.since
        return now - last >= (self.initial if w.polls == 0 else self.settled)


class MarketWatcherActor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(self, watcher: MarketWatcher):
        super().__init__()
        self.watcher = watcher

    def on_start(self) -> None:
        structlog.contextvars.bind_contextvars(actor="watcher")

    def watch(self, *args, **kwargs) -> None:
        self.watcher.watch(*args, **kwargs)

    def unwatch(self, key: str) -> None:
        self.watcher.unwatch(key)

    def on_receive(self, message):
        try:
            if isinstance(message, Tick):
                self.watcher.poll()
            elif isinstance(message, Observed):
                self.watcher.observed(message.snapshot)
        except Cancelled:
            pass
        except Exception:  # a bug must not kill the watcher
            log.exception("watcher.error")
