"""Crashes injected into the actors: every run completes or ends non-zero within a bound,
never hangs, and nothing is bought twice (checked against the server's books)."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from actors.coordinator import Coordinator
from actors.fleet import Fleet
from actors.service import Order, Service
from actors.settings import Settings
from actors.ship import ShipWorker
from api.client import Client
from api.ratelimit import RateLimiter
from domain.factory import FactoryStatus
from storage.db import open_database
from storage.files import default_supply_chain
from storage.repositories import Storage

pytestmark = pytest.mark.slow
FAST = Settings(poll_initial=0.3, poll_settled=0.6, blind_check_after=0.6, answer_wait=0.8,
                tick=0.2, max_rebuilds=2)


class Once:
    """Replace `owner.name` so that its first call (where `when` holds) raises."""

    def __init__(self, monkeypatch, owner, name, when=lambda *a, **k: True):
        self.original = getattr(owner, name)
        self.fired = 0
        self.lock = threading.Lock()

        def patched(*args, **kwargs):
            with self.lock:
                fire = not self.fired and when(*args, **kwargs)
                self.fired += fire
            if fire:
                raise RuntimeError(f"injected crash in {name}")
            return self.original(*args, **kwargs)

        monkeypatch.setattr(owner, name, patched)


@pytest.fixture
def world(sim_factory, tmp_path):
    server = sim_factory(seed=1, time_scale=250.0)
    anon = Client(server.url, token="", limiter=RateLimiter.unlimited())
    reg = anon.register("CRASHY", "COSMIC", "account")
    client = anon.with_token(reg.token)
    client.purchase_ship("SHIP_LIGHT_SHUTTLE", server.game.universe.start_probe_at)
    storage = Storage(open_database(str(tmp_path / "s.db")))
    since = len(server.game.books)

    def run(target="CLOTHING", bound=120.0):
        service = Service(Client(server.url, reg.token, limiter=RateLimiter.unlimited()),
                          storage, default_supply_chain(), FAST)
        runtime = service.runtime()
        factory = service.create(runtime, Order(target), runtime.owner)
        started = time.monotonic()
        outcome = service.run(runtime, [factory.id])
        assert time.monotonic() - started < bound, "never hangs"
        return outcome, storage.factories.load(factory.id), runtime

    def bought_once():
        server_ = Counter((e.kind, e.good, e.units) for e in server.game.books[since:]
                          if e.agent == "CRASHY")
        ours = Counter((e.kind, e.good, e.units) for e in storage.ledger.entries(
            agent="CRASHY", state="CONFIRMED") if e.kind not in ("BALANCE", "CONTRACT"))
        credits = storage.ledger.expected_credits("CRASHY") == \
            server.game.agents["CRASHY"].credits
        return server_ == ours and credits and not storage.ledger.pending("CRASHY")

    yield run, bought_once
    storage.close()


def test_a_bug_in_a_ship_job_fails_the_trip_and_it_is_tried_again(world, monkeypatch):
    run, bought_once = world
    crash = Once(monkeypatch, ShipWorker, "_trip")
    outcome, f, _ = run()
    assert crash.fired and outcome.finished and f.status is FactoryStatus.COMPLETED
    assert sum(t.attempts for t in f.tasks.values()) >= 1
    assert bought_once()


def test_a_ship_actor_that_dies_outside_a_job_is_started_again(world, monkeypatch):
    run, bought_once = world
    crash = Once(monkeypatch, Fleet, "free", lambda self, ship: ship.endswith("-3")
                 and threading.current_thread().name.startswith("ShipActor"))
    outcome, f, runtime = run()
    assert crash.fired and outcome.finished and f.status is FactoryStatus.COMPLETED, f.error
    assert runtime.pool.crashes, "the crash was noticed"
    assert bought_once()


def test_a_coordinator_that_dies_while_starting_is_rebuilt(world, monkeypatch):
    run, bought_once = world
    crash = Once(monkeypatch, Coordinator, "start")
    outcome, f, runtime = run()
    assert crash.fired and outcome.finished and f.status is FactoryStatus.COMPLETED
    assert next(iter(runtime.running.values())).rebuilds == 1
    assert bought_once()


def test_a_coordinator_that_keeps_dying_ends_the_run_with_one_line(world, monkeypatch):
    run, _ = world

    def broken(self):
        raise RuntimeError("cannot start")

    monkeypatch.setattr(Coordinator, "start", broken)
    outcome, f, _ = run(bound=30)
    assert not outcome.finished and "died 3 times" in outcome.error
    assert f.status is FactoryStatus.PENDING, "left for resume"


def test_a_save_the_database_always_refuses_ends_the_run_rather_than_looping(world,
                                                                            monkeypatch):
    """Not an outage (those are waited out) but a statement refused every time: reloading
    and trying again would stall the factory for good."""
    import peewee

    from storage.repositories import FactoryRepository

    original = FactoryRepository._upsert_tasks

    def refused(self, tasks):
        tasks = list(tasks)
        if tasks:
            raise peewee.ProgrammingError("ON CONFLICT DO UPDATE command cannot affect row "
                                          "a second time")
        original(self, tasks)

    monkeypatch.setattr(FactoryRepository, "_upsert_tasks", refused)
    run, _ = world
    outcome, _f, _ = run(bound=60)
    assert not outcome.finished and "died" in outcome.error


def test_a_bug_in_a_completion_handler_reloads_and_carries_on(world, monkeypatch):
    run, bought_once = world
    crash = Once(monkeypatch, Coordinator, "_trip_ended")
    outcome, f, _ = run()
    assert crash.fired and outcome.finished and f.status is FactoryStatus.COMPLETED, f.error
    assert bought_once()


def test_a_dead_watcher_is_revived_with_its_watches(world, monkeypatch):
    run, bought_once = world
    from actors.runtime import Runtime

    original = Runtime.start_factory

    def start_then_kill(self, factory_id):
        original(self, factory_id)
        threading.Timer(1.0, self.watcher.ref.stop).start()  # dies mid-run

    monkeypatch.setattr(Runtime, "start_factory", start_then_kill)
    outcome, f, runtime = run()
    assert outcome.finished and f.status is FactoryStatus.COMPLETED
    assert runtime.watcher.restarts >= 1
    assert bought_once()
