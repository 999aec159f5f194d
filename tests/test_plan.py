import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.enums import Acquisition, ActivityLevel, SupplyLevel
from domain.errors import (
    CycleError,
    DomainError,
    NeedsMarketData,
    UnknownGoodError,
    UnsourceableError,
)
from domain.navigation import Place
from domain.plan import Planner, PlanNode, render_tree, resolve
from domain.supply_chain import SupplyChain
from storage.files import default_supply_chain, load_markets
from tests.builders import market
from tests.conftest import DATA

AC_CHAIN = SupplyChain({
    "ADVANCED_CIRCUITRY": ["ELECTRONICS", "MICROPROCESSORS"],
    "ELECTRONICS": ["SILICON_CRYSTALS", "COPPER"],
    "MICROPROCESSORS": ["SILICON_CRYSTALS", "COPPER"],
    "COPPER": ["COPPER_ORE"],
})


def ac_markets():
    return [
        market("X1-T1-A1", exports=["ADVANCED_CIRCUITRY"],
               imports=["ELECTRONICS", "MICROPROCESSORS"],
               supply="SCARCE", ADVANCED_CIRCUITRY=("SCARCE", "STRONG")),
        market("X1-T1-A2", exports=["ELECTRONICS", "MICROPROCESSORS"],
               imports=["SILICON_CRYSTALS", "COPPER"], supply="LIMITED",
               ELECTRONICS=("LIMITED", "GROWING")),
        market("X1-T1-A3", exports=["COPPER"], imports=["COPPER_ORE"], supply="SCARCE"),
        market("X1-T1-B1", exchange=["SILICON_CRYSTALS"], supply="ABUNDANT"),
        market("X1-T1-B2", exports=["COPPER_ORE"], supply="HIGH"),
    ]


def test_multi_level_tree_like_the_seed_scenario():
    tree = resolve("ADVANCED_CIRCUITRY", AC_CHAIN, ac_markets())
    assert tree.method is Acquisition.FABRICATE and tree.waypoint == "X1-T1-A1"
    assert tree.activity is ActivityLevel.STRONG and tree.supply is SupplyLevel.SCARCE
    assert [c.good for c in tree.children] == ["ELECTRONICS", "MICROPROCESSORS"]
    assert tree.depth() == 3
    assert tree.raw_materials() == ["COPPER_ORE", "SILICON_CRYSTALS"]
    assert all(n.method is Acquisition.BUY for n in tree.flatten() if n.is_leaf)
    assert all(n.method is Acquisition.FABRICATE for n in tree.flatten() if not n.is_leaf)
    assert [n.good for n in tree.flatten()][:3] == ["ADVANCED_CIRCUITRY", "ELECTRONICS",
                                                    "MICROPROCESSORS"]
    copper = tree.find("0.0.1")
    assert copper.good == "COPPER" and copper.waypoint == "X1-T1-A3"
    assert copper.children[0].waypoint == "X1-T1-B2" and copper.children[0].path == "0.0.1.0"


def test_prefers_buying_when_supply_reaches_threshold():
    chain = SupplyChain({"MACHINERY": ["IRON"]})
    markets = [market("X1-T1-C1", exports=["MACHINERY"], imports=["IRON"], supply="MODERATE"),
               market("X1-T1-C2", exports=["IRON"], supply="HIGH")]
    tree = resolve("MACHINERY", chain, markets)
    assert tree.method is Acquisition.BUY and tree.children == []
    tree = resolve("MACHINERY", chain, markets, min_supply=SupplyLevel.HIGH)
    assert tree.method is Acquisition.FABRICATE and tree.children[0].good == "IRON"


def test_best_seller_by_supply_then_activity_then_price_then_distance():
    chain = SupplyChain({"COPPER_ORE": ["EXPLOSIVES"]})
    markets = [
        market("X1-T1-A1", exports=["COPPER_ORE"], COPPER_ORE=("SCARCE", "WEAK")),
        market("X1-T1-A2", exports=["COPPER_ORE"], COPPER_ORE=("ABUNDANT", "STRONG")),
        market("X1-T1-A3", exports=["COPPER_ORE"], COPPER_ORE=("MODERATE", "GROWING")),
    ]
    assert resolve("COPPER_ORE", chain, markets).waypoint == "X1-T1-A2"
    tie = [market("X1-T1-F", exchange=["FUEL"], FUEL=("HIGH", None, 70)),
           market("X1-T1-N", exchange=["FUEL"], FUEL=("HIGH", None, 70)),
           market("X1-T1-C", exchange=["FUEL"], FUEL=("HIGH", None, 60))]
    assert resolve("FUEL", chain, tie).waypoint == "X1-T1-C"
    places = {"X1-T1-F": Place("X1-T1-F", 500, 0), "X1-T1-N": Place("X1-T1-N", 5, 0),
              "X1-T1-C": Place("X1-T1-C", 0, 0), "HQ": Place("HQ", 0, 0)}
    tie[2] = market("X1-T1-C", exchange=["FUEL"], FUEL=("HIGH", None, 70))
    assert resolve("FUEL", chain, tie, origin=places["HQ"], places=places).waypoint == "X1-T1-C"
    places["X1-T1-C"] = Place("X1-T1-C", 900, 0)
    assert resolve("FUEL", chain, tie, origin=places["HQ"], places=places).waypoint == "X1-T1-N"


def test_children_come_from_the_exporters_own_imports():
    chain = SupplyChain({"LAB_INSTRUMENTS": ["ELECTRONICS", "EQUIPMENT"]})
    markets = [
        market("X1-T1-L", exports=["LAB_INSTRUMENTS"], imports=["ELECTRONICS", "SHIP_PARTS"],
               supply="SCARCE"),
        market("X1-T1-E", exports=["ELECTRONICS"], supply="HIGH"),
    ]
    tree = resolve("LAB_INSTRUMENTS", chain, markets)
    assert [c.good for c in tree.children] == ["ELECTRONICS"]


def test_exporter_covering_the_whole_recipe_wins():
    chain = SupplyChain({"FAB_MATS": ["IRON", "QUARTZ_SAND"]})
    markets = [
        market("X1-T1-P", exports=["FAB_MATS"], imports=["IRON"], supply="SCARCE",
               FAB_MATS=("SCARCE", "STRONG")),
        market("X1-T1-Q", exports=["FAB_MATS"], imports=["IRON", "QUARTZ_SAND"], supply="SCARCE"),
        market("X1-T1-S", exports=["IRON", "QUARTZ_SAND"], supply="HIGH"),
    ]
    tree = resolve("FAB_MATS", chain, markets)
    assert tree.waypoint == "X1-T1-Q" and len(tree.children) == 2


def test_unknown_good_is_one_clear_error():
    with pytest.raises(UnknownGoodError, match="no market in X1-T1 lists UNOBTAINIUM"):
        resolve("UNOBTAINIUM", AC_CHAIN, ac_markets())


def test_good_only_imported_cannot_be_sourced():
    markets = [market("X1-T1-A", imports=["FOOD"])]
    with pytest.raises(UnsourceableError, match=r"FOOD is neither sold nor made in X1-T1$"):
        resolve("FOOD", SupplyChain({"FOOD": ["FERTILIZERS"]}), markets)


def test_cycle_reported_with_its_path():
    chain = SupplyChain({"IRON": ["IRON_ORE"], "IRON_ORE": ["IRON"]})
    markets = [market("X1-T1-A", exports=["IRON"], imports=["IRON_ORE"], supply="SCARCE"),
               market("X1-T1-B", exports=["IRON_ORE"], imports=["IRON"], supply="SCARCE")]
    with pytest.raises(CycleError) as info:
        resolve("IRON", chain, markets)
    assert info.value.path == ["IRON", "IRON_ORE", "IRON"]
    assert str(info.value) == "cycle in the supply chain: IRON -> IRON_ORE -> IRON"


def test_a_raw_material_is_bought_below_the_threshold_and_says_so():
    chain = SupplyChain({"FUEL": ["HYDROCARBON"]})
    markets = [market("X1-T1-A", exchange=["FUEL"], supply="LIMITED")]
    tree = resolve("FUEL", chain, markets)
    assert (tree.method, tree.waypoint, tree.below_threshold) == (
        Acquisition.BUY, "X1-T1-A", True)
    assert tree.to_dict()["below_threshold"] is True
    assert PlanNode.from_dict(tree.to_dict()).below_threshold
    assert "below threshold" in render_tree(tree)
    with pytest.raises(UnsourceableError, match="FUEL is not made in X1-T1, and no seller has "
                       "MODERATE supply \\(best: LIMITED at X1-T1-A\\); lower the supply"):
        resolve("FUEL", chain, markets, strict_supply=True)
    above = resolve("FUEL", chain, markets, min_supply=SupplyLevel.LIMITED)
    assert above.method is Acquisition.BUY and not above.below_threshold
    markets.append(market("X1-T1-B", exports=["FUEL"], imports=["SHIP_PARTS"], supply="SCARCE"))
    assert resolve("FUEL", chain, markets).below_threshold, "its exporter cannot be fed"
    with pytest.raises(UnsourceableError, match="no exporter of FUEL in X1-T1 imports its"):
        resolve("FUEL", chain, markets, strict_supply=True)


def test_a_made_good_below_the_threshold_is_made_not_bought():
    chain = SupplyChain({"IRON": ["IRON_ORE"]})
    markets = [market("X1-T1-A", exports=["IRON"], imports=["IRON_ORE"], supply="LIMITED"),
               market("X1-T1-B", exports=["IRON_ORE"], supply="HIGH")]
    tree = resolve("IRON", chain, markets)
    assert tree.method is Acquisition.FABRICATE and not tree.below_threshold


def test_survey_reads_every_level_that_may_be_needed_but_not_below_what_can_be_bought():
    markets = ac_markets()
    unread = {w: market(w, exports=sorted(m.exports), imports=sorted(m.imports),
                        exchange=sorted(m.exchange), quotes=False)
              for w, m in ((m.waypoint, m) for m in markets)}
    planner = Planner(AC_CHAIN, unread.values())
    assert set(planner.survey("ADVANCED_CIRCUITRY")[0]) == {
        "X1-T1-A1", "X1-T1-A2", "X1-T1-A3", "X1-T1-B1", "X1-T1-B2"}
    # how speculative each reading is: the undecided goods above it on its path
    assert planner.survey("ADVANCED_CIRCUITRY")[0] == {
        "X1-T1-A1": 0, "X1-T1-A2": 1, "X1-T1-A3": 2, "X1-T1-B1": 2, "X1-T1-B2": 3}
    known = [*[m for m in markets if m.waypoint == "X1-T1-A1"],
             *[u for w, u in unread.items() if w != "X1-T1-A1"]]
    assert Planner(AC_CHAIN, known).survey("ADVANCED_CIRCUITRY")[0] == {
        "X1-T1-A2": 0, "X1-T1-A3": 1, "X1-T1-B1": 1, "X1-T1-B2": 2}, \
        "the target is known to be made: its inputs' sellers are needed for sure"
    deeper = [*[m for m in markets if m.waypoint in ("X1-T1-A1", "X1-T1-A2")],
              *[u for w, u in unread.items() if w not in ("X1-T1-A1", "X1-T1-A2")]]
    assert Planner(AC_CHAIN, deeper).survey("ADVANCED_CIRCUITRY")[0] == {
        "X1-T1-A3": 0, "X1-T1-B1": 0, "X1-T1-B2": 1}
    # of those needed for sure, the only places their goods can come from
    assert planner.survey("ADVANCED_CIRCUITRY")[1] == {"X1-T1-A1"}
    assert Planner(AC_CHAIN, known).survey("ADVANCED_CIRCUITRY")[1] == {"X1-T1-A2"}
    assert Planner(AC_CHAIN, deeper).survey("ADVANCED_CIRCUITRY")[1] == {
        "X1-T1-A3", "X1-T1-B1"}
    two = [*deeper, market("X1-T1-B4", exchange=["SILICON_CRYSTALS"], quotes=False)]
    assert Planner(AC_CHAIN, two).survey("ADVANCED_CIRCUITRY")[1] == {"X1-T1-A3"}, \
        "SILICON_CRYSTALS may come from either seller"
    assert Planner(AC_CHAIN, two).survey("ADVANCED_CIRCUITRY")[0] == {
        "X1-T1-A3": 0, "X1-T1-B1": 0, "X1-T1-B4": 0, "X1-T1-B2": 1}
    assert Planner(AC_CHAIN, two).survey("ADVANCED_CIRCUITRY", reading={"X1-T1-B4"})[0] == {
        "X1-T1-A3": 0, "X1-T1-B1": 1, "X1-T1-B4": 0, "X1-T1-B2": 1}, (
        "a ship is on its way to one SILICON_CRYSTALS seller: the other is needed only if "
        "that one does not hold it, and COPPER's exporter comes first")
    second = [*markets, market("X1-T1-B3", exports=["COPPER_ORE"], quotes=False)]
    assert Planner(AC_CHAIN, second).survey("ADVANCED_CIRCUITRY")[0] == {"X1-T1-B3": 1}, \
        "COPPER_ORE is for sale at B2: a second seller's quote decides nothing"
    assert Planner(AC_CHAIN, second).survey("ADVANCED_CIRCUITRY")[1] == set()
    stocked = [market("X1-T1-A1", exports=["ADVANCED_CIRCUITRY"],
                      imports=["ELECTRONICS", "MICROPROCESSORS"], supply="HIGH"),
               *[u for w, u in unread.items() if w != "X1-T1-A1"]]
    assert Planner(AC_CHAIN, stocked).survey("ADVANCED_CIRCUITRY") == ({}, set()), \
        "it can be bought: nothing below it matters"
    partial = Planner(AC_CHAIN, known).resolve("ADVANCED_CIRCUITRY", partial=True)
    assert partial.method is Acquisition.FABRICATE and partial.pending
    assert {c.method for c in partial.children} == {Acquisition.PENDING}
    assert "reading its markets" in render_tree(partial)


def test_decisions_carry_the_exporters_inputs():
    planner = Planner(AC_CHAIN, ac_markets())
    made = planner.decide("ELECTRONICS")
    assert made.made and made.inputs == ("SILICON_CRYSTALS", "COPPER")
    bought = planner.decide("COPPER_ORE")
    assert not bought.made and bought.waypoint == "X1-T1-B2" and bought.inputs == ()
    with pytest.raises(CycleError):
        planner.decide("COPPER", above=["COPPER"])


def test_unread_sellers_are_asked_for_all_at_once():
    markets = ac_markets()
    markets[1] = market("X1-T1-A2", exports=["ELECTRONICS", "MICROPROCESSORS"],
                        imports=["SILICON_CRYSTALS", "COPPER"], quotes=False)
    markets[3] = market("X1-T1-B1", exchange=["SILICON_CRYSTALS"], quotes=False)
    with pytest.raises(NeedsMarketData) as info:
        resolve("ADVANCED_CIRCUITRY", AC_CHAIN, markets)
    assert info.value.waypoints == {"X1-T1-A2"}
    markets[1] = ac_markets()[1]
    with pytest.raises(NeedsMarketData) as info:
        resolve("ADVANCED_CIRCUITRY", AC_CHAIN, markets)
    assert info.value.waypoints == {"X1-T1-B1"}


def test_json_round_trip_in_the_seed_schema():
    tree = resolve("ADVANCED_CIRCUITRY", AC_CHAIN, ac_markets())
    data = tree.to_dict()
    assert set(data) == {"good", "acquisition_method", "market_activity", "supply_level",
                         "children", "waypoint"}
    assert data["children"][0]["children"][0] == {
        "good": "SILICON_CRYSTALS", "acquisition_method": "BUY", "waypoint": "X1-T1-B1",
        "market_activity": "", "supply_level": "ABUNDANT", "children": []}
    again = PlanNode.from_dict(data)
    assert again.to_dict() == data
    assert [n.path for n in again.flatten()] == [n.path for n in tree.flatten()]


def test_render_tree_draws_branches_and_notes():
    tree = resolve("ADVANCED_CIRCUITRY", AC_CHAIN, ac_markets())
    text = render_tree(tree, note=lambda n: "(done)" if n.is_leaf else "")
    lines = text.splitlines()
    assert lines[0] == ("ADVANCED_CIRCUITRY [FABRICATE at X1-T1-A1, STRONG activity, "
                        "SCARCE supply]")
    assert lines[1].startswith("├── ELECTRONICS [FABRICATE at X1-T1-A2")
    assert lines[2] == "│   ├── SILICON_CRYSTALS [BUY at X1-T1-B1, ABUNDANT supply] (done)"
    assert lines[-2].startswith("    └── COPPER [FABRICATE at X1-T1-A3")
    assert lines[-1].startswith("        └── COPPER_ORE [BUY")


@pytest.mark.reference
def test_real_system_plans():
    markets = load_markets(DATA / "X1-AD75" / "markets.json")
    chain = default_supply_chain()
    tree = resolve("ADVANCED_CIRCUITRY", chain, markets)
    assert (tree.method, tree.waypoint) == (Acquisition.BUY, "X1-AD75-D44")
    tree = resolve("ADVANCED_CIRCUITRY", chain, markets, min_supply=SupplyLevel.ABUNDANT)
    assert tree.method is Acquisition.BUY  # D44 holds it ABUNDANT
    tree = resolve("CLOTHING", chain, markets, min_supply=SupplyLevel.ABUNDANT)
    assert [(n.good, n.method.value, n.waypoint) for n in tree.flatten()] == [
        ("CLOTHING", "FABRICATE", "X1-AD75-K81"),
        ("FABRICS", "FABRICATE", "X1-AD75-E46"),
        ("FERTILIZERS", "BUY", "X1-AD75-G50"),
    ]
    assert tree.depth() == 2
    with pytest.raises(UnsourceableError, match="SILICON_CRYSTALS is not made in X1-AD75"):
        resolve("LAB_INSTRUMENTS", chain, markets, min_supply=SupplyLevel.ABUNDANT,
                strict_supply=True)
    lab = resolve("LAB_INSTRUMENTS", chain, markets, min_supply=SupplyLevel.ABUNDANT)
    silicon = [n for n in lab.flatten() if n.good == "SILICON_CRYSTALS"]
    assert silicon and all(n.below_threshold and n.method is Acquisition.BUY for n in silicon)
    every = sorted({g for m in markets for g in m.exports | m.exchange})
    assert len(every) == 46
    for good in every:  # at reset start every good on sale can be bought
        assert resolve(good, chain, markets).method is Acquisition.BUY, good
    assert resolve("MERITIUM_ORE", chain, markets).below_threshold, "only LIMITED, not made"


# --- properties over random maps and markets ---------------------------------------------

GOODS = [f"G{i}" for i in range(8)]


@st.composite
def worlds(draw):
    recipes = {g: draw(st.lists(st.sampled_from(GOODS), max_size=3, unique=True))
               for g in draw(st.lists(st.sampled_from(GOODS), unique=True, min_size=1))}
    markets = []
    for i in range(draw(st.integers(1, 6))):
        exports = draw(st.lists(st.sampled_from(GOODS), max_size=3, unique=True))
        imports = set()
        for e in exports:
            imports |= set(draw(st.lists(st.sampled_from(recipes.get(e, []) or ["G0"]),
                                         unique=True)))
        imports -= set(exports)
        exchange = set(draw(st.lists(st.sampled_from(GOODS), max_size=2, unique=True)))
        exchange -= set(exports) | imports
        levels = {g: (draw(st.sampled_from(list(SupplyLevel))).name,
                      draw(st.sampled_from(list(ActivityLevel))).name,
                      draw(st.integers(1, 1000)))
                  for g in [*exports, *imports, *exchange]}
        markets.append(market(f"X1-T1-M{i}", exports=exports, imports=sorted(imports),
                              exchange=sorted(exchange), **levels))
    return SupplyChain(recipes), markets


@settings(max_examples=300, deadline=None)
@given(worlds(), st.sampled_from(GOODS), st.sampled_from(list(SupplyLevel)))
def test_plans_are_sound(world, target, min_supply):
    chain, markets = world
    by_symbol = {m.waypoint: m for m in markets}
    try:
        tree = resolve(target, chain, markets, min_supply=min_supply)
    except (UnknownGoodError, UnsourceableError, CycleError):
        return
    except DomainError as exc:  # pragma: no cover - would be a planner bug
        pytest.fail(f"unexpected {exc!r}")

    def check(node, above):
        assert node.good not in above, "a good may not depend on itself"
        market_ = by_symbol[node.waypoint]
        if node.method is Acquisition.BUY:
            assert node.is_leaf and market_.sells(node.good)
            best = max(m.quote(node.good).supply for m in markets if m.sells(node.good))
            assert node.supply == best or node.supply >= min_supply
            assert node.below_threshold == (node.supply < min_supply)
        else:
            assert node.children, "every FABRICATE node has inputs"
            assert node.good in market_.exports
            kids = {c.good for c in node.children}
            assert kids <= market_.imports and kids <= set(chain.inputs(node.good))
            assert all(m.quote(node.good).supply < min_supply
                       for m in markets if m.sells(node.good))
        for child in node.children:
            check(child, above | {node.good})

    check(tree, set())
