"""Unattended operation: the standing mode under a supervisor, systemd's protocol, the
unit file, leftover cargo, failing fast, and a database that goes away mid-run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from actors.notify import notify, watchdog
from api.client import Client
from api.ratelimit import RateLimiter
from domain.factory import FactoryStatus, TaskState
from storage.db import open_database
from storage.repositories import Storage
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


class Agent:
    """A registered agent on a simulator, and the bot run as a child process."""

    def __init__(self, server, db, symbol="STANDER"):
        self.server, self.db = server, db
        server.game.starting_credits = 1_000_000
        anon = Client(server.url, token="", limiter=RateLimiter.unlimited())
        reg = anon.register(symbol, "COSMIC", "account")
        self.token, self.symbol = reg.token, symbol
        anon.with_token(reg.token).purchase_ship("SHIP_LIGHT_SHUTTLE",
                                                 server.game.universe.start_probe_at)
        self.since = len(server.game.books)

    def env(self, **extra):
        return {**os.environ, "SPACETRADERS_BASE_URL": self.server.url,
                "SPACETRADERS_TOKEN": self.token, "GOODS_FACTORY_DB": self.db,
                "GOODS_FACTORY_RATE_LIMIT": "none", "GOODS_POLL_INTERVAL_INITIAL": "0.3",
                "GOODS_POLL_INTERVAL_SETTLED": "0.6", **extra}

    def spawn(self, *args, **extra):
        return subprocess.Popen([sys.executable, "-m", "cli", "--log-format", "json", *args],
                                cwd=ROOT, env=self.env(**extra), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def run(self, *args, timeout=240, **extra):
        proc = self.spawn(*args, **extra)
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err

    def storage(self):
        return Storage(open_database(self.db))

    def wait_for(self, condition, timeout=120.0):
        storage = self.storage()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if condition(storage):
                    return
                time.sleep(0.1)
        finally:
            storage.close()
        raise AssertionError("not reached in time")

    def books_match(self) -> bool:
        storage = self.storage()
        try:
            server = Counter((e.kind, e.good, e.units) for e in self.server.game.books[
                self.since:] if e.agent == self.symbol and e.kind != "CONTRACT")
            ours = Counter((e.kind, e.good, e.units) for e in storage.ledger.entries(
                agent=self.symbol, state="CONFIRMED") if e.kind not in ("BALANCE", "CONTRACT"))
            return server == ours and not storage.ledger.pending(self.symbol) and \
                storage.ledger.expected_credits(self.symbol) == \
                self.server.game.agents[self.symbol].credits
        finally:
            storage.close()


def statuses(storage):
    return {s.id: s.status for s in storage.factories.list()}


def events(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def agent(sim_factory, tmp_path):
    return Agent(sim_factory(seed=1, time_scale=250.0), str(tmp_path / "stand.db"))


def test_the_standing_mode_picks_up_work_and_a_sigterm_is_a_clean_exit(agent, tmp_path):
    code, _, err = agent.run("produce", "IRON_ORE", "--detach")
    assert code == 0 and any(e["event"] == "factory.submitted" for e in events(err))
    sock_path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(sock_path)
    listener.settimeout(0.5)
    got: list[bytes] = []
    done = threading.Event()

    def systemd():
        while not done.is_set():
            try:
                got.append(listener.recv(64))
            except TimeoutError:
                pass

    reader = threading.Thread(target=systemd)
    reader.start()
    proc = agent.spawn("run", "--every", "1", NOTIFY_SOCKET=sock_path,
                       WATCHDOG_USEC="1000000")
    try:
        agent.wait_for(lambda s: set(statuses(s).values()) == {FactoryStatus.COMPLETED})
        code, _, _ = agent.run("produce", "CLOTHING", "--detach")  # work that comes later
        agent.wait_for(lambda s: list(statuses(s).values()).count(FactoryStatus.COMPLETED) == 2,
                       timeout=180)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, "the unit treats a clean stop as success"
    finally:
        proc.kill()
        time.sleep(0.6)
        done.set()
        reader.join()
        listener.close()
    assert got[0] == b"READY=1" and got[-1] == b"STOPPING=1"
    assert got.count(b"WATCHDOG=1") >= 5, "fed while all was well"
    _, err = proc.communicate()
    lines = events(err)
    assert [e["event"] for e in lines if e["event"].startswith("run.")][-1] == "run.stopped"
    assert agent.books_match()


def test_the_standing_mode_resumes_after_a_restart(agent):
    agent.run("produce", "CLOTHING", "--detach")
    first = agent.spawn("run", "--every", "1")
    agent.wait_for(lambda s: any(t.state is TaskState.RUNNING for f in s.factories.list()
                                 for t in s.factories.load(f.id).tasks.values()))
    first.send_signal(signal.SIGTERM)
    assert first.wait(20) == 0
    first.communicate()
    storage = agent.storage()
    [summary] = storage.factories.list()
    assert summary.status is FactoryStatus.ACTIVE and summary.owner is None
    storage.close()
    second = agent.spawn("run", "--every", "1")
    try:
        agent.wait_for(lambda s: set(statuses(s).values()) == {FactoryStatus.COMPLETED},
                       timeout=180)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
        second.communicate()
    assert agent.books_match()


def test_an_unknown_system_ends_at_once_with_one_line(agent):
    started = time.monotonic()
    code, _out, err = agent.run("produce", "IRON_ORE", "--system", "X1-ZZ99", timeout=60)
    assert code == 1 and time.monotonic() - started < 20
    [error] = [e for e in events(err) if e["event"] == "error"]
    assert "X1-ZZ99" in error["message"] and "not found" in error["message"]
    assert "Traceback" not in err


def test_leftover_cargo_is_shown_sold_and_counted(agent):
    game = agent.server.game
    frigate = f"{agent.symbol}-1"
    game.ships[frigate].cargo["IRON_ORE"] = 25  # left by an earlier run
    code, _out, err = agent.run("unload")
    [plan] = [e for e in events(err) if e["event"] == "unload.plan"]
    assert code == 0 and (plan["ship"], plan["good"], plan["units"]) == (frigate, "IRON_ORE", 25)
    assert plan["waypoint"]
    code, _, _ = agent.run("produce", "IRON_ORE", "--units", "40")
    assert code == 0
    storage = agent.storage()
    [factory] = [storage.factories.load(s.id) for s in storage.factories.list()]
    assert factory.held_at_start == 25 and factory.units_acquired == 40
    bought = sum(e.units for e in storage.ledger.entries(factory=factory.id)
                 if e.kind == "PURCHASE" and e.state == "CONFIRMED")
    assert bought == 15, "only what was missing"
    storage.close()
    code, _, err = agent.run("unload", "--sell")
    sold = [e for e in events(err) if e["event"] == "unload.sold"]
    assert code == 0 and sum(e["units"] for e in sold) == 40
    assert all(s.cargo.held("IRON_ORE") == 0 for s in Client(
        agent.server.url, agent.token, limiter=RateLimiter.unlimited()).ships())
    assert agent.books_match()


@pytest.mark.timeout(400)
def test_postgres_backends_killed_mid_run(sim_factory, pg_database):
    import psycopg2

    admin = psycopg2.connect(pg_database)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    agent = Agent(sim_factory(seed=1, time_scale=250.0), pg_database, "PGKILL")
    proc = agent.spawn("produce", "CLOTHING")
    killed = 0
    try:
        agent.wait_for(lambda s: bool(s.factories.list()))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            with admin.cursor() as cur:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                            "datname = current_database() AND pid <> pg_backend_pid()")
                killed += sum(1 for (ok,) in cur.fetchall() if ok)
            time.sleep(2)
        code = proc.wait(240)
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert killed, "backends were killed"
    if code != 0:  # it gave up past the lease: a supervisor restarts it and resume finishes
        assert code == 1 and "could not renew its lease" in err, err[-2000:]
        assert agent.run("resume", timeout=300)[0] == 0
    storage = agent.storage()
    assert set(statuses(storage).values()) == {FactoryStatus.COMPLETED}
    storage.close()
    admin.close()
    assert agent.books_match()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_unit_file_passes_systemd_analyze_verify(tmp_path):
    unit = (ROOT / "contrib" / "goods-factory.service").read_text()
    binary = Path(sys.executable).parent / "goods-factory"
    local = tmp_path / "goods-factory.service"
    local.write_text(unit.replace("/opt/goods-factory/venv/bin/goods-factory", str(binary)))
    result = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    assert "Restart=on-failure" in unit and "EnvironmentFile=" in unit
    assert "WatchdogSec=" in unit and "Type=notify" in unit


def test_notify_speaks_systemds_protocol(tmp_path, monkeypatch):
    assert notify("READY=1") is False, "outside a unit it does nothing"
    path = str(tmp_path / "n.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert notify("READY=1") and listener.recv(64) == b"READY=1"
    assert watchdog() is None, "no WatchdogSec, no pings"
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    now = [100.0]
    feed = watchdog(clock=lambda: now[0])
    feed()
    assert listener.recv(64) == b"WATCHDOG=1"
    now[0] += 1.0
    feed()  # within half the interval: nothing
    now[0] += 1.5
    feed()
    assert listener.recv(64) == b"WATCHDOG=1"
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog() is None, "meant for another process"
    listener.close()
