"""The simulator's rate limit (the documented two pools) and its fault injection."""

import math
import time

import pytest

from sim.faults import FaultPlan, FaultSpecError
from sim.ratelimit import TwoPoolLimiter
from tests.conftest import Raw


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_static_pool_then_burst_then_refused():
    clock = Clock()
    limiter = TwoPoolLimiter(now=clock)
    keys = {"Account": "A"}
    verdicts = [limiter.take(keys) for _ in range(32)]
    assert all(v.allowed for v in verdicts)
    assert [v.remaining for v in verdicts[:3]] == [31, 30, 29]
    refused = limiter.take(keys)
    assert not refused.allowed and refused.type == "Account" and refused.retry_after == 1
    clock.t += 1.0  # the static pool is back: 2 more, burst still empty
    assert limiter.take(keys).allowed and limiter.take(keys).allowed
    assert not limiter.take(keys).allowed
    clock.t += 59.0
    assert sum(limiter.take(keys).allowed for _ in range(40)) == 32
    assert limiter.take({"Account": "B"}).allowed, "accounts are limited separately"


def test_every_key_must_have_room():
    limiter = TwoPoolLimiter(per_second=1, burst=0, now=Clock())
    assert limiter.take({"IP Address": "ip", "Account": "A"}).allowed
    refused = limiter.take({"IP Address": "ip", "Account": "B"})
    assert not refused.allowed and refused.type == "IP Address"


def test_server_answers_429_with_real_headers_and_body(sim_factory):
    server = sim_factory(rate_limit=True)
    raw = Raw(server.url)
    raw.register()
    start = time.monotonic()
    answers = [raw.get("/my/agent") for _ in range(40)]
    elapsed = time.monotonic() - start
    ok = [r for r in answers if r.status_code == 200]
    throttled = [r for r in answers if r.status_code == 429]
    assert throttled and 30 <= len(ok) <= 32 + 2 * math.ceil(elapsed)
    assert ok[0].headers["x-ratelimit-limit-burst"] == "30"
    r = throttled[0]
    for header in ("retry-after", "x-ratelimit-type", "x-ratelimit-limit",
                   "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-limit-burst",
                   "x-ratelimit-limit-per-second"):
        assert header in r.headers
    error = r.json()["error"]
    assert error["code"] == 429 and error["data"]["retryAfter"] == int(r.headers["retry-after"])


def test_fault_plan_parsing():
    plan = FaultPlan.parse("429=0.1, 429bare=0.05,500=0.05,500after=0.02,502=0.01,"
                           "502burst=5:40,slow=0.2:1.5,lose=30,seed=9")
    assert (plan.throttle, plan.throttle_bare, plan.error_before, plan.error_after,
            plan.bad_gateway) == (0.1, 0.05, 0.05, 0.02, 0.01)
    assert (plan.burst_size, plan.burst_after, plan.slow, plan.slow_seconds, plan.lose_at,
            plan.seed) == (5, 40, 0.2, 1.5, 30, 9)
    assert FaultPlan.parse("") == FaultPlan.parse(None)
    plan = FaultPlan.parse("kill=purchase:2,killbefore=get-ships:1,html=0.5,shape=0.1")
    assert plan.kills == (("after", "purchase", 2), ("before", "get-ships", 1))
    assert (plan.html, plan.bad_shape) == (0.5, 0.1)
    for bad in ("nope=1", "429=2", "500=x", "lose=soon", "kill=purchase", "kill=sell:0"):
        with pytest.raises(FaultSpecError):
            FaultPlan.parse(bad)


def test_faults_only_on_one_action_and_only_so_often():
    plan = FaultPlan.parse("500=1,on=purchase,times=2")
    assert plan.draw("/v2/my/ships/A-1/sell") is None
    assert [plan.draw("/v2/my/ships/A-1/purchase") for _ in range(3)] == ["500", "500", None]


def test_burst_of_502_then_normal():
    plan = FaultPlan.parse("502burst=3:2")
    assert [plan.draw() for _ in range(7)] == [None, None, "502", "502", "502", None, None]


def test_faults_through_the_server(sim_factory):
    server = sim_factory(faults=FaultPlan.parse("429bare=1"))
    r = Raw(server.url).get("/")
    assert r.status_code == 429 and "retry-after" not in r.headers and r.text == \
        "Too Many Requests"
    server = sim_factory(faults=FaultPlan.parse("502=1"))
    assert Raw(server.url).get("/").status_code == 502
    server = sim_factory(faults=FaultPlan.parse("500=1"))
    r = Raw(server.url).get("/")
    assert r.status_code == 500 and r.json()["error"]["code"] == 3000
    server = sim_factory(faults=FaultPlan.parse("429=1"))
    r = Raw(server.url).get("/")
    assert r.status_code == 429 and r.headers["retry-after"] == "1"


def test_500_after_processing_means_it_happened(sim_factory):
    server = sim_factory(faults=FaultPlan.parse("500after=1"))
    raw = Raw(server.url)
    r = raw.post("/register", {"symbol": "GHOST", "faction": "COSMIC"}, token="acct")
    assert r.status_code == 500
    assert "GHOST" in server.game.agents, "the request was processed before the 500"


def test_lose_the_ship_of_the_kth_action(sim_factory):
    server = sim_factory(faults=FaultPlan.parse("lose=2"))
    raw = Raw(server.url)
    ships = [s["symbol"] for s in raw.register()["ships"]]
    assert raw.post(f"/my/ships/{ships[0]}/orbit").status_code == 200
    assert raw.post(f"/my/ships/{ships[1]}/orbit").status_code == 200
    assert raw.get(f"/my/ships/{ships[1]}").status_code == 404
    assert raw.get(f"/my/ships/{ships[0]}").status_code == 200


def test_lose_the_ship_of_the_kth_purchase(sim_factory):
    server = sim_factory(faults=FaultPlan.parse("lose=purchase:2"))
    raw = Raw(server.url)
    ship = raw.register()["ships"][0]["symbol"]
    raw.post(f"/my/ships/{ship}/dock")
    assert raw.post(f"/my/ships/{ship}/purchase", {"symbol": "FUEL", "units": 1}).ok
    assert raw.get(f"/my/ships/{ship}").status_code == 200
    assert raw.post(f"/my/ships/{ship}/purchase", {"symbol": "FUEL", "units": 1}).ok
    assert raw.get(f"/my/ships/{ship}").status_code == 404


def test_slow_answers(sim_factory):
    server = sim_factory(faults=FaultPlan.parse("slow=1:0.2"))
    start = time.monotonic()
    assert Raw(server.url).get("/").status_code == 200
    assert time.monotonic() - start >= 0.2


def test_aimed_kills_fire_after_processing_and_before_answering(sim_factory):
    killed = []
    server = sim_factory(faults=FaultPlan.parse("kill=purchase:2,killbefore=sell:1"))
    raw = Raw(server.url)
    ship = raw.register("AIMED")["ships"][0]["symbol"]
    server.on_kill = lambda: killed.append(len(server.game.books))
    for _ in range(3):
        assert raw.post(f"/my/ships/{ship}/purchase", {"symbol": "FUEL", "units": 1}).ok
    assert killed == [2], "the second purchase was on the books when the kill came"
    assert raw.post(f"/my/ships/{ship}/sell", {"symbol": "FUEL", "units": 1}).ok
    assert killed == [2, 3], "before the sale was processed"
    assert server.kills == 2
    kinds = [(e.agent, e.ship, e.good, e.kind, e.units) for e in server.game.books]
    assert kinds == [("AIMED", ship, "FUEL", "PURCHASE", 1)] * 3 + [
        ("AIMED", ship, "FUEL", "SELL", 1)]
    assert all(e.credits > 0 for e in server.game.books)
