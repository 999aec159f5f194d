"""Feeding an exporter until it answers: balance, saturation, and adapting to the market."""

from datetime import UTC, datetime, timedelta

from domain.enums import Acquisition
from domain.factory import Destination, Factory
from domain.feeding import (
    FeedOrder,
    answer_rounds,
    answer_wait,
    plan_feeds,
    round_landed,
    rounds_needed,
    unanswered_rounds,
)
from domain.plan import Decision
from tests.builders import market

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MAKE = Decision("FAB_MATS", Acquisition.FABRICATE, "X1-T-E", inputs=("IRON", "QUARTZ_SAND"))


def factory(lots=1):
    f = Factory(id="f1", target="FAB_MATS", system="X1-T", plan=None, lot=40, units_wanted=400,
                destination=Destination.parse("hold"))
    f.start(T0)
    for _ in range(lots):
        f.open_output(MAKE, 40, T0)
    return f


def exporter(fab="SCARCE", iron="SCARCE", sand="SCARCE"):
    return market("X1-T-E", exports=["FAB_MATS"], imports=["IRON", "QUARTZ_SAND"],
                  FAB_MATS=(fab, "WEAK"), IRON=(iron, "WEAK"), QUARTZ_SAND=(sand, "WEAK"))


def feeds(f, snapshot, **kw):
    return plan_feeds(f, lambda w: snapshot if w == "X1-T-E" else None, **kw)


def land(f, order: FeedOrder, when: datetime, ship="S1"):
    """Open the feed and carry it to the exporter."""
    task = f.open_feed(order.station, Decision(order.good, Acquisition.BUY, "X1-T-S"), 40, when)
    f.assign(task.id, ship, when)
    f.record_purchase(task.id, ship, 40, 400)
    f.record_delivery(task.id, ship, 40, 800)
    f.trip_done(task.id, when, delivered=40)
    return task


def test_each_input_gets_a_lot_and_none_runs_ahead():
    f = factory()
    orders, [view] = feeds(f, exporter())
    assert [o.good for o in orders] == ["IRON", "QUARTZ_SAND"]
    assert not view.answered and view.in_flight == 1
    iron = f.open_feed(orders[0].station, Decision("IRON", Acquisition.BUY, "X1-T-S"), 40, T0)
    f.assign(iron.id, "S1", T0)
    f.record_purchase(iron.id, "S1", 40, 400)
    f.record_delivery(iron.id, "S1", 40, 800)
    f.trip_done(iron.id, T0)
    orders, _ = feeds(f, exporter())
    assert [o.good for o in orders] == ["QUARTZ_SAND"], "iron waits for sand to catch up"


def test_each_lot_waiting_at_a_station_is_fed_for_at_once():
    f = factory(lots=2)  # e.g. COPPER made at one exporter for two consumers
    orders, [view] = feeds(f, exporter())
    assert view.in_flight == 2
    for order in orders:  # on their way
        f.open_feed(order.station, Decision(order.good, Acquisition.BUY, "X1-T-S"), 40, T0)
    orders, [view] = feeds(f, exporter(), most=4)
    assert [o.good for o in orders] == ["IRON", "QUARTZ_SAND"], "a second lot of each"
    for order in orders:
        f.open_feed(order.station, Decision(order.good, Acquisition.BUY, "X1-T-S"), 40, T0)
    assert feeds(f, exporter(), most=4)[0] == [], "two lots of each on the way: enough"


def test_an_input_that_landed_waits_for_the_others_before_its_next_lot():
    f = factory()
    orders, _ = feeds(f, exporter())
    land(f, orders[0], T0)  # the iron is there
    f.open_feed(orders[1].station, Decision("QUARTZ_SAND", Acquisition.BUY, "X1-T-S"), 40, T0)
    assert feeds(f, exporter())[0] == [], "no second lot of iron while the sand is on its way"


def test_no_feeding_once_the_export_answers_or_while_nothing_waits():
    f = factory()
    orders, [view] = feeds(f, exporter(fab="MODERATE"))
    assert orders == [] and view.answered
    assert feeds(factory(lots=0), exporter()) == ([], [])


def test_a_saturated_input_is_not_fed():
    f = factory()
    orders, [view] = feeds(f, exporter(iron="HIGH"))
    assert [o.good for o in orders] == ["QUARTZ_SAND"] and view.saturated == ("IRON",)


def test_rounds_without_an_answer_put_more_lots_on_the_way_up_to_the_fleet():
    f = factory()
    station = f.stations()["FAB_MATS@X1-T-E"]
    for n in range(3):
        when = T0 + timedelta(minutes=n)
        for good in ("IRON", "QUARTZ_SAND"):
            land(f, FeedOrder(f.stations()[station.key], good), when)
    assert unanswered_rounds(f.stations()[station.key]) == 3
    orders, [view] = feeds(f, exporter(), most=2)
    assert view.in_flight == 2, "capped by the fleet"
    assert [o.good for o in orders] == ["IRON", "QUARTZ_SAND"]
    orders, [view] = feeds(f, exporter(), most=8)
    assert view.in_flight == 4 and view.unanswered == 3


def test_only_whole_rounds_count_as_unanswered():
    f = factory()
    key = "FAB_MATS@X1-T-E"
    land(f, FeedOrder(f.stations()[key], "IRON"), T0)
    land(f, FeedOrder(f.stations()[key], "IRON"), T0)
    assert unanswered_rounds(f.stations()[key]) == 0, "the sand has not come yet"
    _, [view] = feeds(f, exporter(sand="HIGH"), most=8)
    assert view.unanswered == 2, "saturated sand is not awaited"
    land(f, FeedOrder(f.stations()[key], "QUARTZ_SAND"), T0)
    assert unanswered_rounds(f.stations()[key]) == 1


def test_a_round_just_landed_holds_nothing_back_while_another_lot_waits_for_its_own():
    f = factory(lots=2)
    key = "FAB_MATS@X1-T-E"
    for good in ("IRON", "QUARTZ_SAND"):
        land(f, FeedOrder(f.stations()[key], good), T0)
    orders, _ = feeds(f, exporter(), landed_by=T0 - timedelta(seconds=1))
    assert [o.good for o in orders] == ["IRON", "QUARTZ_SAND"], "the second lot's round"


def test_a_feed_delivered_but_not_yet_reported_done_has_just_landed():
    f = factory()
    key = "FAB_MATS@X1-T-E"
    land(f, FeedOrder(f.stations()[key], "QUARTZ_SAND"), T0)
    iron = f.open_feed(f.stations()[key], Decision("IRON", Acquisition.BUY, "X1-T-S"), 40, T0)
    f.assign(iron.id, "S1", T0)
    f.record_purchase(iron.id, "S1", 40, 400)
    f.record_delivery(iron.id, "S1", 40, 800)  # the trip's end is still on its way to us
    later = T0 + timedelta(minutes=10)
    assert unanswered_rounds(f.stations()[key], landed_by=later) == 0
    assert feeds(f, exporter(), landed_by=later)[0] == [], "give the exporter its time"


def test_a_collect_that_bought_answered_when_it_set_off():
    f = factory()
    [out] = f.outputs()
    key = "FAB_MATS@X1-T-E"
    for good in ("IRON", "QUARTZ_SAND"):
        land(f, FeedOrder(f.stations()[key], good), T0)
    f.supply_ready(out.id)
    f.assign(out.id, "S9", T0 + timedelta(minutes=1))
    f.record_purchase(out.id, "S9", 40, 4000)  # still flying to its destination
    assert unanswered_rounds(f.stations()[key], landed_by=T0 + timedelta(minutes=10)) == 0


def test_an_answer_resets_the_pace():
    f = factory(lots=2)
    first, _ = f.outputs()
    key = "FAB_MATS@X1-T-E"
    for good in ("IRON", "QUARTZ_SAND"):
        land(f, FeedOrder(f.stations()[key], good), T0)
    f.supply_ready(first.id)
    f.assign(first.id, "S9", T0 + timedelta(minutes=1))
    f.record_purchase(first.id, "S9", 40, 4000)
    f.trip_done(first.id, T0 + timedelta(minutes=1))
    assert unanswered_rounds(f.stations()[key]) == 0
    _, [view] = feeds(f, exporter(), most=8)
    assert view.in_flight == 1


def test_feeds_not_started_are_dropped_once_no_lot_waits():
    f = factory()
    [out] = f.outputs()
    orders, _ = feeds(f, exporter())
    started = land(f, orders[0], T0)
    idle = f.open_feed(orders[1].station, Decision("QUARTZ_SAND", Acquisition.BUY, "X1-T-S"),
                       40, T0)
    assert f.drop_idle_feeds(T0, set()) == []
    f.supply_ready(out.id)  # a ship goes to look: that is no answer
    assert f.drop_idle_feeds(T0, set()) == []
    assert f.drop_idle_feeds(T0, {"FAB_MATS@X1-T-E"}) == [idle], "the export answered"
    assert idle.state.value == "CANCELLED"
    assert started.state.value == "DONE"


def test_a_round_counts_as_unanswered_only_once_the_exporter_had_time_to_answer():
    f = factory()
    key = "FAB_MATS@X1-T-E"
    for good in ("IRON", "QUARTZ_SAND"):
        land(f, FeedOrder(f.stations()[key], good), T0)
    just_landed = T0 - timedelta(seconds=1)
    assert unanswered_rounds(f.stations()[key], landed_by=just_landed) == 0
    orders, [view] = feeds(f, exporter(), most=8, landed_by=just_landed)
    assert orders == [] and view.in_flight == 0, "nothing more while production may answer"
    orders, [view] = feeds(f, exporter(), most=8, landed_by=T0 + timedelta(minutes=3))
    assert view.in_flight == 2 and [o.good for o in orders] == ["IRON", "QUARTZ_SAND"]


def test_a_round_has_landed_once_every_input_the_exporter_lacks_has():
    f = factory()
    orders, _ = feeds(f, exporter())
    key = orders[0].station.key

    def landed(snapshot):
        return round_landed(f.stations()[key], snapshot)

    assert not landed(exporter()), "nothing landed yet"
    land(f, next(o for o in orders if o.good == "IRON"), T0)
    assert not landed(exporter()), "sand is still missing: no output is due"
    assert landed(exporter(sand="HIGH")), "full of sand, iron was all it lacked"
    land(f, next(o for o in orders if o.good == "QUARTZ_SAND"), T0, ship="S2")
    assert landed(exporter())
    assert round_landed(factory().stations()[key], exporter(iron="ABUNDANT", sand="HIGH")), (
        "it lacks nothing")


def test_the_lots_each_waiting_lot_needs_go_in_one_hold_and_speculation_lot_by_lot():
    f = factory(lots=2)  # COPPER made at one exporter for two consumers
    orders, [view] = feeds(f, exporter(), hold=2)
    assert [(o.good, o.lots) for o in orders] == [("IRON", 2), ("QUARTZ_SAND", 2)], \
        "the same good from the same seller to the same exporter: one trip, not two"
    assert [o.lots for o in feeds(f, exporter(), hold=1)[0]] == [1, 1], "no hold takes two"
    for order in orders:
        f.open_feed(order.station, Decision(order.good, Acquisition.BUY, "X1-T-S"),
                    40 * order.lots, T0)
    assert feeds(f, exporter(), hold=2)[0] == [], "two lots of each on the way, as before"
    one = factory()
    key = "FAB_MATS@X1-T-E"
    for n in range(2):  # two rounds landed without an answer: more go on speculation
        for good in ("IRON", "QUARTZ_SAND"):
            land(one, FeedOrder(one.stations()[key], good), T0 + timedelta(minutes=n))
    orders, [view] = feeds(one, exporter(), most=4, hold=2)
    assert view.in_flight == 3 and {o.lots for o in orders} == {1}, \
        "lots sent on speculation go one by one, so that ships carry them side by side"


def test_a_feed_of_two_lots_landed_before_an_answer_still_counts_for_the_next_lot():
    f = factory(lots=2)
    key = "FAB_MATS@X1-T-E"
    for good in ("IRON", "QUARTZ_SAND"):
        task = f.open_feed(f.stations()[key], Decision(good, Acquisition.BUY, "X1-T-S"), 80, T0)
        f.assign(task.id, "S1", T0)
        f.record_purchase(task.id, "S1", 80, 800)
        f.record_delivery(task.id, "S1", 80, 1600)
        f.trip_done(task.id, T0)
    station = f.stations()[key]
    assert [station.lots(t) for t in station.feeds] == [2, 2]
    assert unanswered_rounds(station) == 2
    first = station.waiting[0]  # the export answers: one lot is collected
    f.supply_ready(first.id)
    f.assign(first.id, "S2", T0 + timedelta(minutes=5))
    f.record_purchase(first.id, "S2", 40, 4000)
    assert unanswered_rounds(f.stations()[key]) == 1, \
        "one answer uses one lot's worth: the other lot's inputs are still there"
    assert feeds(f, exporter(), hold=2, landed_by=T0 - timedelta(seconds=1))[0] == [], \
        "its round has landed: the exporter is given its time before more go"


def test_the_first_trip_of_a_feed_of_two_lots_starts_the_exporter_off():
    """COPPER_ORE for two lots of COPPER, carried by a ship whose hold takes one: the
    exporter may answer the first trip's lot while the second is on its way, so the
    station's round landed with it (the time to look there) and its clock starts then;
    the feed itself is not done (its ship carries on)."""
    f = factory(lots=2)
    key = "FAB_MATS@X1-T-E"
    first = T0 + timedelta(minutes=5)
    for good in ("IRON", "QUARTZ_SAND"):
        task = f.open_feed(f.stations()[key], Decision(good, Acquisition.BUY, "X1-T-S"), 80, T0)
        f.assign(task.id, "S1", T0)
        f.record_purchase(task.id, "S1", 40, 400)
        f.record_delivery(task.id, "S1", 40, 800)
        f.trip_done(task.id, first, delivered=40)
        f.assign(task.id, "S1", first)  # the second trip
    station = f.stations()[key]
    assert (station.last_landed, station.last_finished, station.feeding) == (first, None, True)
    assert round_landed(station, exporter())
    assert unanswered_rounds(station, landed_by=first - timedelta(seconds=1)) == 0
    assert unanswered_rounds(station, landed_by=first + timedelta(minutes=3)) == 1


def test_an_export_at_the_threshold_but_dearer_than_the_ceiling_is_fed():
    f = factory()
    dear = market("X1-T-E", exports=["FAB_MATS"], imports=["IRON", "QUARTZ_SAND"],
                  FAB_MATS=("MODERATE", "WEAK", 200), IRON=("SCARCE", "WEAK"),
                  QUARTZ_SAND=("SCARCE", "WEAK"))
    orders, [view] = feeds(f, dear, ceiling={"FAB_MATS": 150}.get)
    assert not view.answered and [o.good for o in orders] == ["IRON", "QUARTZ_SAND"]
    orders, [view] = feeds(f, dear, ceiling={"FAB_MATS": 200}.get)
    assert view.answered and orders == []


def test_an_exporter_is_given_longer_to_answer_where_answers_were_seen_to_take_longer():
    assert answer_wait(180, []) == 180, "nothing seen yet: the setting"
    assert answer_wait(180, [60, 90]) == 180, "quick answers never shorten it"
    assert answer_wait(180, [60, 200, 150]) == 300, "the longest seen, with a margin"
    assert answer_wait(180, [200, 400]) == 600
    assert answer_wait(180, [200, 700]) == 720, "at most four times the setting"
    assert answer_wait(180, [200, 5000]) == 300, "an answer hours later was no answer"
    assert answer_wait(180, [-5, 0]) == 180, "a reading from before the landing"


def rounds_at(f, minutes):
    """Land a round (a lot of each input) at each of `minutes` after T0."""
    key = "FAB_MATS@X1-T-E"
    for n in minutes:
        for good in ("IRON", "QUARTZ_SAND"):
            land(f, FeedOrder(f.stations()[key], good), T0 + timedelta(minutes=n))
    return f.stations()[key]


def test_an_answer_says_how_many_rounds_its_exporter_needs():
    ramp = rounds_at(factory(), [0, 10, 20])  # one by one, each given its time
    assert answer_rounds(ramp, T0 + timedelta(minutes=21), wait=180) == (3, 3)
    together = rounds_at(factory(), [0, 0, 0])  # sent in one go
    assert answer_rounds(together, T0 + timedelta(minutes=2), wait=180) == (1, 3), \
        "any of the three may have been enough"
    assert answer_rounds(rounds_at(factory(), []), T0, wait=180) is None, \
        "it recovered on its own: nothing to learn"
    f = factory()
    land(f, FeedOrder(f.stations()["FAB_MATS@X1-T-E"], "IRON"), T0)
    assert answer_rounds(f.stations()["FAB_MATS@X1-T-E"], T0 + timedelta(minutes=5),
                         wait=180) == (1, 1), "full of sand, it lacked only iron"


def test_the_rounds_needed_follow_the_answers_without_a_ratchet():
    assert rounds_needed([]) == 1, "nothing seen: one round, then the ramp"
    assert rounds_needed([(4, 4)]) == 4
    assert rounds_needed([(4, 4), (1, 4)]) == 4, \
        "four sent together and answered: no fewer were shown to be enough"
    assert rounds_needed([(4, 4), (1, 2)]) == 2, "answered before the other two landed"
    assert rounds_needed([(4, 4), (5, 6)]) == 5, "a ramp past what was sent raises it"
    assert rounds_needed([(1, 3)]) == 1, "lots landed together never raise it"


def test_a_station_starts_with_the_rounds_its_exporter_was_seen_to_need():
    f = factory()
    orders, [view] = feeds(f, exporter(), most=8, hold=4, needs=lambda st: 3)
    assert [(o.good, o.lots) for o in orders] == [("IRON", 3), ("QUARTZ_SAND", 3)]
    assert view.in_flight == 3
    _, [view] = feeds(f, exporter(), most=2, hold=4, needs=lambda st: 3)
    assert view.in_flight == 2, "as far as the fleet carries them"
    _, [view] = feeds(factory(lots=2), exporter(), most=8, needs=lambda st: 3)
    assert view.in_flight == 6, "that many for each lot waiting"
    two = factory()
    rounds_at(two, [0, 0])
    just = T0 - timedelta(seconds=1)
    more, _ = feeds(two, exporter(), most=8, landed_by=just, needs=lambda st: 3)
    assert [o.good for o in more] == ["IRON", "QUARTZ_SAND"], "the third is still to go"
    rounds_at(two, [0])
    assert feeds(two, exporter(), most=8, landed_by=just, needs=lambda st: 3)[0] == [], \
        "all three landed: the exporter is given its time to answer"
