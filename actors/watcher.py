"""Markets: the one place they are read, recorded and watched.

`MarketBook` is the only code that asks the API for a market. It keeps the latest
reading of every market in memory (shared by every factory of the process), writes each
reading to the database in one transaction, and hands it to the watcher. Ships call it
when they stand at a market; the watcher calls it to poll watched ones; nobody else.

`MarketWatcher` keeps the subscriptions: it tells a factory when a good's supply reached
the level it waits for (`SupplySeen`), when a market it follows was read (`MarketSeen`),
and when a reading came back without quotes (`MarketBlind`): then none of our ships is
there, whatever this process believed, and the fleet is read again from the server.
It polls watched markets soon after a watch starts (`initial`), then settles (`settled`);
an exporter still awaiting a whole round of its inputs, ever less often.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pykka
import structlog

from actors.fleet import Fleet
from actors.messages import (
    Follow,
    MarketBlind,
    MarketSeen,
    Observed,
    SupplySeen,
    Tick,
    Unwatch,
    Watch,
)
from api.client import Client
from api.errors import ApiError, Cancelled
from api.models import MarketReading
from api.ratelimit import Priority
from domain.markets import MarketSnapshot, system_of
from domain.navigation import Place
from domain.scheduling import TravelTimes
from storage.repositories import Storage

log = structlog.get_logger("watcher")

ANSWERS_KEPT = 64  # answer delays remembered per system: the latest say most of today
ROUNDS_KEPT = 16  # answers' rounds remembered per station: the latest say most of today


class MarketBook:
    """What the process knows of each market, and the one way to read one."""

    def __init__(self, client: Client, storage: Storage):
        self.client = client
        self.storage = storage
        self._lock = threading.Lock()
        self._latest: dict[str, MarketSnapshot] = {}
        self._bare: dict[str, MarketSnapshot] = {}  # lists only, see `_lists_of`
        self._places: dict[str, dict[str, Place]] = {}
        self._times: dict[str, TravelTimes] = {}
        self._listeners: list[Callable[[MarketSnapshot], None]] = []
        self._traded: dict[str, datetime] = {}  # our last trade at each market
        self._answers: dict[str, deque[float]] = {}  # system -> answer delays, see `answered`
        self._rounds: dict[tuple[str, str], deque[tuple[int, int]]] = {}  # see `answered`
        self.reads = 0

    def listen(self, listener: Callable[[MarketSnapshot], None]) -> None:
        self._listeners.append(listener)

    def know_system(self, system: str, again: bool = False) -> None:
        """Waypoints and every market's lists, from the database or, for what it lacks
        (or everything, `again`), from the API: they never change within a reset."""
        storage = self.storage
        if again or not storage.waypoints.known(system):
            storage.waypoints.save(system, self.client.waypoints(system))
        known = set() if again else storage.markets.known_waypoints(system)
        fresh = [self.client.market(w, priority=Priority.REFRESH).snapshot
                 for w in storage.waypoints.markets(system) if w not in known]
        if fresh:
            storage.markets.record(*fresh)
        answers = storage.markets.answer_delays(system, ANSWERS_KEPT)
        rounds = storage.markets.answer_rounds(system, ROUNDS_KEPT)
        with self._lock:
            if again:
                self._bare.clear()
            for snapshot in storage.markets.snapshots(system):
                self._latest[snapshot.waypoint] = snapshot
            self._places[system] = storage.waypoints.places(system)
            self._answers[system] = deque(answers, maxlen=ANSWERS_KEPT)
            self._rounds.update({station: deque(seen, maxlen=ROUNDS_KEPT)
                                 for station, seen in rounds.items()})

    def read(self, waypoint: str, priority: Priority = Priority.REFRESH) -> MarketReading:
        """Ask the API for the market, record it and tell the listeners."""
        reading = self.client.market(waypoint, priority=priority)
        snapshot = reading.snapshot
        with self._lock:
            self.reads += 1
            old = self._latest.get(waypoint)
            if snapshot.has_quotes or old is None:
                self._latest[waypoint] = snapshot
        if snapshot.has_quotes:
            self.storage.markets.record(snapshot)
        for listener in self._listeners:
            listener(snapshot)
        return reading

    def latest(self, waypoint: str) -> MarketSnapshot | None:
        with self._lock:
            return self._latest.get(waypoint)

    def traded(self, waypoint: str, at: datetime) -> None:
        """One of our ships traded there at `at`: what was read before is out of date."""
        with self._lock:
            self._traded[waypoint] = max(at, self._traded.get(waypoint, at))

    def answered(self, waypoint: str, good: str, landed_at: datetime, seconds: float,
                 rounds: tuple[int, int] | None = None) -> None:
        """The export of `good` at `waypoint` rose `seconds` after a round of ours landed,
        having needed `rounds` of ours (`feeding.answer_rounds`). Every factory in the
        system and every later run learns from it (the game does not publish how fast
        markets make goods, nor from how much); losing one to a database error costs only
        a little of that."""
        with self._lock:
            self._answers.setdefault(system_of(waypoint), deque(maxlen=ANSWERS_KEPT)) \
                .append(seconds)
            if rounds is not None:
                self._rounds.setdefault((waypoint, good), deque(maxlen=ROUNDS_KEPT)) \
                    .append(rounds)
        try:
            self.storage.markets.record_answer(waypoint, good, landed_at, seconds, rounds)
        except Exception as exc:
            log.warning("answer.not_recorded", waypoint=waypoint, good=good, error=str(exc))

    def answer_delays(self, system: str) -> tuple[float, ...]:
        """The latest answer delays seen in `system`, by any factory or earlier run."""
        with self._lock:
            return tuple(self._answers.get(system, ()))

    def answer_rounds(self, waypoint: str, good: str) -> tuple[tuple[int, int], ...]:
        """What the answers of the export of `good` at `waypoint` said of the rounds it
        needs, oldest first (`feeding.rounds_needed` reads them)."""
        with self._lock:
            return tuple(self._rounds.get((waypoint, good), ()))

    def read_between(self, waypoint: str, since: datetime, until: datetime | None = None,
                     untraded: bool = False) -> MarketSnapshot | None:
        """The latest reading with quotes, if it was taken from `since` to `until`: one a
        ship or a poll took moments ago need not be taken again. To trade on (`untraded`),
        no ship of ours may have traded there after it: stock and prices moved since."""
        with self._lock:
            traded = self._traded.get(waypoint) if untraded else None
        latest = self.latest(waypoint)
        if latest is None or not latest.has_quotes or latest.observed_at is None or \
                latest.observed_at < since or (until is not None and latest.observed_at > until) \
                or (traded is not None and latest.observed_at <= traded):
            return None
        return latest

    def snapshots(self, system: str, fresh_since: datetime | None = None
                  ) -> list[MarketSnapshot]:
        """Every market of `system`; quotes older than `fresh_since` are left out."""
        with self._lock:
            found = [s for s in self._latest.values() if s.system == system]
        if fresh_since is None:
            return found
        return [s if s.observed_at and s.observed_at >= fresh_since else self._lists_of(s)
                for s in found]

    def _lists_of(self, snapshot: MarketSnapshot) -> MarketSnapshot:
        """The market's lists without quotes, made once per market (lists never change
        within a reset, and every pass of every factory asks)."""
        bare = self._bare.get(snapshot.waypoint)
        if bare is None:
            bare = self._bare[snapshot.waypoint] = replace(snapshot, quotes={},
                                                           observed_at=None)
        return bare

    def places(self, system: str) -> dict[str, Place]:
        with self._lock:
            return self._places.get(system, {})

    def travel_times(self, system: str) -> TravelTimes:
        """Flight times in a system, memoised once for every factory of the process (ten
        factories ask about the same ships on the same map)."""
        with self._lock:
            places = self._places.get(system, {})
            times = self._times.get(system)
            if times is None or times.places is not places:
                times = self._times[system] = TravelTimes(places)
            return times


@dataclass
class _Watch:
    watch: Watch
    polls: int = 0
    last_poll: datetime | None = None


class Directory:
    """Port: deliver an event to a factory's current coordinator."""

    def tell(self, factory: str, message: object) -> None:  # pragma: no cover - interface
        raise NotImplementedError


IDLE_BACKOFF = 8  # polls of an exporter awaiting a round stretch up to 8 × `settled`


class MarketWatcher:
    FLEET_REFRESH = timedelta(seconds=30)
    FORGET_EVERY = timedelta(hours=1)

    def __init__(self, book: MarketBook, fleet: Fleet, directory: Directory,
                 clock: Callable[[], datetime], initial: float = 30.0, settled: float = 60.0,
                 fresh: float = 10.0, history_days: float | None = None):
        self.book = book
        self.fleet = fleet
        self.directory = directory
        self.clock = clock
        self.initial = timedelta(seconds=initial)
        self.settled = timedelta(seconds=settled)
        self.fresh = timedelta(seconds=fresh)  # a reading this recent stands for a poll
        self.watches: dict[str, _Watch] = {}
        self.follows: dict[str, frozenset[str]] = {}
        self.fleet_read_at: datetime | None = None
        self.polls = 0
        self.keep = None if history_days is None else timedelta(days=history_days)
        self.forgot_at: datetime | None = None

    def handle(self, message: object) -> None:
        if isinstance(message, Tick):
            self.poll()
            self.forget_old()
        elif isinstance(message, Observed):
            self.observed(message.snapshot)
        elif isinstance(message, Watch):
            held = self.watches.get(message.key)
            if held is not None and held.watch.since == message.since:
                held.watch = message  # a feed landed: the polls go on at their pace
            else:
                self.watches[message.key] = _Watch(message)
            latest = self.book.latest(message.waypoint)
            if latest is not None and latest.observed_at is not None:
                self._check_watches(latest)
        elif isinstance(message, Unwatch):
            self.watches.pop(message.key, None)
        elif isinstance(message, Follow):
            if message.waypoints:
                self.follows[message.factory] = message.waypoints
            else:
                self.follows.pop(message.factory, None)

    def observed(self, snapshot: MarketSnapshot) -> None:
        """A reading came in (from a ship, a poll or a survey): who was waiting for it?"""
        waypoint = snapshot.waypoint
        if snapshot.observed_at is None:
            for factory in self._followers(waypoint):
                self.directory.tell(factory, MarketBlind(waypoint))
            return
        self._check_watches(snapshot)
        for factory in self._followers(waypoint):
            self.directory.tell(factory, MarketSeen(waypoint, snapshot.observed_at))

    def _check_watches(self, snapshot: MarketSnapshot) -> None:
        waypoint = snapshot.waypoint
        for w in [w.watch for w in self.watches.values() if w.watch.waypoint == waypoint]:
            if w.answered_by(snapshot):
                quote = snapshot.quote(w.good)
                del self.watches[w.key]
                log.info("supply.reached", waypoint=waypoint, good=w.good,
                         supply=quote.supply.name, price=quote.purchase_price,
                         factory=w.factory, key=w.key)
                self.directory.tell(w.factory, SupplySeen(w.key, waypoint, w.good, quote.supply,
                                                          snapshot.observed_at))

    def _followers(self, waypoint: str) -> list[str]:
        watching = {w.watch.factory for w in self.watches.values()
                    if w.watch.waypoint == waypoint}
        following = {f for f, ws in self.follows.items() if waypoint in ws}
        return sorted(watching | following)

    def poll(self) -> int:
        """Read the watched markets that are due and have one of our ships present;
        returns the reads made."""
        now = self.clock()
        reads = 0
        for waypoint in sorted({w.watch.waypoint for w in self.watches.values()}):
            watches = [w for w in self.watches.values() if w.watch.waypoint == waypoint]
            if not any(self._due(w, now) for w in watches):
                continue
            if not self.fleet.present_at(waypoint, now):
                continue
            for w in watches:
                w.polls += 1
                w.last_poll = now
            if self._read_moments_ago(waypoint, watches, now):
                continue
            try:
                reading = self.book.read(waypoint, priority=Priority.REFRESH)
            except Cancelled:
                raise
            except ApiError as exc:
                log.warning("watcher.read_failed", waypoint=waypoint, error=str(exc))
                continue
            reads += 1
            self.polls += 1
            if not reading.snapshot.has_quotes:
                self._blind(waypoint, now)
        return reads

    def forget_old(self) -> None:
        """Once an hour (and on the first tick), drop the market history (readings and
        answer delays) older than the days kept."""
        now = self.clock()
        if self.keep is None or (self.forgot_at is not None
                                 and now - self.forgot_at < self.FORGET_EVERY):
            return
        self.forgot_at = now
        readings, answers = self.book.storage.markets.forget_history(now - self.keep)
        if readings or answers:
            log.info("history.forgotten", readings=readings, answers=answers,
                     before=(now - self.keep).isoformat())

    def _read_moments_ago(self, waypoint: str, watches: list[_Watch], now: datetime) -> bool:
        """Did someone read the market moments ago, after every watch there began (a ship
        as it landed or traded)? That reading stands for the poll due now: the watches
        heard of it already, and a second read would only repeat it."""
        latest = self.book.read_between(waypoint, now - self.fresh, now)
        return latest is not None and all(latest.observed_at > w.watch.since for w in watches)

    def _blind(self, waypoint: str, now: datetime) -> None:
        """We believed a ship was there and it is not: learn where the fleet really is."""
        log.info("watcher.blind", waypoint=waypoint)
        if self.fleet_read_at is None or now - self.fleet_read_at >= self.FLEET_REFRESH:
            self.fleet_read_at = now
            try:
                for ship in self.book.client.ships():
                    self.fleet.update(ship)
            except ApiError as exc:
                log.warning("watcher.fleet_read_failed", error=str(exc))

    def _due(self, w: _Watch, now: datetime) -> bool:
        """Soon after the watch starts, then every `settled`; while a whole round of its
        inputs is awaited only the market's own recovery can answer, so the wait doubles
        after each poll, up to `IDLE_BACKOFF` × `settled`."""
        last = w.last_poll or w.watch.since
        if w.polls == 0:
            return now - last >= self.initial
        if w.watch.landed is None:
            return now - last >= self.settled * min(IDLE_BACKOFF, 2 ** (w.polls - 1))
        return now - last >= self.settled


class MarketWatcherActor(pykka.ThreadingActor):
    """A mailbox for the watcher; its state lives in the plain object, so a restarted
    actor carries on with the same subscriptions."""

    use_daemon_thread = True

    def __init__(self, watcher: MarketWatcher):
        super().__init__()
        self.watcher = watcher

    def on_start(self) -> None:
        structlog.contextvars.bind_contextvars(actor="watcher")

    def on_receive(self, message: object) -> None:
        try:
            self.watcher.handle(message)
        except Cancelled:
            pass
