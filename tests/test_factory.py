"""The factory aggregate: lots, trips, stations and their feeds, destinations, the end."""

from datetime import UTC, datetime, timedelta

import pytest

from domain.enums import Acquisition
from domain.errors import InvalidTransition
from domain.factory import (
    DeliverKind,
    Destination,
    DestinationError,
    Factory,
    FactoryStatus,
    TaskKind,
    TaskPurpose,
    TaskState,
    backoff,
)
from domain.plan import Decision

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BUY = Decision("CLOTHING", Acquisition.BUY, "X1-T-S")
MAKE = Decision("CLOTHING", Acquisition.FABRICATE, "X1-T-E", inputs=("FABRICS",))
FABRICS = Decision("FABRICS", Acquisition.BUY, "X1-T-F")


def make(units=None, lot=40, destination="hold", max_attempts=5):
    f = Factory(id="f1", target="CLOTHING", system="X1-T", plan=None, lot=lot,
                units_wanted=units, destination=Destination.parse(destination),
                max_attempts=max_attempts, created_at=T0)
    f.start(T0)
    return f


def trip(f, task, ship="S1", bought=0, delivered=0, price=10, supply_fell=False, now=T0):
    """One ship trip: assign, buy, deliver, report."""
    f.assign(task.id, ship, now)
    if bought:
        f.record_purchase(task.id, ship, bought, bought * price)
    if delivered:
        f.record_delivery(task.id, ship, delivered, delivered * price * 2)
    return f.trip_done(task.id, now, supply_fell)


def test_one_load_of_whatever_is_available():
    f = make()
    assert f.lots_to_open(max_open=4) == [40]
    out = f.open_output(BUY, 40, T0)
    assert (out.id, out.purpose, out.kind, out.state, out.keeps) == (
        "f1/out1", TaskPurpose.OUTPUT, TaskKind.SOURCE, TaskState.READY, True)
    assert f.lots_to_open(max_open=4) == [], "one load: one lot"
    trip(f, out, bought=18)
    assert out.state is TaskState.DONE, "whatever was there"
    assert f.reached and f.units_acquired == 18 and f.settled


def test_units_open_several_lots_and_never_more_than_the_order():
    f = make(units=200, lot=40)
    assert f.lots_to_open(max_open=3) == [40, 40, 40]
    lots = [f.open_output(BUY, n, T0) for n in f.lots_to_open(max_open=3)]
    assert [t.lot for t in lots] == [1, 2, 3] and f.in_flight() == 120
    assert f.lots_to_open(max_open=3) == [], "three open at once"
    trip(f, lots[0], bought=40)
    assert lots[0].state is TaskState.DONE and f.units_acquired == 40
    assert f.lots_to_open(max_open=3) == [40]
    lots.append(f.open_output(BUY, 40, T0))
    assert f.lots_to_open(max_open=9) == [40], "200 - 40 acquired - 120 in flight"
    lots.append(f.open_output(BUY, 40, T0))
    assert f.lots_to_open(max_open=9) == []


def test_the_last_lot_is_the_remainder_and_units_can_exceed_any_hold():
    f = make(units=90, lot=40)
    assert f.lots_to_open(max_open=5) == [40, 40, 10]
    f = make(units=1000, lot=40)
    assert len(f.lots_to_open(max_open=100)) == 25


def test_a_partial_load_is_never_done():
    f = make(units=40, destination="sell:X1-T-M")
    out = f.open_output(BUY, 40, T0)
    assert not out.keeps
    trip(f, out, bought=18, delivered=18)
    assert out.state is TaskState.READY and out.to_buy == 22
    trip(f, out, ship="S2", bought=22)
    assert out.state is TaskState.READY, "22 still in the hold, to deliver"
    assert out.carriers == {"S2": 22} and out.to_deliver == 22
    trip(f, out, ship="S2", delivered=22)
    assert out.state is TaskState.DONE and out.trips == 3
    assert f.units_acquired == 40 and f.reached


def test_a_kept_partial_load_waits_for_the_market_instead_of_looping():
    f = make(units=40)
    out = f.open_output(MAKE, 40, T0)
    assert out.state is TaskState.WAITING and out.kind is TaskKind.COLLECT
    f.supply_ready(out.id)
    trip(f, out, bought=15, supply_fell=True)
    assert out.state is TaskState.WAITING, "kept goods are not in the way: wait for supply"
    assert out.carriers == {} and out.holders == {"S1": 15}
    f.supply_ready(out.id)
    f.assign(out.id, "S1", T0)
    f.not_ready(out.id, T0, "below", backoff(1, T0))
    assert out.state is TaskState.WAITING


def test_nothing_to_buy_holds_back_every_lot_ready_to_buy_that_good_there():
    f = make(units=160)
    a, b, c = (f.open_output(BUY, 40, T0) for _ in range(3))
    f.open_output(MAKE, 40, T0)
    [station] = f.stations().values()
    feed = f.open_feed(station, FABRICS, 40, T0)
    f.assign(a.id, "S1", T0)
    retry = T0 + timedelta(seconds=10)
    touched = f.not_ready(a.id, T0, "price above the ceiling", retry)
    assert touched == [a, b, c], "the market's verdict: the lots buying CLOTHING there"
    assert all(t.state is TaskState.READY and t.not_before == retry for t in (a, b, c))
    assert feed.state is TaskState.READY and feed.not_before is None, "another good"
    assert f.ready(T0) == [feed]
    f.assign(a.id, "S1", retry)
    f.assign(b.id, "S2", retry)
    f.not_ready(b.id, retry, "price above the ceiling", retry + timedelta(seconds=60))
    f.not_ready(a.id, retry, "price above the ceiling", retry + timedelta(seconds=20))
    assert a.not_before == retry + timedelta(seconds=20)
    assert c.not_before == retry + timedelta(seconds=60), "a shorter back-off cuts none short"


def test_stations_gather_their_collects_and_feeds():
    f = make(units=80)
    a = f.open_output(MAKE, 40, T0)
    b = f.open_output(MAKE, 40, T0)
    [station] = f.stations().values()
    assert (station.key, station.inputs, station.above) == ("CLOTHING@X1-T-E", ("FABRICS",), ())
    assert station.waiting == [a, b]
    feed = f.open_feed(station, FABRICS, 40, T0 + timedelta(seconds=5))
    assert (feed.id, feed.purpose, feed.destination, feed.station, feed.above, feed.depth) == (
        "f1/feed1", TaskPurpose.FEED, "X1-T-E", "CLOTHING@X1-T-E", ("CLOTHING",), 1)
    trip(f, feed, bought=40, delivered=40)
    station = f.stations()["CLOTHING@X1-T-E"]
    assert station.fed() == {"FABRICS": 40} and station.since == T0 + timedelta(seconds=5)
    made = Decision("FABRICS", Acquisition.FABRICATE, "X1-T-B", inputs=("FERTILIZERS",))
    deeper = f.open_feed(station, made, 40, T0)
    assert deeper.kind is TaskKind.COLLECT and deeper.state is TaskState.WAITING
    assert f.stations()["FABRICS@X1-T-B"].above == ("CLOTHING",)


def test_a_lot_is_redirected_when_its_market_moves():
    f = make(units=40)
    out = f.open_output(BUY, 40, T0)
    f.redirect(out.id, MAKE, T0)
    assert (out.kind, out.source, out.state, out.inputs) == (
        TaskKind.COLLECT, "X1-T-E", TaskState.WAITING, ("FABRICS",))
    f.redirect(out.id, BUY, T0)
    assert (out.kind, out.state) == (TaskKind.SOURCE, TaskState.READY)
    f.assign(out.id, "S1", T0)
    with pytest.raises(InvalidTransition, match="RUNNING"):
        f.redirect(out.id, MAKE, T0)


def test_failures_back_off_then_fail_the_factory():
    f = make(max_attempts=2)
    out = f.open_output(BUY, 40, T0)
    f.assign(out.id, "S1", T0)
    f.fail_task(out.id, T0, "4203", backoff(1, T0))
    assert out.state is TaskState.READY and out.not_before == T0 + timedelta(seconds=5)
    assert f.ready(T0) == [] and f.ready(T0 + timedelta(seconds=5)) == [out]
    with pytest.raises(InvalidTransition, match="backing off"):
        f.assign(out.id, "S1", T0)
    f.assign(out.id, "S2", T0 + timedelta(seconds=5))
    touched = f.fail_task(out.id, T0, "4203 again", T0)
    assert f.status is FactoryStatus.FAILED and "failed 2 times: 4203 again" in f.error
    assert out in touched and out.state is TaskState.FAILED


def test_a_lost_ship_writes_off_what_it_held_and_the_task_goes_on():
    f = make(units=40, destination="sell:X1-T-M")
    out = f.open_output(BUY, 40, T0)
    f.assign(out.id, "S1", T0)
    f.record_purchase(out.id, "S1", 40, 400)
    f.lose(out.id, "S1")
    f.release(out.id)
    assert out.units_lost == 40 and out.to_buy == 40 and out.state is TaskState.READY
    assert out.held_by("S1") == 0


def test_wind_down_cancels_idle_work_and_delivers_what_is_held():
    f = make(units=40)
    out = f.open_output(MAKE, 40, T0)
    [station] = f.stations().values()
    idle = f.open_feed(station, FABRICS, 40, T0)
    carrying = f.open_feed(station, FABRICS, 40, T0)
    f.assign(carrying.id, "S2", T0)
    f.record_purchase(carrying.id, "S2", 30, 300)
    f.release(carrying.id)
    f.supply_ready(out.id)
    trip(f, out, bought=40)
    assert f.reached and not f.settled
    f.wind_down(T0)
    assert idle.state is TaskState.CANCELLED
    assert carrying.state is TaskState.READY and carrying.units_target == 30, \
        "it delivers the 30 it holds and buys no more"
    trip(f, carrying, ship="S2", delivered=30)
    assert carrying.state is TaskState.DONE and f.settled
    f.complete(T0)
    assert f.status is FactoryStatus.COMPLETED


def test_a_site_or_contract_caps_the_order():
    f = make(units=None, destination="construction:X1-T-G")
    f.cap_wanted(300)
    assert f.units_wanted == 300
    f.cap_wanted(500)
    assert f.units_wanted == 300


def test_destinations_parse_and_round_trip():
    assert Destination.parse(None).keeps
    assert Destination.parse("sell:x1-t-m") == Destination(DeliverKind.SELL, "X1-T-M")
    site = Destination.parse("construction")
    assert site.kind is DeliverKind.CONSTRUCTION and site.waypoint is None
    assert str(site.resolved("X1-T-G")) == "construction:X1-T-G"
    contract = Destination.parse("contract:abc123").resolved("X1-T-D")
    assert contract.contract == "abc123" and str(contract) == "contract:abc123 at X1-T-D"
    assert Destination.parse_stored(contract.stored()) == contract
    assert Destination.parse_stored("hold") == Destination()
    for bad in ("shelf", "sell", "contract:", "hold:X"):
        with pytest.raises(DestinationError):
            Destination.parse(bad)


def test_guards():
    f = Factory(id="f1", target="CLOTHING", system="X1-T", plan=None, lot=40)
    with pytest.raises(InvalidTransition, match="open a task"):
        f.open_output(BUY, 40, T0)
    f.start(T0)
    with pytest.raises(InvalidTransition, match="not PENDING"):
        f.start(T0)
    with pytest.raises(InvalidTransition, match="no task"):
        f.supply_ready("nope")
    out = f.open_output(BUY, 40, T0)
    with pytest.raises(InvalidTransition, match="READY, not WAITING"):
        f.supply_ready(out.id)
    f.stop(T0)
    assert out.state is TaskState.CANCELLED
    with pytest.raises(InvalidTransition, match="already STOPPED"):
        f.fail("late", T0)
    with pytest.raises(InvalidTransition, match="factory f1 is STOPPED"):
        f.assign(out.id, "S1", T0)


def test_backoff_grows_and_caps():
    assert [(backoff(n, T0) - T0).total_seconds() for n in (1, 2, 3, 10)] == [5, 10, 20, 300]


def test_more_lots_to_come_until_the_open_lots_cover_the_order():
    assert not make().more_lots_to_come(), "one load: this lot is all"
    f = make(units=100, destination="sell:X1-T-B")
    for units in f.lots_to_open(max_open=2):
        f.open_output(BUY, units, T0)
    assert f.more_lots_to_come(), "80 of 100 open"
    for units in f.lots_to_open(max_open=3):
        f.open_output(BUY, units, T0)
    assert not f.more_lots_to_come(), "the last lot is open"
