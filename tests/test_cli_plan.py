import json

import pytest
from click.testing import CliRunner

from cli import cli
from tests.conftest import DATA

MARKETS = str(DATA / "X1-AD75" / "markets.json")
WAYPOINTS = str(DATA / "X1-AD75" / "waypoints.json")


def invoke(*args, env=None):
    return CliRunner().invoke(cli, ["--log-format", "console", *args], env=env or {},
                              catch_exceptions=False)


@pytest.mark.reference
def test_plan_prints_the_tree():
    result = invoke("plan", "clothing", "--markets", MARKETS, "--min-supply", "abundant")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "CLOTHING [FABRICATE at X1-AD75-K81, WEAK activity, HIGH supply]"
    assert lines[1].startswith("└── FABRICS [FABRICATE at X1-AD75-E46")
    assert lines[2].startswith("    └── FERTILIZERS [BUY at X1-AD75-G50")
    assert "3 nodes (2 FABRICATE), depth 2; raw materials: FERTILIZERS" in result.output


@pytest.mark.reference
def test_plan_json_with_waypoints_and_origin():
    result = invoke("plan", "FOOD", "--markets", MARKETS, "--waypoints", WAYPOINTS,
                    "--from", "X1-AD75-A1", "--json", "--min-supply", "ABUNDANT")
    assert result.exit_code == 0, result.output
    tree = json.loads(result.output)
    assert tree["acquisition_method"] == "FABRICATE" and tree["waypoint"] == "X1-AD75-K81"
    assert tree["children"][0]["good"] == "FERTILIZERS"


@pytest.mark.reference
def test_bad_input_is_one_line_and_non_zero(tmp_path):
    result = invoke("plan", "UNOBTAINIUM", "--markets", MARKETS)
    assert result.exit_code == 1
    assert result.output.strip() == "Error: no market in X1-AD75 lists UNOBTAINIUM"

    result = invoke("plan", "FOOD", "--markets", str(tmp_path / "missing.json"))
    assert result.exit_code == 1 and "file not found" in result.output

    result = invoke("plan", "FOOD", "--markets", MARKETS, "--min-supply", "LOTS")
    assert result.exit_code == 2 and "'LOTS' is not one of 'scarce', 'limited'" in result.output

    result = invoke("plan", "FOOD", "--markets", MARKETS, "--from", "X1-AD75-A1")
    assert result.exit_code == 2 and "is not a known waypoint" in result.output

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = invoke("plan", "FOOD", "--markets", str(bad))
    assert result.exit_code == 1 and "cannot read" in result.output
    for shape in ('[{"no": "symbol"}]', '["X1-AD75-A1"]', '[[1, 2]]', '{"symbol": "A"}',
                  '[{"symbol": "X1-A-1", "exports": "FOOD"}]', "42"):
        bad.write_text(shape)
        result = invoke("plan", "FOOD", "--markets", str(bad))
        assert result.exit_code == 1, shape
        assert result.output.count("\n") == 1 and "Traceback" not in result.output, shape
        assert "not a list of markets" in result.output or "expected a JSON list" in \
            result.output, shape
    bad.write_text('[{"symbol": "X1-AD75-A1", "x": "far"}]')
    result = invoke("plan", "FOOD", "--markets", MARKETS, "--waypoints", str(bad))
    assert result.exit_code == 1 and "not a list of waypoints" in result.output


def test_cycle_in_user_map_is_reported(tmp_path):
    chain = tmp_path / "chain.json"
    chain.write_text(json.dumps({"IRON": ["IRON_ORE"], "IRON_ORE": ["IRON"]}))
    markets = tmp_path / "markets.json"
    markets.write_text(json.dumps([
        {"symbol": "X1-T-A", "exports": [{"symbol": "IRON"}], "imports": [{"symbol": "IRON_ORE"}],
         "exchange": [], "tradeGoods": [
             {"symbol": "IRON", "type": "EXPORT", "supply": "SCARCE", "activity": "WEAK",
              "tradeVolume": 60, "purchasePrice": 90, "sellPrice": 40}]},
        {"symbol": "X1-T-B", "exports": [{"symbol": "IRON_ORE"}], "imports": [{"symbol": "IRON"}],
         "exchange": [], "tradeGoods": [
             {"symbol": "IRON_ORE", "type": "EXPORT", "supply": "LIMITED", "activity": "WEAK",
              "tradeVolume": 60, "purchasePrice": 40, "sellPrice": 20}]},
    ]))
    result = invoke("plan", "IRON", "--markets", str(markets),
                    env={"GOODS_SUPPLY_CHAIN_PATH": str(chain)})
    assert result.exit_code == 1
    assert result.output.strip() == "Error: cycle in the supply chain: IRON -> IRON_ORE -> IRON"
    chain.write_text(json.dumps({"IRON": ["NOT_A_GOOD"]}))
    result = invoke("--supply-chain", str(chain), "plan", "IRON", "--markets", str(markets))
    assert result.exit_code == 1 and "unknown goods in supply chain: NOT_A_GOOD" in result.output


@pytest.mark.parametrize("factor", ["nan", "inf", "-inf", "0", "-1", "lots"])
def test_price_factor_must_be_finite_and_positive(factor, tmp_path):
    result = invoke("--token", "t", "--base-url", "http://127.0.0.1:9/v2", "--db",
                    str(tmp_path / "x.db"), "produce", "FOOD", "--max-price-factor", factor)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--max-price-factor'" in result.output


@pytest.mark.reference
def test_plan_as_mermaid_and_dot_draws_every_node_and_edge():
    args = ("plan", "clothing", "--markets", MARKETS, "--min-supply", "abundant", "--format")
    chart = invoke(*args, "mermaid").output.splitlines()
    assert chart[0] == "flowchart BT"
    assert 'n0["CLOTHING<br/>FABRICATE at X1-AD75-K81<br/>HIGH supply"]' in chart[1]
    assert [line.strip() for line in chart if "-->" in line] == ["n0_0 --> n0", "n0_0_0 --> n0_0"]
    assert chart[-2].strip().startswith('n0_0_0(["FERTILIZERS<br/>BUY at X1-AD75-G50')
    graph = invoke(*args, "dot").output.splitlines()
    assert graph[0] == "digraph plan {" and graph[-1] == "}"
    assert [line.strip() for line in graph if "->" in line] == ["n0_0 -> n0;", "n0_0_0 -> n0_0;"]
    assert any(line.strip().startswith('n0_0_0 [label="FERTILIZERS\\nBUY at X1-AD75-G50')
               and line.endswith("shape=ellipse];") for line in graph)
