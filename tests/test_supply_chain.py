import itertools
import json

import pytest

from domain.errors import SupplyChainError
from domain.supply_chain import SupplyChain
from storage.files import default_supply_chain, known_goods, load_supply_chain
from tests.conftest import DATA


@pytest.mark.reference
def test_embedded_map_is_the_real_one():
    real = json.loads((DATA / "supply-chain.json").read_text())["data"]["exportToImportMap"]
    chain = default_supply_chain()
    assert len(chain) == 129
    for good, inputs in real.items():
        assert list(chain.inputs(good)) == list(dict.fromkeys(inputs))
    assert chain.inputs("ADVANCED_CIRCUITRY") == ("ELECTRONICS", "MICROPROCESSORS")
    assert chain.inputs("MODULE_WARP_DRIVE_III").count("MERITIUM") == 1


def test_real_map_loops_are_found_with_their_path():
    loops = default_supply_chain().cycles()
    assert loops, "the real map loops through the mining inputs"
    for loop in loops:
        assert loop[0] == loop[-1]
        for a, b in itertools.pairwise(loop):
            assert b in default_supply_chain().inputs(a)
    assert any({"IRON", "IRON_ORE", "EXPLOSIVES", "MACHINERY"} <= set(loop) for loop in loops)


def test_find_cycle_none_for_acyclic_and_path_for_loop():
    chain = SupplyChain({"A": ["B"], "B": ["C"], "C": []})
    assert chain.find_cycle("A") is None
    looped = SupplyChain({"A": ["B"], "B": ["C"], "C": ["A"]})
    assert looped.find_cycle("A") == ["A", "B", "C", "A"]


@pytest.mark.parametrize("body", [
    {"data": {"exportToImportMap": {"FOOD": ["FERTILIZERS"]}}},
    {"exportToImportMap": {"FOOD": ["FERTILIZERS"]}},
    {"FOOD": ["FERTILIZERS"]},
])
def test_accepts_api_body_data_or_bare_map(body):
    assert SupplyChain.from_json(body).inputs("FOOD") == ("FERTILIZERS",)


@pytest.mark.parametrize("body, message", [
    ({}, "non-empty"),
    ([], "non-empty"),
    ({"food": ["X"]}, "bad symbol 'food'"),
    ({"FOOD": "FERTILIZERS"}, "inputs must be a list"),
    ({"FOOD": ["bad one"]}, "bad symbol 'bad one'"),
])
def test_malformed_maps_are_rejected_in_one_line(body, message):
    with pytest.raises(SupplyChainError, match=message) as info:
        SupplyChain.from_json(body)
    assert "\n" not in str(info.value)


def test_unknown_symbols_are_listed(tmp_path):
    path = tmp_path / "chain.json"
    path.write_text(json.dumps({"FOOD": ["FERTILIZERS", "UNOBTAINIUM"], "WIDGETS": []}))
    with pytest.raises(SupplyChainError, match="unknown goods in supply chain: UNOBTAINIUM, "
                                               "WIDGETS"):
        load_supply_chain(path)


def test_user_file_and_environment_override(tmp_path, monkeypatch):
    path = tmp_path / "chain.json"
    path.write_text(json.dumps({"FOOD": ["FERTILIZERS"], "FERTILIZERS": ["LIQUID_NITROGEN"]}))
    assert len(load_supply_chain(path)) == 2
    monkeypatch.setenv("GOODS_SUPPLY_CHAIN_PATH", str(path))
    assert load_supply_chain().inputs("FERTILIZERS") == ("LIQUID_NITROGEN",)
    monkeypatch.delenv("GOODS_SUPPLY_CHAIN_PATH")
    assert len(load_supply_chain()) == 129


@pytest.mark.reference
def test_catalogue_knows_every_good_of_the_real_markets():
    markets = json.loads((DATA / "X1-AD75" / "markets.json").read_text())
    listed = {g["symbol"] for m in markets for k in ("exports", "imports", "exchange")
              for g in m[k]}
    assert listed <= known_goods()
