"""Drills: kills aimed at the dangerous instants, faults, a hostile server, racing
processes. Each checks the outcome against the server's books, not only our ledger."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from actors.service import Order, Service
from actors.settings import Settings
from api.client import Client, RetryPolicy
from api.ratelimit import RateLimiter
from bench.drill import INSTANTS, SHIP_PURCHASE, Drill
from domain.factory import FactoryStatus
from sim.faults import FaultPlan
from storage.db import open_database
from storage.files import default_supply_chain
from storage.repositories import Storage
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
FAST = Settings(poll_initial=0.3, poll_settled=0.6, blind_check_after=0.6, answer_wait=0.8,
                tick=0.2)


def books_match(game, storage, agent, since: int = 0) -> list[str]:
    """The server's trades (from the `since`-th line of its books, when the bot started)
    against the ledger's, one for one, and the credits."""
    server = Counter((e.kind, e.good, e.units) for e in game.books[since:]
                     if e.agent == agent and e.kind != "CONTRACT")
    ours = Counter((e.kind, e.good, e.units)
                   for e in storage.ledger.entries(agent=agent, state="CONFIRMED")
                   if e.kind not in ("BALANCE", "CONTRACT"))
    problems = []
    if server != ours:
        problems.append(f"server has {dict(server - ours)}, ledger {dict(ours - server)}")
    if pending := storage.ledger.pending(agent):
        problems.append(f"open ledger entries: "
                        f"{[(e.kind, e.ship, e.good, e.units) for e in pending]}")
    if storage.ledger.expected_credits(agent) != game.agents[agent].credits:
        problems.append(f"ledger {storage.ledger.expected_credits(agent)} credits, server "
                        f"{game.agents[agent].credits}")
    return problems


@pytest.mark.timeout(600)
def test_a_kill_at_every_dangerous_instant_repeats_nothing(db_url, tmp_path):
    drill = Drill(db_url, seed=7, log_dir=tmp_path)
    try:
        report = drill.run("CLOTHING", rounds=1)
    finally:
        drill.close()
    assert report.problems == []
    assert {i: report.kills[i] for i in [SHIP_PURCHASE, *INSTANTS]} == dict.fromkeys(
        [SHIP_PURCHASE, *INSTANTS], 1), "each instant was really hit"
    assert report.factories, "and production went on to the end"


@pytest.mark.timeout(600)
def test_a_kill_at_every_instant_of_two_lots_carried_in_one_hold(db_url, tmp_path):
    """Two lots of CLOTHING need two of FERTILIZERS, bought at one seller for one
    exporter: a light hauler carries them as one task of 80 units, killed in the middle
    like any other."""
    drill = Drill(db_url, seed=3, log_dir=tmp_path)
    try:
        assert drill.spawn("buy-ship", "SHIP_LIGHT_HAULER", "--at", drill.yard) == 0
        report = drill.run("CLOTHING", rounds=1, ship_purchase=False, units=80)
        storage = Storage(open_database(db_url))
        try:
            tasks = [t for s in storage.factories.list(drill.agent)
                     for t in storage.factories.load(s.id).tasks.values()]
        finally:
            storage.close()
    finally:
        drill.close()
    assert report.problems == []
    assert {i: report.kills[i] for i in INSTANTS} == dict.fromkeys(INSTANTS, 1)
    assert any(t.good == "FERTILIZERS" and t.units_target == 80 and t.units_bought == 80
               for t in tasks), "both lots went in one hold"


@pytest.mark.timeout(300)
def test_fault_drill_depth_two_still_completes(sim_factory, tmp_path):
    """429s without headers, 500s before and after processing, slow answers, a lost ship
    and a burst of 502s waited out with the real gateway back-off (2, 4, 8 s…)."""
    record = []
    server = sim_factory(seed=1, time_scale=150.0, record=record)
    policy = RetryPolicy(max_retries=8, max_throttled=200, base=0.05, cap=0.5,
                         read_timeout=5.0)  # the 502 figures are the real ones
    anon = Client(server.url, token="", limiter=RateLimiter.unlimited(), policy=policy)
    reg = anon.register("DRILL", "COSMIC", "account")
    client = anon.with_token(reg.token)
    client.purchase_ship("SHIP_LIGHT_SHUTTLE", server.game.universe.start_probe_at)
    server.faults = FaultPlan.parse("429bare=0.10,500=0.05,500after=0.02,502burst=3:150,"
                                    "slow=0.05:0.3,lose=purchase:2,seed=7")
    since = len(server.game.books)
    storage = Storage(open_database(str(tmp_path / "drill.db")))
    service = Service(client, storage, default_supply_chain(), FAST)
    runtime = service.runtime()
    factory = service.create(runtime, Order("CLOTHING"), runtime.owner)
    assert service.run(runtime, [factory.id]).finished
    f = storage.factories.load(factory.id)
    assert f.status is FactoryStatus.COMPLETED, f.error
    lost = [s for s in ("DRILL-1", "DRILL-3") if s not in server.game.ships]
    assert len(lost) == 1, "the drill lost one ship"
    assert books_match(server.game, storage, "DRILL", since) == []
    faults = {x.status for x in record}
    assert {429, 500, 502} <= faults, "the faults did happen"
    gateway = [i for i, x in enumerate(record) if x.status == 502]
    after = next(x for x in record[gateway[-1] + 1:] if x.status < 400)
    stall = policy.gateway_worst_case(3)
    assert len(gateway) == 3 and after is not None and stall == 14
    storage.close()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", ["html", "badjson", "shape", "truncate"])
def test_a_hostile_server_gets_no_trade_repeated(sim_factory, tmp_path, fault):
    server = sim_factory(seed=1, time_scale=250.0)
    policy = RetryPolicy(max_retries=8, base=0.05, cap=0.5)
    anon = Client(server.url, token="", limiter=RateLimiter.unlimited(), policy=policy)
    reg = anon.register("HOSTILE", "COSMIC", "account")
    client = anon.with_token(reg.token)
    server.faults = FaultPlan.parse(f"{fault}=0.08,seed=3")
    storage = Storage(open_database(str(tmp_path / "h.db")))
    service = Service(client, storage, default_supply_chain(), FAST)
    runtime = service.runtime()
    factory = service.create(runtime, Order("IRON_ORE"), runtime.owner)
    assert service.run(runtime, [factory.id]).finished
    server.faults = FaultPlan()
    assert storage.factories.load(factory.id).status is FactoryStatus.COMPLETED
    assert books_match(server.game, storage, "HOSTILE") == []
    storage.close()


@pytest.mark.timeout(120)
def test_a_run_that_ends_settles_what_it_left_open(sim_factory, tmp_path):
    """A trade whose answer was lost mid-run is settled before the run returns."""
    server = sim_factory(seed=1)
    anon = Client(server.url, token="", limiter=RateLimiter.unlimited())
    client = anon.with_token(anon.register("OPEN", "COSMIC", "account").token)
    storage = Storage(open_database(str(tmp_path / "open.db")))
    service = Service(client, storage, default_supply_chain(), FAST)
    runtime = service.runtime()
    ship = client.ships()[0]
    entry = storage.ledger.intend(agent="OPEN", ship=ship.symbol, waypoint=ship.nav.waypoint,
                                  good="FUEL", kind="PURCHASE", units=7, now=runtime.clock(),
                                  held_before=ship.cargo.held("FUEL"), owner=runtime.owner)
    client.purchase(ship.symbol, "FUEL", 7)  # done on the server; its answer never came
    service.run(runtime, [])
    assert storage.ledger.get(entry).state == "CONFIRMED"
    assert books_match(server.game, storage, "OPEN") == []
    storage.close()


def run_cli(env, *args, timeout=180):
    return subprocess.run([sys.executable, "-m", "cli", "--log-format", "json", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def cli_env(server, token, db, **extra):
    return {**os.environ, "SPACETRADERS_BASE_URL": server.url, "SPACETRADERS_TOKEN": token,
            "GOODS_FACTORY_DB": db, "GOODS_FACTORY_RATE_LIMIT": "none",
            "GOODS_POLL_INTERVAL_INITIAL": "0.3", "GOODS_POLL_INTERVAL_SETTLED": "0.6", **extra}


@pytest.mark.timeout(120)
def test_a_server_that_answers_html_gets_one_line_and_exit_one(sim_factory, tmp_path):
    server = sim_factory(seed=1)
    token = Client(server.url, token="").register("HTML", "COSMIC", "a").token
    server.faults = FaultPlan.parse("html=1,on=agent")
    result = run_cli(cli_env(server, token, str(tmp_path / "x.db")), "produce", "IRON_ORE")
    assert result.returncode == 1
    [error] = [json.loads(line) for line in result.stderr.splitlines()
               if json.loads(line)["event"] == "error"]
    assert error["message"].startswith("GET /my/agent: answered 200 with a body the API does "
                                       "not promise") and "DOCTYPE" in error["message"]
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(400)
def test_two_produce_on_one_agent_and_database_both_complete(sim_factory, tmp_path):
    server = sim_factory(seed=1, time_scale=250.0)
    server.game.starting_credits = 1_000_000
    anon = Client(server.url, token="", limiter=RateLimiter.unlimited())
    reg = anon.register("TWINS", "COSMIC", "account")
    client = anon.with_token(reg.token)
    for _ in range(2):
        client.purchase_ship("SHIP_LIGHT_SHUTTLE", server.game.universe.start_probe_at)
    since = len(server.game.books)
    env = cli_env(server, reg.token, str(tmp_path / "twins.db"))
    procs = [subprocess.Popen([sys.executable, "-m", "cli", "--log-format", "json",
                               "produce", target], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for target in ("CLOTHING", "FABRICS")]
    outs = [p.communicate(timeout=360) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-1500:] for _, err in outs]
    storage = Storage(open_database(str(tmp_path / "twins.db")))
    assert {s.status for s in storage.factories.list()} == {FactoryStatus.COMPLETED}
    assert books_match(server.game, storage, "TWINS", since) == []
    storage.close()
    assert shared_ships([err for _, err in outs]) == [], "no ship worked for both at once"


def shared_ships(logs: list[str]) -> list[str]:
    """Each time a process sent a ship out while another's job on it had not ended,
    from the processes' JSON logs."""
    events = sorted((e["timestamp"], n, e["ship"], e["event"]) for n, log in enumerate(logs)
                    for e in map(json.loads, log.splitlines()) if e.get("ship"))
    busy: dict[tuple[int, str], str] = {}
    found = []
    for when, n, ship, event in events:
        if event in ("survey.visit", "task.assigned", "ship.standby", "probe.park"):
            found += [f"{ship} sent at {when} by {n}, at work for {m} since {since}"
                      for (m, other), since in busy.items() if other == ship and m != n]
            busy[(n, ship)] = when
        elif event in ("job.done", "job.not_ready", "job.failed", "job.interrupted",
                       "job.crashed", "ship.lost"):  # every way a ship's job ends
            busy.pop((n, ship), None)
    return found


@pytest.mark.timeout(400)
def test_two_resumes_at_once_exactly_one_takes_the_factory(db_url, sim_factory, tmp_path):
    server = sim_factory(seed=1, time_scale=250.0)
    anon = Client(server.url, token="", limiter=RateLimiter.unlimited())
    reg = anon.register("RACER", "COSMIC", "account")
    anon.with_token(reg.token).purchase_ship("SHIP_LIGHT_SHUTTLE",
                                             server.game.universe.start_probe_at)
    since = len(server.game.books)
    env = cli_env(server, reg.token, db_url)
    proc = subprocess.Popen([sys.executable, "-m", "cli", "--log-format", "json", "produce",
                             "CLOTHING"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    storage = Storage(open_database(db_url))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            e.kind == "PURCHASE" for e in storage.ledger.entries(state="CONFIRMED")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    racers = [subprocess.Popen([sys.executable, "-m", "cli", "--log-format", "json",
                                "resume"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [r.communicate(timeout=300) for r in racers]
    took = [any('"resume.taken"' in line for line in err.splitlines()) for _, err in outs]
    assert sorted(took) == [False, True], "exactly one took it"
    loser = outs[took.index(False)][1]
    assert '"resume.nothing"' in loser
    summary = storage.factories.list()[-1]
    assert summary.status is FactoryStatus.COMPLETED
    assert books_match(server.game, storage, "RACER", since) == []
    storage.close()
