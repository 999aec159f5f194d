"""The scheduler's choices, on domain objects: speed, position, critical path, held goods."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.enums import Acquisition
from domain.factory import Destination, Factory, TaskPurpose
from domain.navigation import Place
from domain.plan import Decision
from domain.scheduling import (
    ShipView,
    TravelTimes,
    assign,
    finish_in,
    on_the_way,
    priority,
    remaining_paths,
    serving_lots,
    stand_by,
    visits,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PLACES = {w: Place(w, x, 0, sells_fuel=True) for w, x in (
    ("A", 0), ("B", 100), ("C", 200), ("D", 400), ("E", 600))}
TIMES = TravelTimes(PLACES)


def ship(symbol, at="A", speed=15, cargo=40, free=None, fuel=600, carrying=None, free_in=0.0):
    return ShipView(symbol, at, speed, fuel, fuel, cargo, cargo if free is None else free,
                    free_in, carrying or {})


def factory(destination="sell:E"):
    f = Factory(id="f1", target="X", system="S", plan=None, lot=40, units_wanted=400,
                destination=Destination.parse(destination))
    f.start(T0)
    return f


def lot(f, source="B", units=40):
    return f.open_output(Decision("X", Acquisition.BUY, source), units, T0)


def test_the_faster_ship_takes_the_task_even_from_further_away():
    f = factory()
    task = lot(f, source="C")
    slow = ship("HAULER", at="B", speed=15)
    fast = ship("FRIGATE", at="A", speed=36)
    assert finish_in(task, fast, TIMES, "E") < finish_in(task, slow, TIMES, "E")
    [choice] = assign([task], [slow, fast], TIMES, {task.id: "E"})
    assert choice.ship == "FRIGATE"


def test_a_ship_already_there_wins_and_one_landing_soon_counts_its_flight():
    f = factory()
    task = lot(f, source="C")
    there = ship("THERE", at="C", free_in=0)
    landing = ship("LANDING", at="C", speed=36, free_in=500)
    [choice] = assign([task], [landing, there], TIMES, {task.id: "E"})
    assert choice.ship == "THERE"


def test_deeper_inputs_go_first_and_each_ship_takes_one_task():
    f = factory()
    out = lot(f, source="B")
    station = f.stations().get("X@B")
    assert station is None
    made = f.open_output(Decision("X", Acquisition.FABRICATE, "C", inputs=("Y",)), 40, T0)
    feed = f.open_feed(f.stations()["X@C"], Decision("Y", Acquisition.BUY, "D"), 40, T0)
    plan = assign([out, feed], [ship("S1", at="B")], TIMES, {out.id: "E", feed.id: "C"})
    assert [c.task for c in plan] == [feed], "the input is on the longer path"
    assert made.state.value == "WAITING"


def test_a_first_lot_goes_before_a_deeper_lot_fed_on_speculation():
    f = factory()
    out = f.open_output(Decision("X", Acquisition.FABRICATE, "C", inputs=("Y",)), 40, T0)
    station = f.stations()["X@C"]
    first = f.open_feed(station, Decision("Y", Acquisition.FABRICATE, "D", inputs=("Z",)),
                        40, T0)
    extra = [f.open_feed(f.stations()["Y@D"], Decision("Z", Acquisition.BUY, "E"), 40, T0)
             for _ in "ab"]
    f.supply_ready(first.id)
    assert [t.lot for t in extra] == [1, 2] and extra[1].depth > first.depth
    plan = assign([extra[1], first], [ship("S1", at="D")], TIMES,
                  {first.id: "C", extra[1].id: "D"})
    assert [c.task for c in plan] == [first], "the collect on the critical path"
    assert out.state.value == "WAITING"


def test_a_lot_of_input_serves_the_lot_made_from_it_and_one_beyond_them_comes_later():
    """COPPER (Q) made at A for ELECTRONICS (Y, at B) and MICROPROCESSORS (W, at E), both
    for the target at C: the second lot of COPPER_ORE (Z) at A is for the second COPPER,
    as urgent as the first; a third is fed on speculation."""
    f = factory()
    f.open_output(Decision("X", Acquisition.FABRICATE, "C", inputs=("Y", "W")), 40, T0)
    for good, at in (("Y", "B"), ("W", "E")):
        f.open_feed(f.stations()["X@C"], Decision(good, Acquisition.FABRICATE, at,
                                                  inputs=("Q",)), 40, T0)
        f.open_feed(f.stations()[f"{good}@{at}"], Decision("Q", Acquisition.FABRICATE, "A",
                                                           inputs=("Z",)), 40, T0)
    ores = [f.open_feed(f.stations()["Q@A"], Decision("Z", Acquisition.BUY, "D"), 40, T0)
            for _ in range(3)]
    assert [t.lot for t in ores] == [1, 2, 3], "the station's own count"
    lots = serving_lots(f)
    assert [lots[t.id] for t in ores] == [1, 1, 2]
    assert lots[f.outputs()[0].id] == 1
    # one task carrying both lots in one hold: the next is beyond them
    g = factory()
    g.open_output(Decision("X", Acquisition.FABRICATE, "C", inputs=("Y",)), 40, T0)
    g.open_feed(g.stations()["X@C"], Decision("Y", Acquisition.FABRICATE, "B",
                                               inputs=("Z",)), 40, T0)
    both = g.open_feed(g.stations()["Y@B"], Decision("Z", Acquisition.BUY, "D"), 80, T0)
    more = g.open_feed(g.stations()["Y@B"], Decision("Z", Acquisition.BUY, "D"), 40, T0)
    lots = serving_lots(g)
    assert (lots[both.id], lots[more.id]) == (1, 3)


def test_of_two_equally_deep_lots_the_one_whose_product_goes_further_goes_first():
    """Z made at D feeds Y (made at B, next to the target's exporter C) and W (made at
    E, far from it): both lots of Z are as deep, and Y's was opened first, but W's is on
    the critical path."""
    f = factory()
    f.open_output(Decision("X", Acquisition.FABRICATE, "C", inputs=("Y", "W")), 40, T0)
    target = f.stations()["X@C"]
    f.open_feed(target, Decision("Y", Acquisition.FABRICATE, "B", inputs=("Z",)), 40, T0)
    f.open_feed(target, Decision("W", Acquisition.FABRICATE, "E", inputs=("Z",)), 40, T0)
    z = Decision("Z", Acquisition.FABRICATE, "D", inputs=("Q",))
    for_y = f.open_feed(f.stations()["Y@B"], z, 40, T0)
    for_w = f.open_feed(f.stations()["W@E"], z, 40, T0)
    for task in (for_y, for_w):
        f.supply_ready(task.id)
    paths = remaining_paths(f.open_tasks(), PLACES, lambda t: t.destination
                            if t.purpose is TaskPurpose.FEED else "E")
    # D→B→C→E against D→E→C→E
    assert (paths[for_y.id], paths[for_w.id]) == (300 + 100 + 400, 200 + 400 + 400)
    dests = {for_y.id: "B", for_w.id: "E"}
    frigate = [ship("S1", at="D")]
    assert [c.task for c in assign([for_y, for_w], frigate, TIMES, dests)] == [for_y], (
        "by depth alone, the older")
    ranks = {t.id: priority(t, paths[t.id]) for t in (for_y, for_w)}
    assert [c.task for c in assign([for_y, for_w], frigate, TIMES, dests, ranks=ranks)] == [
        for_w]


def test_a_task_waits_for_a_ship_landing_nearby_that_would_finish_it_sooner():
    f = factory()
    first, second = lot(f, source="D"), lot(f, source="D")
    slow = ship("SLOW", at="A", speed=5)
    landing = ship("FRIGATE", at="D", speed=36, free_in=60)
    plan = assign([first, second], [slow], TIMES, {first.id: "E", second.id: "E"},
                  arriving=[landing])
    assert [(c.task, c.ship) for c in plan] == [(second, "SLOW")], (
        "the first lot waits for the frigate; it is kept for one task only")
    assert assign([first], [slow], TIMES, {first.id: "E"}, arriving=[
        ship("FAR", at="A", speed=5, free_in=10_000)])[0].ship == "SLOW", "not worth waiting"
    # a busy ship only a little sooner is not waited for: it may be wanted elsewhere
    # when it lands, and the idle one would have been wasted meanwhile
    idle, near = ship("IDLE", at="A"), ship("NEAR", at="B", free_in=1.0)
    ratio = finish_in(first, near, TIMES, "E") / finish_in(first, idle, TIMES, "E")
    assert 0.8 < ratio < 1
    assert assign([first], [idle], TIMES, {first.id: "E"}, arriving=[near])[0].ship == "IDLE"
    # one that has landed where it will be free (selling its last lot) has no landing to
    # be late: it is weighed as if idle (seen: a light hauler took a 1,000 s trip the
    # frigate, selling at that moment, would have made in 850)
    landed = ship("LANDED", at="B", free_in=0.0)
    assert assign([first], [idle], TIMES, {first.id: "E"}, arriving=[landed]) == []
    assert [c.ship for c in assign([first], [idle, landed], TIMES, {first.id: "E"})] == [
        "LANDED"], "the same choice as once it is free"


def test_stand_by_picks_who_has_the_output_at_its_destination_first_however_far():
    near_slow = ship("SLOW", at="D", speed=5)
    far_fast = ship("FAST", at="A", speed=36)
    there = TIMES.seconds("A", "D", 36, 600, 600)
    chosen = stand_by([("D", "E")], [near_slow, far_fast], TIMES)
    assert chosen == {"FAST": ("D", there, there + TIMES.seconds("D", "E", 36, 600, 600), "E")}
    assert chosen["FAST"].seconds > 180, "further than the answer wait"
    assert stand_by([("D", None)], [near_slow, far_fast], TIMES) == {
        "SLOW": ("D", 0.0, 0.0, "D")}, "a kept lot: free where it stands"
    assert stand_by([("D", "E")], [far_fast], TIMES, within=180) == {}, "too far to wait"
    assert {s: sb[:2] for s, sb in stand_by([("D", "E"), ("D", "B")], [near_slow, far_fast],
                                             TIMES).items()} == {
        "FAST": ("D", there), "SLOW": ("D", 0.0)}, "two lots due there: one ship for each"
    assert list(stand_by([("D", "E"), ("D", "B")], [far_fast, ship("FAR", at="A")],
                         TIMES)) == ["FAST"], "one ship flies there, the next lots' stay"


def test_a_task_a_ship_standing_by_may_not_take_waits_for_it_if_it_would_finish_far_sooner():
    """Seen on another system: a light hauler was given a 1,900-s trip for an input
    while the frigate stood by for a lot due at once; after delivering it the frigate
    would have made the trip 540 s sooner."""
    f = factory()
    task = lot(f, source="E")
    slow = ship("SLOW", at="A", speed=5)
    fast = ship("FAST", at="B", speed=36)
    standby = stand_by([("B", "C")], [fast], TIMES)
    assert standby["FAST"].end == "C"
    plan = assign([task], [slow, fast], TIMES, {task.id: "A"}, standing_by=standby,
                  speculative={task.id})
    assert plan == [], "the task waits for the frigate"
    assert [c.ship for c in assign([task], [slow, fast], TIMES, {task.id: "A"},
                                   standing_by=standby)] == ["FAST"], "not held back: it goes"
    near = ship("NEAR", at="E", speed=30)
    assert [c.ship for c in assign([task], [near, fast], TIMES, {task.id: "A"},
                                   standing_by=standby, speculative={task.id})] == ["NEAR"], \
        "a ship about as quick takes it now"
    assert [c.ship for c in assign([task], [slow, fast], TIMES, {task.id: "B"},
                                   standing_by=standby, speculative={task.id})] == ["SLOW"], \
        "one more lot for the exporter it stands by at is not waited for: it may be dropped"


def test_goods_in_a_hold_stay_with_that_ship():
    f = factory()
    task = lot(f)
    f.assign(task.id, "S1", T0)
    f.record_purchase(task.id, "S1", 20, 200)
    f.release(task.id)
    fast = ship("FAST", at="B", speed=36)
    holder = ship("S1", at="A", free=20, carrying={task.id: 20})
    [choice] = assign([task], [fast, holder], TIMES, {task.id: "E"})
    assert choice.ship == "S1"
    assert assign([task], [fast], TIMES, {task.id: "E"}) == [], "it waits for its goods"


def test_full_ships_and_goods_busy_at_their_source_are_skipped():
    f = factory()
    a, b = lot(f), lot(f)
    full = ship("FULL", at="B", free=0)
    assert assign([a], [full], TIMES, {a.id: "E"}) == []
    two = [ship("S1"), ship("S2")]
    plan = assign([a, b], two, TIMES, {a.id: "E", b.id: "E"},
                  busy_sources={("B", "X"): [None]}, per_source_cap=2)
    assert [c.task for c in plan] == [a], "one more buying X at B, then the cap"
    plan = assign([a, b], two, TIMES, {a.id: "E", b.id: "E"},
                  busy_sources={("B", "Y"): [None, None]}, per_source_cap=2)
    assert len(plan) == 2, "ships buying another good there raise its price, not X's"


def test_ships_buying_far_apart_in_time_do_not_buy_at_once():
    """Seen in a hungry economy: two light haulers 650 and 920 s from FERTILIZERS'
    seller kept the idle frigate, 540 s from it, waiting for 650 s."""
    f = factory()
    a = lot(f)
    here = ship("S1", at="B")  # buys at once
    near = {("B", "X"): [5.0, 3000.0]}
    assert assign([a], [here], TIMES, {a.id: "E"}, busy_sources=near, per_source_cap=2,
                  at_once=100) != [], "only one of the two buys within 100 s of it"
    assert assign([a], [here], TIMES, {a.id: "E"}, busy_sources={("B", "X"): [5.0, 50.0]},
                  per_source_cap=2, at_once=100) == [], "both do"
    assert assign([a], [here], TIMES, {a.id: "E"}, busy_sources={("B", "X"): [None, 3000.0]},
                  per_source_cap=2, at_once=100) != []
    assert assign([a], [here], TIMES, {a.id: "E"}, busy_sources=near,
                  per_source_cap=2) == [], "without a window, every buyer on its way counts"


def test_trips_for_a_lot_bigger_than_the_hold_count():
    f = factory()
    big = lot(f, units=120)
    one = finish_in(big, ship("BIG", cargo=120), TIMES, "E")
    three = finish_in(big, ship("SMALL", cargo=40), TIMES, "E")
    assert three > 2 * one


def test_kept_goods_need_no_delivery_leg():
    f = factory(destination="hold")
    task = lot(f, source="B")
    assert finish_in(task, ship("S1"), TIMES, None) == TIMES.seconds("A", "B", 15, 600, 600)


def test_survey_sends_each_ship_to_the_market_it_reaches_first():
    probe = ShipView("PROBE", "A", 9, 0, 0, 0, 0)
    hauler = ship("HAULER", at="E", speed=15)
    plan = visits({"B", "D", "E"}, [probe, hauler], TIMES)
    assert {(s, w) for s, w, _ in plan} == {("HAULER", "E"), ("PROBE", "B")}
    assert visits(set(), [probe], TIMES) == []


def test_a_slow_probe_leaves_a_market_to_a_fast_ship_that_reads_it_sooner_after_its_own():
    probe = ShipView("PROBE", "A", 3, 0, 0, 0, 0)
    fast = ship("FAST", at="A", speed=36)
    # FAST reads B, then C (from B) long before PROBE could reach C: PROBE stays home
    plan = visits({"B", "C"}, [probe, fast], TIMES)
    assert [(s, w) for s, w, _ in plan] == [("FAST", "B")]
    # a ship already flying counts: nobody idle is sent where it will read sooner
    flying = ship("FLYER", at="C", speed=36, free_in=10.0)
    assert visits({"C", "D"}, [probe], TIMES, flying=[flying]) == []


def test_a_market_a_slow_ship_is_on_its_way_to_gets_a_fast_ship_only_if_it_halves_the_wait():
    fast = ship("FAST", at="A", speed=36)
    near = TIMES.seconds("A", "B", 36, 600, 600)
    assert visits(set(), [fast], TIMES, en_route={"B": near * 1.5}) == []
    [(who, where, eta)] = visits(set(), [fast], TIMES, en_route={"B": near * 3})
    assert (who, where, eta) == ("FAST", "B", near)


def test_the_only_source_of_a_needed_good_gets_a_faster_hauler_than_its_reader():
    """Whatever the slow reader finds there, the good is carried from there: a faster idle
    hauler goes too, before any market it would merely read sooner (seen: the frigate read
    a speculative market the fast way and was far from FERTILIZERS' one seller when its
    reading came in)."""
    fast = ship("FAST", at="A", speed=36)
    near = TIMES.seconds("A", "B", 36, 600, 600)
    en_route = {"B": near * 1.5, "C": TIMES.seconds("A", "C", 36, 600, 600) * 3}
    [(who, where, eta)] = visits(set(), [fast], TIMES, en_route=en_route,
                                 carried_from={"B": 36})
    assert (who, where, eta) == ("FAST", "B", near)
    assert visits(set(), [fast], TIMES, en_route=en_route, carried_from={"B": 37}) == [
        ("FAST", "C", TIMES.seconds("A", "C", 36, 600, 600))], "not fast enough to carry"
    probe = ShipView("PROBE", "A", 40, 0, 0, 0, 0)
    assert visits(set(), [probe], TIMES, en_route={"B": near * 1.5},
                  carried_from={"B": 0}) == [], "a probe carries nothing"


def test_the_carrier_of_a_sole_source_is_kept_from_speculative_reads_but_not_from_sure_ones():
    """Seen on another system: the frigate, idle, was sent to read a speculative market
    (E, far) while a probe flew to COPPER_ORE's one seller (B), and a light hauler carried
    the ore 800 s later. A read that decides a good needed for sure still comes first."""
    fast = ship("FAST", at="A", speed=36)
    near = TIMES.seconds("A", "B", 36, 600, 600)
    en_route, carried = {"B": near * 1.5}, {"B": 36}
    speculative = visits({"E"}, [fast], TIMES, en_route=en_route, carried_from=carried,
                         before={"B"}, carried_before={"B"})
    assert speculative == [("FAST", "B", near)], "the carrier goes; E waits for a ship"
    sure = visits({"E"}, [fast], TIMES, en_route=en_route, carried_from=carried)
    assert [(s, w) for s, w, _ in sure] == [("FAST", "E")], "no ship spare to carry"
    slow = ship("SLOW", at="A", speed=15)
    both = visits({"E"}, [fast, slow], TIMES, en_route=en_route, carried_from=carried,
                  before={"B"}, carried_before={"B"})
    assert sorted((s, w) for s, w, _ in both) == [("FAST", "B"), ("SLOW", "E")]


def test_a_market_read_for_a_good_needed_for_sure_is_sped_up_before_speculative_reads():
    """Seen on another system: the frigate read COPPER_ORE's seller (speculative: needed
    only if COPPER cannot be bought) while a light hauler took 900 s to COPPER's exporter."""
    fast = ship("FAST", at="A", speed=36)
    near = TIMES.seconds("A", "B", 36, 600, 600)
    en_route = {"B": near * 3}
    assert visits({"E"}, [fast], TIMES, en_route=en_route, before={"B"}) == [
        ("FAST", "B", near)]
    assert [(s, w) for s, w, _ in visits({"E"}, [fast], TIMES, en_route=en_route)] == [
        ("FAST", "E")], "a read that is not for sure waits its turn"
    assert [(s, w) for s, w, _ in visits({"E"}, [fast], TIMES, en_route={"B": near * 1.5},
                                         before={"B"})] == [("FAST", "E")], \
        "not worth it unless it halves the wait"


def test_a_ship_sent_to_read_a_market_reads_an_unclaimed_one_on_its_way_first():
    hauler = ship("HAULER", at="A", speed=15)
    to_d = TIMES.seconds("A", "D", 15, 600, 600)
    sent = [("HAULER", "D", to_d)]
    # B lies between A and D: reading it first makes D's reading 15 s later, not 5 %
    assert on_the_way(sent, {"B", "E"}, [hauler], TIMES) == [
        ("HAULER", "B", TIMES.seconds("A", "B", 15, 600, 600))]
    assert on_the_way(sent, {"E"}, [hauler], TIMES) == sent, "E is past D: not on the way"
    assert on_the_way(sent, {"B"}, [hauler], TIMES, slack=0.0) == sent
    # one market, two ships passing it: only one of them takes it
    other = ship("OTHER", at="A", speed=15)
    to_c = TIMES.seconds("A", "C", 15, 600, 600)
    both = on_the_way([*sent, ("OTHER", "C", to_c)], {"B"}, [hauler, other], TIMES)
    assert [w for _s, w, _t in both] == ["B", "C"]


def test_travel_times_include_fuel_stops_and_unknown_places():
    far = {**PLACES, "Z": Place("Z", 2000, 0)}
    times = TravelTimes(far)
    direct = times.seconds("A", "E", 15, 600, 600)
    stopped = times.seconds("A", "Z", 15, 600, 600)
    assert stopped > direct
    assert times.seconds("A", "NOWHERE", 15, 600, 600) >= 10**9
    assert times.seconds("A", "E", 15, 0, 0) == direct, "probes fly free"
    assert timedelta(seconds=direct) < timedelta(hours=1)


def test_a_route_is_remembered_by_tenths_of_the_tank_unless_that_strands_the_ship():
    places = {"A": Place("A", 0, 0), "B": Place("B", 50, 0, sells_fuel=True),
              "Z": Place("Z", 1500, 0, sells_fuel=True)}
    times = TravelTimes(places)
    assert times.seconds("A", "Z", 15, 310, 600) == times.seconds("A", "Z", 15, 300, 600)
    low = times.seconds("A", "Z", 15, 55, 600)  # 0 in tenths: no route; 55 reaches B
    assert times.seconds("A", "Z", 15, 300, 600) <= low < 10**9


def test_travel_times_run_at_the_observed_pace():
    times = TravelTimes(PLACES)
    direct = times.seconds("A", "E", 15, 600, 600)
    times.pace = 0.01  # a server 100 times faster than the formula
    assert times.seconds("A", "E", 15, 600, 600) == pytest.approx(direct / 100)
    assert times.seconds("A", "NOWHERE", 15, 600, 600) >= 10**9, "unreachable stays so"


@given(st.lists(st.tuples(st.integers(-600, 600), st.integers(-600, 600)), min_size=2,
                max_size=6, unique=True), st.integers(40, 400), st.data())
def test_no_route_beats_the_straight_line_bound(points, capacity, data):
    places = {f"W{i}": Place(f"W{i}", x, y, data.draw(st.booleans()))
              for i, (x, y) in enumerate(points)}
    times = TravelTimes(places, pace=data.draw(st.sampled_from([0.5, 1.0, 2.0])))
    speed = data.draw(st.sampled_from([1, 3, 10, 15, 36]))
    fuel = data.draw(st.integers(0, capacity))
    found = times.seconds("W0", f"W{len(points) - 1}", speed, fuel, capacity)
    assert times.at_least("W0", f"W{len(points) - 1}", speed) <= found
    assert times.at_least("W0", "NOWHERE", speed) == 0.0
