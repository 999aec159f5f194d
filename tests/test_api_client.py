"""The HTTP client against the local server: typed calls, errors, retries, the shared limiter."""

import logging
import threading
import time

import pytest
import structlog

from api import errors
from api.client import Client, RetryPolicy
from api.ratelimit import Priority, RateLimiter
from sim.faults import FaultPlan
from sim.ratelimit import TwoPoolLimiter
from tests.spec import spec

FAST = RetryPolicy(base=0.01, cap=0.05, gateway_base=0.02, gateway_cap=0.05,
                   read_timeout=2.0)


def agent_client(server, symbol="CLIENT", limiter=None, policy=FAST):
    anon = Client(server.url, token="", limiter=limiter or RateLimiter.unlimited(),
                  policy=policy)
    reg = anon.register(symbol, "COSMIC", account_token="acct")
    return anon.with_token(reg.token), reg


def test_typed_calls_and_pagination(sim_factory):
    server = sim_factory(seed=5)
    client, reg = agent_client(server)
    assert reg.agent.credits == 175_000 and len(reg.ships) == 2
    game = server.game
    game.agents["CLIENT"].credits = 10_000_000
    yard = game.universe.start_probe_at
    for _ in range(23):
        client.purchase_ship("SHIP_PROBE", yard)
    before = client.calls["ships"]
    ships = client.ships()
    assert len(ships) == 25 and client.calls["ships"] - before == 2, "two pages of 20"
    assert len({s.symbol for s in ships}) == 25
    probe = next(s for s in ships if s.cargo.capacity == 0)
    assert probe.role == "SATELLITE" and probe.speed == 9 and probe.fuel.capacity == 0
    frigate = client.ship(reg.ships[0].symbol)
    assert frigate.cargo.capacity == 40 and frigate.nav.status == "DOCKED"
    system = reg.agent.headquarters.rsplit("-", 1)[0]
    waypoints = client.waypoints(system)
    assert len(waypoints) == len(game.universe.waypoints)
    assert {w.symbol for w in client.waypoints(system, traits=["MARKETPLACE"])} == \
        set(game.universe.markets)
    offers = client.shipyard(yard)
    assert {o.type: o.price for o in offers}["SHIP_LIGHT_SHUTTLE"] == 88_853
    reading = client.market(reg.agent.headquarters)
    assert reading.snapshot.has_quotes and reading.snapshot.observed_at is not None
    result = client.purchase(frigate.symbol, "FUEL", 3)
    assert result.cargo.held("FUEL") == 3 and result.transaction.units == 3
    assert result.credits == client.agent().credits
    assert client.market(reg.agent.headquarters).transactions[-1].ship == frigate.symbol
    sold = client.sell(frigate.symbol, "FUEL", 1)
    assert sold.transaction.type == "SELL" and sold.cargo.held("FUEL") == 2
    assert client.jettison(frigate.symbol, "FUEL", 1).held("FUEL") == 1
    nav = client.orbit(frigate.symbol)
    assert nav.status == "IN_ORBIT"
    assert client.set_flight_mode(frigate.symbol, "CRUISE").flight_mode == "CRUISE"
    target = next(w for w in game.universe.markets if w != reg.agent.headquarters)
    nav, fuel = client.navigate(frigate.symbol, target)
    assert nav.status == "IN_TRANSIT" and fuel.current < 400
    assert client.nav(frigate.symbol).waypoint == target
    assert client.cargo(frigate.symbol).held("FUEL") == 1
    assert client.cooldown(frigate.symbol) is None
    assert client.waypoint(target).symbol == target
    assert client.system(system)["symbol"] == system
    assert "FABRICS" in client.supply_chain()["CLOTHING"]
    assert client.status()["version"] == "v2.3.0"


@pytest.mark.reference
def test_every_request_the_client_sends_matches_the_spec(sim_factory):
    record = []
    server = sim_factory(seed=5, record=record)
    client, reg = agent_client(server)
    frigate, probe = (s.symbol for s in reg.ships)
    hq = reg.agent.headquarters
    yard = server.game.universe.start_probe_at
    system = hq.rsplit("-", 1)[0]
    gate = next(iter(server.game.universe.constructions))
    contract = next(iter(server.game.contracts))
    calls = [
        lambda: client.status(), lambda: client.agent(), lambda: client.ships(),
        lambda: client.ship(frigate), lambda: client.nav(frigate), lambda: client.cargo(frigate),
        lambda: client.cooldown(frigate), lambda: client.system(system),
        lambda: client.waypoints(system, type_="PLANET", traits=["MARKETPLACE"]),
        lambda: client.waypoint(hq), lambda: client.market(hq), lambda: client.shipyard(yard),
        lambda: client.supply_chain(), lambda: client.refuel(frigate, 1),
        lambda: client.purchase(frigate, "FUEL", 2), lambda: client.sell(frigate, "FUEL", 1),
        lambda: client.jettison(frigate, "FUEL", 1), lambda: client.orbit(frigate),
        lambda: client.dock(frigate), lambda: client.orbit(frigate),
        lambda: client.set_flight_mode(frigate, "CRUISE"),
        lambda: client.purchase_ship("SHIP_PROBE", yard),
        lambda: client.orbit(probe), lambda: client.transfer(frigate, "FUEL", 1, probe),
        lambda: client.navigate(frigate, yard),
        lambda: client.construction(gate), lambda: client.supply_construction(
            frigate, gate, "FAB_MATS", 1),
        lambda: client.contracts(), lambda: client.contract(contract),
        lambda: client.accept_contract(contract),
        lambda: client.deliver_contract(contract, frigate, "IRON_ORE", 1),
        lambda: client.fulfill_contract(contract),
    ]
    for call in calls:
        try:
            call()
        except errors.GameRuleError:
            pass  # the request's shape is what is checked here
    sent = [x for x in record if x.path != "/register"]
    assert len({(x.method, x.spec_path) for x in sent}) == 30
    problems = []
    for x in record:
        template = spec().path_template(x.path)
        if template is None or spec().operation(x.method, template) is None:
            problems.append(f"{x.method} {x.path}: not in the spec")
            continue
        problems += [f"{x.method} {template}: {e}"
                     for e in spec().request_errors(x.method, template, x.request)]
        params = {p["name"] for p in spec().operation(x.method, template).get("parameters", [])
                  if p.get("in") == "query"}
        problems += [f"{x.method} {template}: unknown query {q}" for q in set(x.query) - params]
    assert not problems, problems


@pytest.mark.parametrize("status, body, cls", [
    (400, {"error": {"code": 4214, "message": "in transit",
                     "data": {"secondsToArrival": 26, "arrival": "2024-03-13T20:43:44.935Z"}}},
     errors.ShipInTransitError),
    (400, {"error": {"code": 4203, "message": "fuel",
                     "data": {"fuelRequired": 39, "fuelAvailable": 25}}},
     errors.InsufficientFuelError),
    (400, {"error": {"code": 4604, "message": "limit", "data": {"tradeVolume": 10}}},
     errors.TradeVolumeError),
    (400, {"error": {"code": 4600, "message": "credits"}}, errors.InsufficientCreditsError),
    (400, {"error": {"code": 4225, "message": "dock"}}, errors.RefuelNotDockedError),
    (400, {"error": {"code": 4999, "message": "new rule"}}, errors.GameRuleError),
    (409, {"error": {"code": 4000, "message": "cooldown"}}, errors.CooldownError),
    (404, {"error": {"code": 404, "message": "Ship X-1 not found."}}, errors.NotFoundError),
    (422, {"error": {"code": 422, "message": "bad"}}, errors.ValidationError),
    (429, None, errors.RateLimitedError),
    (500, {"error": {"code": 3000, "message": "oops"}}, errors.RetryableError),
    (502, "<html>", errors.RetryableError),
    (401, {"error": {"code": 401, "message": "Failed to parse token."}}, errors.AuthError),
])
def test_error_bodies_map_to_typed_errors(status, body, cls):
    err = errors.from_response(status, body, "POST /my/ships/X-1/purchase")
    assert type(err) is cls and err.status == status
    assert str(err).startswith("POST /my/ships/X-1/purchase: ")
    if cls is errors.ShipInTransitError:
        assert err.seconds_to_arrival == 26 and err.arrival.year == 2024
    if cls is errors.InsufficientFuelError:
        assert (err.fuel_required, err.fuel_available) == (39, 25)
    if cls is errors.TradeVolumeError:
        assert err.trade_volume == 10


def test_a_token_from_before_a_reset_says_so(sim_factory):
    old = sim_factory(seed=5)
    client, _ = agent_client(old)
    time.sleep(0.002)
    new = sim_factory(seed=5)
    stale = Client(new.url, token=client._token, limiter=RateLimiter.unlimited(), policy=FAST)
    with pytest.raises(errors.ServerResetError, match=r"server was reset.*register a new agent"):
        stale.agent()
    with pytest.raises(errors.AuthError, match="token was refused"):
        Client(new.url, token="nonsense", policy=FAST).agent()


def test_game_errors_come_back_typed_from_the_server(sim_factory):
    server = sim_factory(seed=5, time_scale=0.001)
    client, reg = agent_client(server)
    frigate = reg.ships[0].symbol
    with pytest.raises(errors.TradeVolumeError) as info:
        client.purchase(frigate, "FUEL", 500)
    assert info.value.trade_volume == 180
    with pytest.raises(errors.NotInOrbitError):
        client.navigate(frigate, server.game.universe.start_probe_at)
    client.orbit(frigate)
    places = server.game.places
    here = places[reg.agent.headquarters]
    nearest = min((w for w in server.game.universe.markets if places[w].x != here.x),
                  key=lambda w: abs(places[w].x - here.x) + abs(places[w].y - here.y))
    client.navigate(frigate, nearest)
    with pytest.raises(errors.ShipInTransitError) as transit:
        client.dock(frigate)
    assert transit.value.seconds_to_arrival > 0
    with pytest.raises(errors.NotFoundError):
        client.ship("CLIENT-99")


def test_retries_reads_through_5xx_and_502(sim_factory):
    server = sim_factory(seed=5)
    client, _ = agent_client(server, policy=RetryPolicy(
        max_retries=20, base=0.001, cap=0.005, gateway_base=0.001, gateway_cap=0.005))
    server.faults = FaultPlan.parse("500=0.3,502=0.2,seed=3")
    for _ in range(20):
        assert client.agent().symbol == "CLIENT"
    assert client.calls["agent"] > 20, "some were retried"


def test_reads_give_up_after_bounded_retries(sim_factory):
    server = sim_factory(seed=5)
    client, _ = agent_client(server)
    server.faults = FaultPlan.parse("500=1")
    with pytest.raises(errors.RetryableError, match=r"HTTP 500|server did not return"):
        client.agent()
    assert client.calls["agent"] == FAST.max_retries + 1


def test_a_purchase_with_unknown_outcome_is_never_repeated(sim_factory):
    server = sim_factory(seed=5)
    client, reg = agent_client(server)
    frigate = reg.ships[0].symbol
    server.faults = FaultPlan.parse("500after=1")
    with pytest.raises(errors.OutcomeUnknown, match="may have happened"):
        client.purchase(frigate, "FUEL", 4)
    assert client.calls["purchase"] == 1, "sent once, not retried"
    server.faults = FaultPlan()
    assert client.cargo(frigate).held("FUEL") == 4, "it did happen: the caller must read"


def test_a_slow_answer_to_a_sale_is_an_unknown_outcome(sim_factory):
    server = sim_factory(seed=5)
    client, reg = agent_client(server, policy=RetryPolicy(read_timeout=0.2, base=0.01))
    frigate = reg.ships[0].symbol
    client.purchase(frigate, "FUEL", 2)
    server.faults = FaultPlan.parse("slow=1:0.5")
    with pytest.raises(errors.OutcomeUnknown, match="ReadTimeout"):
        client.sell(frigate, "FUEL", 1)
    with pytest.raises(errors.RetryableError, match="ReadTimeout"):
        client.agent()  # reads are retried, then given up


def test_connection_refused_is_retried_not_unknown():
    client = Client("http://127.0.0.1:9/v2", token="t", limiter=RateLimiter.unlimited(),
                    policy=FAST)
    with pytest.raises(errors.RetryableError, match="ConnectionError"):
        client.purchase("X-1", "FUEL", 1)
    assert client.calls["purchase"] == FAST.max_retries + 1


def test_storm_of_429_with_and_without_headers_under_many_threads(sim_factory):
    server = sim_factory(seed=5, rate_limit=TwoPoolLimiter(per_second=40, burst=20,
                                                           burst_window=2.0))
    # a margin wider than the default 50 ms: with the whole suite running on two cores, a
    # request can reach the server that much later than it left the limiter, and the next
    # one on time
    limiter = RateLimiter(per_second=40, burst=20, burst_window=2.0, margin=0.2)
    client, _ = agent_client(server, limiter=limiter, policy=RetryPolicy(
        base=0.01, cap=0.05, max_throttled=200))
    server.faults = FaultPlan.parse("429=0.03,429bare=0.2,seed=1")
    done, failures = [], []

    def work():
        try:
            for _ in range(15):
                done.append(client.agent().symbol)
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures and len(done) == 120, "no request lost"
    # the limiter counts its windows from its own first use, the server from the first
    # arrival: after the pauses the injected 429s cause, the two can fall out of step,
    # and a request sent on time by the client's count may find the server's pools empty
    # (once in several full runs; it is retried like any 429)
    assert server.throttled <= 2, "hardly any sent past the server's limit"
    assert client.calls["agent"] > 120, "the injected 429s were retried"


def test_saturated_rate_stays_within_ten_percent_of_the_limit(sim_factory):
    # a pace the client and the in-process server keep up with while the rest of the
    # suite runs on the same two cores (at 40/s they fell 2 % short once, starved of CPU),
    # and a margin wider than the default 50 ms, which a request held up that long on its
    # way to the server overran (6 throttled once); the rate is held to what that margin
    # allows
    per_second, burst, window, margin = 20, 10, 2.0, 0.2
    server = sim_factory(seed=5, rate_limit=TwoPoolLimiter(per_second, burst, window))
    limiter = RateLimiter(per_second, burst, window, margin=margin)
    client, _ = agent_client(server, limiter=limiter)
    stop = time.monotonic() + 3.0
    count = [0]
    lock = threading.Lock()

    def work():
        while time.monotonic() < stop:
            client.agent()
            with lock:
                count[0] += 1

    start = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - start
    limit = per_second * elapsed / (1 + margin) + burst * (elapsed // (window + margin) + 1)
    assert server.throttled == 0
    assert count[0] >= 0.9 * limit, f"{count[0]} requests in {elapsed:.2f}s, limit {limit:.0f}"


def test_limiter_serves_trades_before_market_refreshes():
    now = [0.0]
    limiter = RateLimiter(per_second=1, burst=0, margin=0.0, clock=lambda: now[0])
    limiter.acquire()
    order = []

    def wait(priority, name):
        limiter.acquire(priority)
        order.append(name)

    refresh = threading.Thread(target=wait, args=(Priority.REFRESH, "refresh"))
    refresh.start()
    while not limiter._queue:
        time.sleep(0.001)
    trade = threading.Thread(target=wait, args=(Priority.ACTION, "trade"))
    trade.start()
    while len(limiter._queue) < 2:
        time.sleep(0.001)
    now[0] = 1.0
    trade.join(5)
    assert order == ["trade"]
    now[0] = 2.0
    refresh.join(5)
    assert order == ["trade", "refresh"]


def test_limiter_wait_is_cancelled_by_stop():
    limiter = RateLimiter(per_second=1, burst=0, margin=0.0, clock=lambda: 0.0)
    limiter.acquire()
    stop = threading.Event()
    stop.set()
    with pytest.raises(errors.Cancelled):
        limiter.acquire(stop=stop)
    assert limiter._queue == []


def test_pause_holds_everyone():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    limiter.pause(5)
    stop = threading.Event()
    waiter = threading.Thread(target=limiter.acquire, kwargs={"stop": stop})
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and limiter.granted == 0, "held back while paused"
    now[0] = 5.0
    waiter.join(5)
    assert limiter.granted == 1


def test_the_token_never_shows(sim_factory, capsys):
    server = sim_factory(seed=5)
    structlog.configure(processors=[structlog.processors.JSONRenderer()],
                        logger_factory=structlog.PrintLoggerFactory())
    logging.basicConfig(level=logging.DEBUG)
    client, reg = agent_client(server, policy=RetryPolicy(max_retries=30, base=0.001,
                                                          cap=0.002, max_throttled=100))
    token = reg.token
    texts = [repr(client)]
    server.faults = FaultPlan.parse("500=0.5,429bare=0.3,seed=2")
    for _ in range(10):
        client.agent()
    server.faults = FaultPlan.parse("500after=1")
    for call in (lambda: client.purchase(reg.ships[0].symbol, "FUEL", 1),
                 lambda: Client(server.url, token=token + "x", policy=FAST).agent()):
        with pytest.raises(errors.ApiError) as info:
            call()
        texts.append(str(info.value))
    out = capsys.readouterr()
    texts += [out.out, out.err]
    assert "api.retry" in out.out or "api.throttled" in out.out
    assert not any(token in t or token[-20:] in t for t in texts)
    structlog.reset_defaults()


@pytest.mark.parametrize("fault", ["html", "badjson", "shape", "truncate"])
def test_an_unreadable_answer_to_a_read_is_read_again(sim_factory, fault):
    server = sim_factory(seed=5)
    client, _ = agent_client(server)
    server.faults = FaultPlan.parse(f"{fault}=1,on=agent,times=1")
    assert client.agent().symbol == "CLIENT"
    assert client.calls["agent"] == 2


@pytest.mark.parametrize("fault", ["html", "badjson", "shape"])
def test_a_read_that_stays_unreadable_is_one_clear_error(sim_factory, fault):
    server = sim_factory(seed=5)
    client, _ = agent_client(server)
    server.faults = FaultPlan.parse(f"{fault}=1,on=agent")
    with pytest.raises(errors.ProtocolError) as info:
        client.agent()
    message = str(info.value)
    assert message.startswith("GET /my/agent: answered 200 with a body the API does not promise")
    assert "\n" not in message and len(message) < 300
    assert client.calls["agent"] == FAST.max_retries + 1


@pytest.mark.parametrize("fault", ["html", "badjson", "shape", "truncate"])
def test_an_unreadable_answer_to_a_trade_is_never_repeated(sim_factory, fault):
    server = sim_factory(seed=5)
    client, reg = agent_client(server)
    frigate = reg.ships[0].symbol
    server.faults = FaultPlan.parse(f"{fault}=1,on=purchase")
    with pytest.raises(errors.OutcomeUnknown):
        client.purchase(frigate, "FUEL", 4)
    assert client.calls["purchase"] == 1, "sent once, not retried"
    server.faults = FaultPlan()
    assert client.cargo(frigate).held("FUEL") == 4, "it happened: the caller must read it back"


def test_wrong_shapes_inside_the_data_are_protocol_errors():
    from api.models import Agent, Cargo, Ship

    with pytest.raises(TypeError):
        Agent.from_api({"symbol": "A", "headquarters": "X1-A-1", "credits": "12",
                        "shipCount": 1})
    with pytest.raises(TypeError):
        Cargo.from_api({"capacity": 40, "units": 0, "inventory": "none"})
    with pytest.raises(KeyError):
        Ship.from_api({"symbol": "A-1"})


def test_502_bursts_pause_everyone_longer_each_time_and_the_figures_hold():
    policy = RetryPolicy()
    assert policy.gateway_worst_case(6) == 2 + 4 + 8 + 16 + 32 + 60 == 122
    steps = [policy.backoff(n, gateway=True) for n in range(1, 8)]
    assert all(0.75 * min(60, 2 * 2 ** i) <= s <= min(60, 2 * 2 ** i)
               for i, s in enumerate(steps))
    limiter = RateLimiter()
    assert [limiter.gateway_failed() for _ in range(3)] == [1, 2, 3]
    limiter.answered()
    assert limiter.gateway_failed() == 1, "any other answer ends the streak"


def test_a_502_burst_is_waited_out_and_logged(sim_factory, capsys):
    server = sim_factory(seed=5)
    policy = RetryPolicy(gateway_base=0.05, gateway_cap=0.2)
    client, _ = agent_client(server, policy=policy)
    structlog.configure(processors=[structlog.processors.JSONRenderer()],
                        logger_factory=structlog.PrintLoggerFactory())
    server.faults = FaultPlan.parse("502burst=4:0")
    started = time.monotonic()
    assert client.agent().symbol == "CLIENT"
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    structlog.reset_defaults()
    pauses = [line for line in out.splitlines() if '"api.backoff"' in line]
    assert len(pauses) == 4 and '"in_a_row": 4' in pauses[-1]
    assert 0.75 * policy.gateway_worst_case(4) <= elapsed < policy.gateway_worst_case(4) + 1


def test_a_long_retry_after_is_capped(sim_factory, capsys):
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    client = Client("http://127.0.0.1:9/v2", token="t", limiter=limiter,
                    policy=RetryPolicy(max_retry_after=30))
    structlog.configure(processors=[structlog.processors.JSONRenderer()],
                        logger_factory=structlog.PrintLoggerFactory())
    client._throttled("/my/agent", 3600.0, 1)
    out = capsys.readouterr().out
    structlog.reset_defaults()
    assert limiter._paused_until == 30 and '"capped": true' in out


def test_construction_and_contract_calls_come_back_typed(sim_factory):
    server = sim_factory(seed=5)
    client, reg = agent_client(server)
    game = server.game
    frigate = reg.ships[0].symbol
    gate = next(iter(game.universe.constructions))
    site = client.construction(gate)
    assert site.remaining("FAB_MATS") == 1600 and not site.complete
    game.ships[frigate].waypoint = gate
    game.ships[frigate].cargo["FAB_MATS"] = 3
    site, cargo = client.supply_construction(frigate, gate, "FAB_MATS", 3)
    assert site.remaining("FAB_MATS") == 1597 and cargo.held("FAB_MATS") == 0
    offer = game.offer_contract("CLIENT", "FAB_MATS", 2, gate, 100, 900)
    [_starting, mine] = client.contracts()
    assert mine.id == offer.id and mine.term("FAB_MATS").remaining == 2 and not mine.accepted
    accepted, credits = client.accept_contract(offer.id)
    assert accepted.accepted and credits == client.agent().credits
    game.ships[frigate].cargo["FAB_MATS"] = 2
    delivered, _ = client.deliver_contract(offer.id, frigate, "FAB_MATS", 2)
    assert delivered.term("FAB_MATS").remaining == 0
    done, after = client.fulfill_contract(offer.id)
    assert done.fulfilled and after == credits + 900
    with pytest.raises(errors.GameRuleError, match="4504"):
        client.fulfill_contract(offer.id)
