"""The ways to watch factories, against a database that real runs on the simulator wrote:
the dashboard's endpoints, its page in a real headless Chromium, the Prometheus metrics
(parsed with the official parser and checked against the ledger and the server), and
`status --watch` under a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from actors.service import Order
from domain.factory import FactoryStatus, TaskState
from domain.report import status_dict
from tests.conftest import ROOT
from tests.test_production import make_world
from views.metrics import ClientCollector
from views.web import create_app

pytestmark = pytest.mark.slow
ARTIFACTS = ROOT / "tests" / "artifacts"
BROWSER_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture(scope="module")
def dash(tmp_path_factory):
    """A finished CLOTHING factory, and an IRON_ORE one recorded for a runner to pick up."""
    world = make_world(tmp_path_factory.mktemp("views"), shuttles=4)
    _outcome, done = world.produce("CLOTHING")
    waiting = record(world, "IRON_ORE")
    yield world, done, waiting
    world.storage.close()
    world.server.stop()


def record(world, target: str):
    service = world.service()
    runtime = service.runtime()
    try:
        return service.create(runtime, Order(target), None)
    finally:
        runtime.shutdown()


def advance(world) -> None:
    """A runner picks the recorded factories up and produces them."""
    service = world.service()
    runtime = service.runtime(discover=False)
    taken = service.take_over(runtime)
    runtime.discover()
    service.run(runtime, taken)


def count_nodes(node: dict) -> int:
    return 1 + sum(count_nodes(c) for c in node["children"])


def metrics(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_endpoints_show_each_factory_as_status_does(dash):
    world, done, waiting = dash
    http = create_app(world.storage).test_client()
    listed = {f["id"]: f for f in http.get("/api/factories").get_json()}
    assert listed[done.id]["status"] == "COMPLETED"
    assert listed[done.id]["units_acquired"] == done.units_acquired > 0
    assert listed[waiting.id]["status"] == "PENDING"
    detail = http.get(f"/api/factories/{done.id}").get_json()
    assert "Status: COMPLETED" in detail["text"]
    assert detail["status"]["tree"]["good"] == "CLOTHING"
    assert detail["status"]["tree"]["task"]["state"] == "DONE"
    assert http.get("/api/factories/nope").status_code == 404


def test_the_map_has_the_system_the_trees_markets_and_every_ship(dash):
    world, done, _waiting = dash
    data = create_app(world.storage).test_client().get(f"/api/factories/{done.id}/map").json
    assert len(data["waypoints"]) == len(world.game.places)
    in_tree = {w["symbol"] for w in data["waypoints"] if w["in_tree"]}
    assert {n.waypoint for n in done.plan.flatten()} <= in_tree
    server = {s.symbol: s.nav.waypoint for s in world.client().ships()}
    assert {s["ship"]: s["waypoint"] for s in data["ships"]} == server


def test_the_charts_carry_the_ledgers_figures(dash):
    world, done, _waiting = dash
    data = create_app(world.storage).test_client().get(f"/api/factories/{done.id}/charts").json
    assert data["credits"][-1][1] == world.client().agent().credits
    assert data["units"][-1][1] == done.units_acquired
    watched = {(m["good"], m["waypoint"]) for m in data["markets"]}
    assert ("CLOTHING", done.plan.waypoint) in watched
    clothing = next(m for m in data["markets"] if m["good"] == "CLOTHING")
    assert all(1 <= level <= 5 and price > 0 for _t, level, price in clothing["points"])


def test_the_metrics_parse_and_match_the_ledger_and_the_server(dash):
    world, done, _waiting = dash
    text = create_app(world.storage).test_client().get("/metrics").get_data(as_text=True)
    m = metrics(text)
    labels = (("factory", done.id), ("target", "CLOTHING"))
    assert m[("goods_factory_units_acquired", labels)] == done.units_acquired
    assert m[("goods_factory_credits_spent", labels)] == \
        world.storage.ledger.factory_spend(done.id) == done.credits_spent
    assert m[("goods_factory_agent_credits", (("agent", "FACTORY"),))] == \
        world.client().agent().credits
    finished = sum(1 for t in done.tasks.values() if t.state is TaskState.DONE)
    assert m[("goods_factory_tasks", (("factory", done.id), ("state", "DONE")))] == finished


def test_a_processes_api_metrics_count_its_requests(dash):
    world, _done, _waiting = dash
    client = world.client()
    client.agent(), client.ships()
    registry = CollectorRegistry()
    registry.register(ClientCollector(client))
    m = metrics(generate_latest(registry).decode())
    assert m[("goods_factory_api_requests_total", (("endpoint", "agent"), ("status", "200")))] \
        == 1
    assert m[("goods_factory_api_throttled_total", ())] == 0
    assert m[("goods_factory_rate_limiter_wait_seconds_total", ())] >= 0


def test_status_watch_redraws_in_place_on_a_terminal_until_the_factory_ends(dash, tmp_path):
    world, _done, _waiting = dash
    factory = record(world, "IRON_ORE")
    main, child = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "LINES": "60", "TERM": "xterm-256color"}
    db = world.storage.db.database
    proc = subprocess.Popen([sys.executable, "-m", "cli", "--db", db, "status", factory.id,
                             "--watch", "--every", "0.2"], cwd=ROOT, stdin=child,
                            stdout=child, stderr=child, env=env, close_fds=True)
    os.close(child)
    seen = read_until(main, b"Status: PENDING", 30)
    runner = threading.Thread(target=advance, args=(world,))
    runner.start()
    seen += read_until(main, b"Status: COMPLETED", 60)
    runner.join(60)
    assert proc.wait(30) == 0
    os.close(main)
    assert b"\x1b[" in seen, "a terminal gets a live display (cursor moves), not a log"
    assert world.storage.factories.load(factory.id).status is FactoryStatus.COMPLETED


def test_status_watch_prints_plain_text_off_a_terminal(dash):
    world, done, _waiting = dash
    result = subprocess.run([sys.executable, "-m", "cli", "--db", world.storage.db.database,
                             "status", done.id, "--watch"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Status: COMPLETED" in result.stdout and "\x1b[" not in result.stdout


def read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    out, deadline = b"", time.monotonic() + timeout
    while needle not in out:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} not seen; got {out[-2000:]!r}")
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
    return out


def chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("GOODS_FACTORY_REQUIRE_BROWSER") == "1":
        pytest.fail("Chromium is required (GOODS_FACTORY_REQUIRE_BROWSER=1): apt-get install "
                    "chromium")
    return found


@pytest.mark.timeout(300)
def test_the_dashboard_in_a_real_browser(dash):
    browser_path = chromium()
    if browser_path is None:
        pytest.skip("no Chromium on this machine: `apt-get install chromium` to run it")
    from playwright.sync_api import sync_playwright
    from waitress.server import create_server

    world, done, _waiting = dash
    factory = record(world, "IRON_ORE")
    server = create_server(create_app(world.storage), host="127.0.0.1", port=0)
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{server.effective_port}/"
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=browser_path, args=BROWSER_FLAGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1900})
            page.goto(f"{url}?factory={done.id}")
            page.wait_for_selector("#tree li.node")
            top = page.inner_text("#tree > li")
            assert top.startswith("DONE") and "CLOTHING — FABRICATE at" in top
            shown = status_dict(done, datetime.now(UTC))["tree"]
            assert page.locator("#tree li.node").count() == count_nodes(shown)
            assert page.locator("svg#map circle").count() == len(world.game.places)
            assert page.locator("svg#map polygon.ship").count() == len(world.client().ships())
            page.wait_for_function("document.getElementById('units').dataset.points > 0")
            assert page.get_attribute("#units", "data-last") == str(done.units_acquired)
            assert page.locator("canvas.market-chart").count() >= 2
            page.screenshot(path=str(ARTIFACTS / "dashboard-finished.png"), full_page=True)

            page.goto(f"{url}?factory={factory.id}")
            page.wait_for_function(
                "document.getElementById('title').textContent.includes('PENDING')")
            advance(world)  # the page is not reloaded: its polling must show the change
            page.wait_for_function(
                "document.getElementById('title').textContent.includes('COMPLETED')",
                timeout=30_000)
            assert "DONE" in page.inner_text("#tree")
            page.screenshot(path=str(ARTIFACTS / "dashboard-advanced.png"), full_page=True)
            browser.close()
    finally:
        server.close()
    assert Path(ARTIFACTS / "dashboard-finished.png").stat().st_size > 10_000
