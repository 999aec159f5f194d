"""The watcher and the market book, driven by hand with a fake clock and a fake client."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from actors.fleet import Fleet
from actors.messages import Follow, MarketBlind, MarketSeen, Observed, SupplySeen, Tick, Watch
from actors.watcher import Directory, MarketBook, MarketWatcher
from api.models import Cargo, Fuel, MarketReading, Nav, Ship
from domain.enums import SupplyLevel
from storage.db import open_database
from storage.repositories import Storage
from tests.builders import market

T0 = datetime(2026, 5, 1, tzinfo=UTC)


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


class Client:
    """Answers market reads with what the test sets, and counts them."""

    def __init__(self, clock):
        self.clock = clock
        self.markets: dict = {}
        self.fleet: list[Ship] = []
        self.reads = 0

    def market(self, waypoint, priority=None):
        self.reads += 1
        snapshot = self.markets[waypoint]
        if snapshot.has_quotes:
            snapshot = replace(snapshot, observed_at=self.clock())
        return MarketReading(snapshot)

    def ships(self):
        return self.fleet

    def waypoints(self, system):
        return []


class Inbox(Directory):
    def __init__(self):
        self.got: list = []

    def tell(self, factory, message):
        self.got.append((factory, message))


def ship(symbol, at):
    return Ship(symbol, "SATELLITE", Nav("X1-T", at, "IN_ORBIT", "CRUISE", at, None, None),
                Fuel(0, 0), Cargo(0, 0), 9, "FRAME_PROBE")


@pytest.fixture
def world(tmp_path):
    clock = Clock()
    client = Client(clock)
    storage = Storage(open_database(str(tmp_path / "w.db")))
    book = MarketBook(client, storage)
    fleet, inbox = Fleet(), Inbox()
    watcher = MarketWatcher(book, fleet, inbox, clock, initial=30, settled=60)
    book.listen(lambda snapshot: watcher.handle(Observed(snapshot)))
    yield clock, client, book, fleet, inbox, watcher
    storage.close()


def scarce():
    return market("X1-T-E", exports=["CLOTHING"], CLOTHING=("SCARCE", "WEAK"))


def moderate():
    return market("X1-T-E", exports=["CLOTHING"], CLOTHING=("MODERATE", "WEAK"))


def test_a_watch_fires_once_on_a_reading_at_the_level_taken_after_it_started(world):
    clock, client, book, _fleet, inbox, watcher = world
    client.markets["X1-T-E"] = moderate()
    book.read("X1-T-E")  # an old reading at the level…
    clock.now += timedelta(seconds=5)
    watcher.handle(Watch("CLOTHING@X1-T-E", "f1", "X1-T-E", "CLOTHING", SupplyLevel.MODERATE,
                         clock.now))
    assert inbox.got == [], "…does not count"

    def signals():
        return [(f, m) for f, m in inbox.got if isinstance(m, SupplySeen)]

    clock.now += timedelta(seconds=5)
    client.markets["X1-T-E"] = scarce()
    book.read("X1-T-E")
    assert signals() == [] and isinstance(inbox.got[-1][1], MarketSeen)
    client.markets["X1-T-E"] = moderate()
    book.read("X1-T-E")
    [(factory, seen)] = signals()
    assert factory == "f1" and seen.supply.name == "MODERATE"
    book.read("X1-T-E")
    assert len(signals()) == 1, "once"


def test_followers_hear_of_readings_and_of_blind_ones(world):
    _clock, client, book, _fleet, inbox, watcher = world
    watcher.handle(Follow("f1", frozenset({"X1-T-E"})))
    client.markets["X1-T-E"] = moderate()
    book.read("X1-T-E")
    assert [type(m) for _, m in inbox.got] == [MarketSeen]
    client.markets["X1-T-E"] = market("X1-T-E", exports=["CLOTHING"], quotes=False)
    book.read("X1-T-E")
    assert [type(m) for _, m in inbox.got] == [MarketSeen, MarketBlind]
    assert book.latest("X1-T-E").has_quotes, "the last quotes are kept"
    watcher.handle(Follow("f1", frozenset()))
    book.read("X1-T-E")
    assert len(inbox.got) == 2


def test_polls_start_soon_then_settle_and_only_with_a_ship_there(world):
    clock, client, _book, fleet, _inbox, watcher = world
    client.markets["X1-T-E"] = scarce()
    watcher.handle(Watch("k", "f1", "X1-T-E", "CLOTHING", SupplyLevel.MODERATE, clock.now))
    clock.now += timedelta(seconds=31)
    watcher.handle(Tick())
    assert client.reads == 0, "no ship there: nothing to read"
    fleet.update(ship("P-1", "X1-T-E"))
    watcher.handle(Tick())
    assert client.reads == 1
    clock.now += timedelta(seconds=31)
    watcher.handle(Tick())
    assert client.reads == 1, "settled: every 60 s"
    clock.now += timedelta(seconds=30)
    watcher.handle(Tick())
    assert client.reads == 2


def poll_times(clock, client, watcher, seconds: int) -> list[int]:
    """The seconds (from now) at which the watcher read the market, ticking each second."""
    start, out = clock.now, []
    for t in range(1, seconds + 1):
        clock.now = start + timedelta(seconds=t)
        before = client.reads
        watcher.handle(Tick())
        if client.reads > before:
            out.append(t)
    return out


def test_an_exporter_nothing_landed_at_is_polled_ever_less_often_until_a_feed_lands(world):
    clock, client, _book, fleet, _inbox, watcher = world
    client.markets["X1-T-E"] = scarce()
    fleet.update(ship("P-1", "X1-T-E"))
    watcher.handle(Watch("k", "f1", "X1-T-E", "CLOTHING", SupplyLevel.MODERATE, clock.now))
    assert poll_times(clock, client, watcher, 1500) == [30, 90, 210, 450, 930, 1410], \
        "soon, then 60, 120, 240 and at most 480 s apart: only its own recovery can answer"
    watcher.handle(Watch("k", "f1", "X1-T-E", "CLOTHING", SupplyLevel.MODERATE, T0,
                         clock.now))
    assert poll_times(clock, client, watcher, 200) == [1, 61, 121, 181], \
        "a feed landed: every 60 s from the last poll (a minute and a half ago)"


def test_a_blind_poll_reads_the_fleet_again(world):
    clock, client, _book, fleet, inbox, watcher = world
    fleet.update(ship("P-1", "X1-T-E"))  # this process believes the probe is there
    client.markets["X1-T-E"] = market("X1-T-E", exports=["CLOTHING"], quotes=False)
    client.fleet = [ship("P-1", "X1-T-B")]  # another process moved it
    watcher.handle(Watch("k", "f1", "X1-T-E", "CLOTHING", SupplyLevel.MODERATE, clock.now))
    clock.now += timedelta(seconds=31)
    watcher.handle(Tick())
    assert fleet.get("P-1").waypoint == "X1-T-B"
    assert ("f1", MarketBlind("X1-T-E")) in inbox.got
    clock.now += timedelta(seconds=61)
    watcher.handle(Tick())
    assert client.reads == 1, "it no longer thinks a ship is there"


def test_the_book_remembers_per_system_and_leaves_stale_quotes_out(world):
    clock, client, book, _fleet, _inbox, _watcher = world
    client.markets["X1-T-E"] = moderate()
    book.read("X1-T-E")
    assert [s.waypoint for s in book.snapshots("X1-T")] == ["X1-T-E"]
    assert book.snapshots("X1-T", fresh_since=clock.now)[0].has_quotes
    later = book.snapshots("X1-T", fresh_since=clock.now + timedelta(seconds=1))
    assert not later[0].has_quotes and later[0].exports == {"CLOTHING"}
    assert book.storage.markets.snapshot("X1-T-E").has_quotes, "recorded"
    assert book.reads == 1


@pytest.mark.parametrize("ago, reads", [(0, 1), (5, 1), (15, 2)])
def test_a_reading_taken_moments_before_a_poll_stands_for_it(world, ago, reads):
    """A ship landed or traded there and read the market: the poll due right after would
    only repeat it (the watches heard of it already)."""
    clock, client, book, fleet, _inbox, watcher = world
    client.markets["X1-T-E"] = scarce()
    fleet.update(ship("P-1", "X1-T-E"))
    watcher.handle(Watch("k", "f1", "X1-T-E", "CLOTHING", SupplyLevel.MODERATE, clock.now))
    clock.now += timedelta(seconds=31 - ago)
    book.read("X1-T-E")  # the ship's reading
    clock.now += timedelta(seconds=ago)
    watcher.handle(Tick())  # a poll is due now
    assert client.reads == reads
    clock.now += timedelta(seconds=59)
    watcher.handle(Tick())
    assert client.reads == reads, "the next poll waits a settled interval from then"
    clock.now += timedelta(seconds=1)
    watcher.handle(Tick())
    assert client.reads == reads + 1


def test_market_history_older_than_the_days_kept_is_forgotten_once_an_hour(world):
    """A run left going for weeks must not grow the database by every poll; the latest
    quote of each good stays whatever its age."""
    clock, client, book, _fleet, inbox, _ = world
    watcher = MarketWatcher(book, Fleet(), inbox, clock, history_days=2)
    client.markets["X1-T-E"] = scarce()
    markets = book.storage.markets
    for _ in range(3):  # readings and answers at 0, 1 and 2 days
        book.read("X1-T-E")
        book.answered("X1-T-E", "CLOTHING", clock.now, 100.0)
        clock.now += timedelta(days=1)
    clock.now -= timedelta(minutes=10)  # the first reading is more than 2 days old
    watcher.handle(Tick())
    days = [T0 + timedelta(days=1), T0 + timedelta(days=2)]
    assert [t for t, _, _ in markets.history("X1-T-E", "CLOTHING")] == days
    clock.now += timedelta(minutes=20)  # the second is too, but an hour has not passed
    watcher.handle(Tick())
    assert [t for t, _, _ in markets.history("X1-T-E", "CLOTHING")] == days
    clock.now += timedelta(minutes=40)
    with capture_logs() as logs:
        watcher.handle(Tick())
    assert [(e["readings"], e["answers"]) for e in logs
            if e["event"] == "history.forgotten"] == [(1, 1)]
    assert [t for t, _, _ in markets.history("X1-T-E", "CLOTHING")] == days[1:]
    assert markets.answer_delays("X1-T", most=10) == [100.0], "answers age alike"
    clock.now += timedelta(days=5)
    watcher.handle(Tick())
    assert markets.history("X1-T-E", "CLOTHING") == []
    assert markets.answer_delays("X1-T", most=10) == []
    assert markets.snapshot("X1-T-E").quote("CLOTHING").supply is SupplyLevel.SCARCE


def test_market_history_is_kept_whole_without_a_limit(world):
    clock, client, book, _fleet, _inbox, watcher = world
    client.markets["X1-T-E"] = scarce()
    book.read("X1-T-E")
    clock.now += timedelta(days=400)
    watcher.handle(Tick())
    assert len(book.storage.markets.history("X1-T-E", "CLOTHING")) == 1


def test_answer_delays_are_shared_by_the_system_and_outlive_the_process(world):
    """One factory learnt that exporters here answer slowly: every factory of the system
    hears of it at once, and a later process (a restart, the next order) starts from it."""
    _clock, client, book, *_ = world
    book.answered("X1-T-E", "CLOTHING", T0, 310.0)
    book.answered("X1-U-B", "FABRICS", T0, 90.0)
    assert book.answer_delays("X1-T") == (310.0,)
    assert book.answer_delays("X1-U") == (90.0,)
    later = MarketBook(client, book.storage)
    assert later.answer_delays("X1-T") == (), "not known before the system is"
    later.know_system("X1-T")
    assert later.answer_delays("X1-T") == (310.0,)


def test_the_rounds_an_exporter_needs_outlive_the_process(world):
    """An exporter that needed four rounds of ours for an answer gets four at once in the
    next run, rather than a ramp from one."""
    _clock, client, book, *_ = world
    book.answered("X1-T-B", "FABRICS", T0, 120.0, (4, 4))
    book.answered("X1-T-B", "FABRICS", T0 + timedelta(hours=1), 90.0, (1, 4))
    book.answered("X1-T-E", "CLOTHING", T0, 60.0)
    assert book.answer_rounds("X1-T-B", "FABRICS") == ((4, 4), (1, 4))
    assert book.answer_rounds("X1-T-E", "CLOTHING") == (), "nothing said of its rounds"
    later = MarketBook(client, book.storage)
    later.know_system("X1-T")
    assert later.answer_rounds("X1-T-B", "FABRICS") == ((4, 4), (1, 4))


def test_an_answer_delay_the_database_refused_is_still_used(world, monkeypatch):
    _clock, _client, book, *_ = world

    def refuse(*args):
        raise OSError("disk full")

    monkeypatch.setattr(book.storage.markets, "record_answer", refuse)
    with capture_logs() as logs:
        book.answered("X1-T-E", "CLOTHING", T0, 310.0)
    assert book.answer_delays("X1-T") == (310.0,)
    assert [e["event"] for e in logs] == ["answer.not_recorded"]
