"""The command line around a run: produce, status, list, stop, resume, signals, kills."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from api.client import Client
from api.ratelimit import RateLimiter
from cli import cli
from domain.factory import FactoryStatus, TaskState
from storage.db import open_database
from storage.repositories import Storage
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


class Live:
    def __init__(self, server, token, db, record):
        self.server, self.token, self.db, self.record = server, token, db, record

    def env(self, **extra) -> dict:
        return {**os.environ, "SPACETRADERS_BASE_URL": self.server.url,
                "SPACETRADERS_TOKEN": self.token, "GOODS_FACTORY_DB": self.db,
                "GOODS_FACTORY_RATE_LIMIT": "none", "GOODS_POLL_INTERVAL_INITIAL": "0.3",
                "GOODS_POLL_INTERVAL_SETTLED": "0.6", **extra}

    def spawn(self, *args, **extra) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "cli", "--log-format", "json", *args],
                                cwd=ROOT, env=self.env(**extra), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def run(self, *args, timeout=180, **extra) -> subprocess.CompletedProcess:
        proc = self.spawn(*args, **extra)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def invoke(self, *args):
        return CliRunner().invoke(cli, ["--log-format", "console", *args], env=self.env(),
                                  catch_exceptions=False)

    def storage(self) -> Storage:
        return Storage(open_database(self.db))

    def client(self) -> Client:
        return Client(self.server.url, self.token, limiter=RateLimiter.unlimited())

    def wait_for(self, condition, timeout=120.0):
        deadline = time.monotonic() + timeout
        storage = self.storage()
        try:
            while time.monotonic() < deadline:
                if condition(storage):
                    return
                time.sleep(0.05)
        finally:
            storage.close()
        raise AssertionError("condition not reached in time")

    def server_purchases(self) -> int:
        return sum(1 for x in self.record if x.spec_path.endswith("/purchase") and x.status == 201)


def events(result) -> list[dict]:
    """Every line a JSON-logging run printed, on either stream, parsed (all must parse)."""
    lines = [line for text in (result.stdout, result.stderr) for line in text.splitlines()]
    return [json.loads(line) for line in lines if line.strip()]


def said(result, event: str) -> list[str]:
    return [e.get("message", "") for e in events(result) if e["event"] == event]


@pytest.fixture
def live(sim_factory, tmp_path):
    record = []
    server = sim_factory(seed=1, time_scale=250.0, record=record)
    anon = Client(server.url, token="", limiter=RateLimiter.unlimited())
    reg = anon.register("OPERATOR", "COSMIC", "account")
    anon.with_token(reg.token).purchase_ship("SHIP_LIGHT_SHUTTLE",
                                             server.game.universe.start_probe_at)
    return Live(server, reg.token, str(tmp_path / "gf.db"), record)


def confirmed_purchases(storage, factory=None) -> int:
    return sum(1 for e in storage.ledger.entries(factory=factory, state="CONFIRMED")
               if e.kind == "PURCHASE")


def test_produce_then_look_at_it(live):
    done = live.run("produce", "clothing")
    assert done.returncode == 0, done.stderr[-2000:]
    logged = events(done)  # `produce … 2>&1 | jq` reads every line
    assert logged and all("event" in e and "timestamp" in e for e in logged)
    [outcome] = said(done, "factory.outcome")
    assert "completed: acquired" in outcome and "CLOTHING" in outcome
    assigned = [e for e in logged if e["event"] == "task.assigned"]
    assert assigned and {"factory", "task", "ship"} <= set(assigned[0])
    trades = [e for e in logged if e["event"].startswith("trade.")]
    assert trades and all({"factory", "task", "ship"} <= set(e) for e in trades)
    flights = [e for e in logged if e["event"] == "ship.navigate"]
    assert all({"factory", "ship"} <= set(e) and "T" in e["arrival"] for e in flights)
    assert not any(live.token in line for line in done.stderr.splitlines())

    status = live.invoke("status")
    assert status.exit_code == 0 and "Status: COMPLETED" in status.output
    assert "└── FABRICS [FABRICATE at" in status.output
    data = json.loads(live.invoke("status", "--json").output)
    assert data["status"] == "COMPLETED" and data["tree"]["good"] == "CLOTHING"
    listing = live.invoke("list")
    assert data["id"] in listing.output and "COMPLETED" in listing.output
    assert json.loads(live.invoke("list", "--json").output)[0]["id"] == data["id"]
    markets = live.invoke("markets", "--good", "CLOTHING")
    assert markets.exit_code == 0 and "CLOTHING" in markets.output and "export" in markets.output
    refreshed = live.invoke("markets", "--refresh", "--good", "FUEL")
    assert refreshed.exit_code == 0
    assert refreshed.output.count("\n  FUEL ") == len(live.server.game.universe.markets)
    plan = live.invoke("plan", "CLOTHING")
    assert plan.exit_code == 0 and plan.output.startswith("CLOTHING [")
    assert live.invoke("status", "f-nope").output.strip() == "Error: no factory f-nope"
    assert "already COMPLETED" in live.invoke("stop", data["id"]).output


def test_sigkill_mid_run_then_resume_repeats_no_purchase(live):
    proc = live.spawn("produce", "CLOTHING")
    try:
        live.wait_for(lambda s: confirmed_purchases(s) >= 2)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.communicate()
    storage = live.storage()
    factory_id = storage.factories.list()[-1].id
    assert storage.factories.summary(factory_id).status is FactoryStatus.ACTIVE
    resumed = live.run("resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert said(resumed, "resume.taken") == [f"resuming {factory_id}"]
    assert "completed" in said(resumed, "factory.outcome")[0]
    factory = storage.factories.load(factory_id)
    assert factory.status is FactoryStatus.COMPLETED
    assert live.server_purchases() == confirmed_purchases(storage), "no purchase repeated"
    assert storage.ledger.pending("OPERATOR") == []
    assert storage.ledger.expected_credits("OPERATOR") == live.client().agent().credits
    assert said(live.run("resume"), "resume.nothing") == ["nothing to resume"]


def test_sigterm_stops_within_seconds_and_resume_finishes(live):
    proc = live.spawn("produce", "ADVANCED_CIRCUITRY")
    try:
        live.wait_for(lambda s: any(t.state is TaskState.RUNNING for f in s.factories.list()
                                    for t in s.factories.load(f.id).tasks.values()))
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 130
        assert time.monotonic() - start < 10
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert "shutdown.requested" in err and "runtime.actors_left_running" not in err
    storage = live.storage()
    summary = storage.factories.list()[-1]
    assert summary.status is FactoryStatus.ACTIVE and summary.owner is None
    assert storage.assignments.all() == []
    resumed = live.run("resume", timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert storage.factories.summary(summary.id).status is FactoryStatus.COMPLETED
    assert live.server_purchases() == confirmed_purchases(storage)
    assert storage.ledger.expected_credits("OPERATOR") == live.client().agent().credits


def test_stop_command_stops_a_running_factory(live):
    proc = live.spawn("produce", "ADVANCED_CIRCUITRY")
    try:
        live.wait_for(lambda s: bool(s.factories.list()) and s.factories.list()[-1].owner)
        factory_id = live.storage().factories.list()[-1].id
        asked = live.invoke("stop", factory_id)
        assert asked.exit_code == 0 and "stop requested" in asked.output
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 1
        assert f"factory {factory_id} is STOPPED" in err
    finally:
        proc.kill()
    storage = live.storage()
    assert storage.factories.summary(factory_id).status is FactoryStatus.STOPPED
    assert storage.assignments.all() == []


def test_stop_of_an_orphan_marks_it_stopped(live):
    proc = live.spawn("produce", "CLOTHING")
    try:
        live.wait_for(lambda s: confirmed_purchases(s) >= 1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
        proc.communicate()
    factory_id = live.storage().factories.list()[-1].id
    assert live.invoke("stop", factory_id).output.strip() == f"factory {factory_id} stopped"
    assert said(live.run("resume"), "resume.nothing") == ["nothing to resume"]


def test_errors_are_one_line_and_non_zero(live):
    bad = live.run("produce", "CLOTHING", SPACETRADERS_TOKEN="not-a-token")
    assert bad.returncode == 1
    assert said(bad, "error") == [
        "GET /my/agent: the token was refused (Failed to parse token. Token is invalid "
        "or expired.)"]
    unknown = live.run("produce", "UNOBTAINIUM")
    assert unknown.returncode == 1 and said(unknown, "error") == [
        "unknown good UNOBTAINIUM: it is not a trade good of the game"]
    missing = live.run("produce", "CLOTHING", "--ships", "OPERATOR-99")
    assert missing.returncode == 1 and said(missing, "error") == ["no such ship: OPERATOR-99"]
    plain = subprocess.run([sys.executable, "-m", "cli", "--log-format", "console", "produce",
                            "UNOBTAINIUM"], cwd=ROOT, env=live.env(), capture_output=True,
                           text=True, timeout=60)
    assert plain.returncode == 1 and plain.stderr.strip().splitlines()[-1] == \
        "Error: unknown good UNOBTAINIUM: it is not a trade good of the game"
    storage = live.storage()
    owner = f"{socket.gethostname()}:{os.getpid()}:test"
    for ship in ("OPERATOR-1", "OPERATOR-3"):  # at work on another process's tasks
        storage.assignments.claim(ship, owner, datetime.now(UTC), task=f"f-other/{ship}")
    busy = live.run("produce", "CLOTHING")
    assert busy.returncode == 1 and said(busy, "error")[0].startswith("no idle ships")
    no_token = live.run("produce", "CLOTHING", SPACETRADERS_TOKEN="")
    assert no_token.returncode == 1 and "no token" in said(no_token, "error")[0]
    limit = live.run("produce", "CLOTHING", GOODS_FACTORY_RATE_LIMIT="fast")
    assert limit.returncode == 1 and "(GOODS_FACTORY_RATE_LIMIT) must be" in said(limit,
                                                                                "error")[0]


def test_register_prints_only_the_token_on_stdout(live):
    result = live.invoke("register", "newbie", "--account-token", "acct")
    assert result.exit_code == 0
    token = result.stdout.strip().splitlines()[-1]
    assert Client(live.server.url, token, limiter=RateLimiter.unlimited()).agent().symbol == \
        "NEWBIE"
